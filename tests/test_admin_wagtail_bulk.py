"""Bulk approve, reject and re-run from the uploads listing."""

from __future__ import annotations

from typing import Any

import pytest
from bs4 import BeautifulSoup

from django_cf_ingest.models import OutboxMessage, Upload, UploadStatus

from .admin_factories import add_run, client_for, editor_client, make_upload, make_user

pytestmark = pytest.mark.django_db


def bulk_url(action: str, *uploads: Upload) -> str:
    ids = "&".join(f"id={u.pk}" for u in uploads)
    listing = "/admin/ingest/uploads/"
    return f"/admin/bulk/cf_ingest/upload/{action}/?{ids}&next={listing}"


@pytest.fixture
def uploads() -> dict[str, Upload]:
    first = make_upload("first.png")
    add_run(first)
    second = make_upload("second.png", "keirsey")
    add_run(second, {"type_code": "ENFP", "temperament": "Idealist"})
    queued = make_upload("queued.png", status=UploadStatus.QUEUED)
    busy = make_upload("busy.png", status=UploadStatus.PROCESSING)
    return {"first": first, "second": second, "queued": queued, "busy": busy}


def statuses(*uploads: Upload) -> list[str]:
    return [Upload.objects.get(pk=u.pk).status for u in uploads]


def test_approve_confirms_then_approves_finished_runs_only(
    uploads: dict[str, Upload],
) -> None:
    user, client = editor_client()
    chosen = (uploads["first"], uploads["second"], uploads["queued"])

    page = client.get(bulk_url("approve", *chosen))
    soup = BeautifulSoup(page.content, "html.parser")
    listed = soup.select_one(".cf-ingest-bulk-items").get_text(" ", strip=True)
    skipped = soup.select(".cf-ingest-bulk-items")[1].get_text(" ", strip=True)
    assert "first.png" in listed
    assert "second.png" in listed
    assert "queued.png" in skipped
    assert statuses(*chosen) == ["needs_review", "needs_review", "queued"]

    response = client.post(bulk_url("approve", *chosen))

    assert response.status_code == 302
    assert response["Location"] == "/admin/ingest/uploads/"
    assert statuses(*chosen) == ["approved", "approved", "queued"]
    assert Upload.objects.get(pk=uploads["first"].pk).reviewed_by == user


def test_reject_needs_a_reason_and_records_it(uploads: dict[str, Upload]) -> None:
    _, client = editor_client()
    chosen = (uploads["first"], uploads["second"])

    refused = client.post(bulk_url("reject", *chosen), {"reason": ""})
    assert refused.status_code == 200
    assert statuses(*chosen) == ["needs_review", "needs_review"]

    client.post(bulk_url("reject", *chosen), {"reason": "Wrong test"})

    assert statuses(*chosen) == ["rejected", "rejected"]
    assert {Upload.objects.get(pk=u.pk).review_note for u in chosen} == {"Wrong test"}


def test_rerun_queues_all_but_busy_uploads(
    uploads: dict[str, Upload], ingest_settings: Any
) -> None:
    ingest_settings(PROVIDERS={"ocr": {}, "google": {"API_KEY": "x"}})
    _, client = editor_client()
    chosen = list(uploads.values())

    form = client.get(bulk_url("rerun", *chosen))
    assert b'<option value="google">google</option>' in form.content

    client.post(bulk_url("rerun", *chosen), {"provider": "google"})

    assert statuses(*chosen) == ["queued", "queued", "queued", "processing"]
    requeued = Upload.objects.filter(requested_chain=["google"])
    assert requeued.count() == 3
    # One outbox row from the upload itself and one from the re-run.
    assert OutboxMessage.objects.filter(upload=uploads["first"]).count() == 2
    assert OutboxMessage.objects.filter(upload=uploads["busy"]).count() == 1


def test_all_in_listing_follows_the_listing_filters(
    uploads: dict[str, Upload],
) -> None:
    _, client = editor_client()

    client.post(
        "/admin/bulk/cf_ingest/upload/approve/?status=needs_review&q=first&id=all"
    )

    assert statuses(uploads["first"], uploads["second"]) == [
        "approved",
        "needs_review",
    ]


@pytest.mark.parametrize(
    ("perms", "action"),
    [
        (("cf_ingest.view_upload",), "approve"),
        (("cf_ingest.view_upload",), "reject"),
        (("cf_ingest.view_upload", "cf_ingest.review_upload"), "rerun"),
        (("cf_ingest.view_upload", "cf_ingest.replay_upload"), "approve"),
        (("cf_ingest.review_upload", "cf_ingest.replay_upload"), "approve"),
    ],
)
def test_bulk_actions_need_their_permission(
    uploads: dict[str, Upload], perms: tuple[str, ...], action: str
) -> None:
    client = client_for(make_user("someone", *perms))

    assert client.get(bulk_url(action, uploads["first"])).status_code == 403
    response = client.post(
        bulk_url(action, uploads["first"]), {"reason": "x", "provider": ""}
    )

    assert response.status_code == 403
    assert statuses(uploads["first"]) == ["needs_review"]
