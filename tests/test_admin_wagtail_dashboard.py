"""The dashboard panel and the usage report."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from bs4 import BeautifulSoup
from django.utils import timezone
from openpyxl import load_workbook

from django_cf_ingest import reporting
from django_cf_ingest.models import ProviderCall, Stage, Upload, UploadStatus

from .admin_factories import add_run, client_for, editor_client, make_upload, make_user

pytestmark = pytest.mark.django_db

USAGE = "/admin/ingest/usage/"


def panel_text(client: Any) -> str:
    soup = BeautifulSoup(client.get("/admin/").content, "html.parser")
    panel = soup.select_one("#cf-ingest-summary-section")
    return panel.get_text(" ", strip=True) if panel else ""


def call(upload: Upload, when: Any, tokens: tuple[int, int], cost: str, **kw: Any):
    return ProviderCall.objects.create(
        upload=upload,
        provider=kw.get("provider", "google"),
        model=kw.get("model", "gemini-2.5-flash"),
        stage=Stage.IN_PROCESS,
        tokens_in=tokens[0],
        tokens_out=tokens[1],
        cost=Decimal(cost),
        status=ProviderCall.Status.OK,
        created_at=when,
    )


def test_panel_counts_failures_backlog_and_this_months_usage() -> None:
    now = timezone.now()
    make_upload("a.png")
    make_upload("b.png")
    make_upload("c.png", status=UploadStatus.APPROVED)
    make_upload("d.png", status=UploadStatus.DEAD)
    old_failure = make_upload("e.png", status=UploadStatus.FAILED)
    Upload.objects.filter(pk=old_failure.pk).update(updated_at=now - timedelta(days=2))
    this_month = make_upload("f.png", status=UploadStatus.QUEUED)
    call(this_month, now, (1000, 200), "0.0125")
    call(this_month, now - timedelta(days=70), (5000, 5000), "9.99")
    _, client = editor_client()

    text = panel_text(client)

    assert "2 Needs review" in text
    assert "1 Approved" in text
    assert "1 Dead" in text
    assert "1 Queued" in text
    assert "Failures, last 24 hours 1" in text
    # The database queue counts the messages waiting: one per upload here.
    assert f"Queue backlog {reporting.queue_backlog()}" in text
    assert "Tokens this month 1,200" in text
    assert "Cost this month $0.0125" in text


def test_panel_says_when_the_backlog_is_unknown(monkeypatch: Any) -> None:
    monkeypatch.setattr(reporting, "queue_backlog", lambda: None)
    _, client = editor_client()

    assert "Queue backlog n/a" in panel_text(client)


def test_backlog_error_does_not_break_the_dashboard(monkeypatch: Any) -> None:
    from django_cf_ingest.queues import get_backend

    def unreachable(self: Any) -> int:
        raise ConnectionError("queue unreachable")

    monkeypatch.setattr(type(get_backend()), "backlog", unreachable)

    assert reporting.summary().backlog is None


def test_panel_is_only_for_users_who_may_view_uploads() -> None:
    make_upload()
    outsider = client_for(make_user("outsider"))
    viewer = client_for(make_user("viewer", "cf_ingest.view_upload"))

    assert panel_text(outsider) == ""
    assert "Needs review" in panel_text(viewer)


@pytest.fixture
def usage() -> None:
    today = timezone.now().replace(hour=12)
    big_five = make_upload("a.png")
    hexaco = make_upload("b.png", "hexaco")
    add_run(big_five, tokens=(1000, 100), cost="0.001", created_at=today)
    call(big_five, today, (500, 50), "0.0005")
    call(
        hexaco,
        today,
        (2000, 10),
        "0.0002",
        provider="workers_ai",
        model="@cf/meta/llama-3.2-11b-vision-instruct",
    )
    call(hexaco, today - timedelta(days=3), (300, 30), "0.0003")


def rows(response: Any) -> list[list[str]]:
    soup = BeautifulSoup(response.content, "html.parser")
    return [
        [td.get_text(strip=True) for td in tr.find_all("td")]
        for tr in soup.select("table.listing tbody tr")
    ]


def test_usage_report_sums_per_day_type_and_provider(usage: None) -> None:
    _, client = editor_client()

    response = client.get(USAGE)

    assert response.status_code == 200
    table = rows(response)
    assert len(table) == 3
    big_five_today = next(r for r in table if r[1] == "Big Five")
    assert big_five_today[2:] == ["google", "2", "1,500", "150", "$0.0015"]
    assert any(r[1:3] == ["HEXACO", "workers_ai"] for r in table)
    totals = BeautifulSoup(response.content, "html.parser").select_one(
        ".cf-ingest-usage-totals"
    )
    assert "4 provider calls" in totals.get_text(" ", strip=True)


def test_usage_report_filters(usage: None) -> None:
    _, client = editor_client()
    since = (timezone.now() - timedelta(days=1)).date().isoformat()

    by_provider = rows(client.get(f"{USAGE}?provider=workers_ai"))
    recent = rows(client.get(f"{USAGE}?created_at_from={since}"))

    assert [r[1:3] for r in by_provider] == [["HEXACO", "workers_ai"]]
    assert len(recent) == 2


def test_usage_report_exports_csv_and_xlsx(usage: None) -> None:
    _, client = editor_client()

    exported = client.get(f"{USAGE}?export=csv")
    lines = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode())))
    workbook = client.get(f"{USAGE}?export=xlsx")
    sheet = load_workbook(io.BytesIO(b"".join(workbook.streaming_content))).active

    assert exported["Content-Type"] == "text/csv"
    assert lines[0] == [
        "Day",
        "Document type",
        "Provider",
        "Calls",
        "Tokens in",
        "Tokens out",
        "Cost (USD)",
    ]
    assert len(lines) == 4
    assert ["Big Five", "google", "2", "1500", "150"] in [r[1:6] for r in lines]
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "Day"
    assert len(values) == 4


def test_usage_report_needs_the_view_permission(usage: None) -> None:
    outsider = client_for(make_user("outsider"))

    assert outsider.get(USAGE).status_code == 403
    assert outsider.get(f"{USAGE}?export=csv").status_code == 403
