"""The failure webhook (Slack-compatible) called when an upload goes dead."""

from __future__ import annotations

import io
from typing import Any

import pytest

from django_cf_ingest.pipeline import mark_dead
from django_cf_ingest.services import create_upload

from .conftest import make_png
from .fakes.server import FakeResponse, FakeServer

pytestmark = pytest.mark.django_db


def test_dead_upload_is_posted_to_the_webhook(ingest_settings: Any) -> None:
    upload = create_upload(io.BytesIO(make_png()), "big-five", name="sheet.png")
    with FakeServer() as hook:
        hook.enqueue(FakeResponse(200, body=b"ok"))
        ingest_settings(FAILURE_WEBHOOK_URL=f"{hook.url}/services/hook")

        assert mark_dead(upload.pk, "gave up: fake outage", 5)

        request = hook.last
    assert (request.method, request.path) == ("POST", "/services/hook")
    assert request.headers["content-type"] == "application/json"
    text = request.json["text"]
    assert f"Upload {upload.pk}" in text
    assert "5 attempt(s)" in text
    assert "gave up: fake outage" in text


def test_a_failing_webhook_does_not_stop_the_dead_letter(
    ingest_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    upload = create_upload(io.BytesIO(make_png()), "big-five", name="sheet.png")
    with FakeServer() as hook:
        hook.enqueue(FakeResponse(500, body=b"down"))
        ingest_settings(FAILURE_WEBHOOK_URL=f"{hook.url}/hook")

        assert mark_dead(upload.pk, "gave up", 3)

    upload.refresh_from_db()
    assert upload.status == "dead"
    assert "failure webhook failed error=HTTPStatusError" in caplog.text


def test_no_webhook_without_a_url(ingest_settings: Any) -> None:
    upload = create_upload(io.BytesIO(make_png()), "big-five", name="sheet.png")
    with FakeServer() as hook:
        ingest_settings(FAILURE_WEBHOOK_URL="")

        assert mark_dead(upload.pk, "gave up", 3)

        assert hook.requests == []
