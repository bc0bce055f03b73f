from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cf_ingest import outbox
from django_cf_ingest.exceptions import TransientQueueError
from django_cf_ingest.models import (
    DocumentType,
    OutboxMessage,
    QueueMessage,
    Upload,
    UploadStatus,
)
from django_cf_ingest.queues.database import DatabaseBackend
from django_cf_ingest.services import create_upload

from .conftest import make_png

pytestmark = pytest.mark.django_db


def test_commit_relays_to_the_queue(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        upload = create_upload(io.BytesIO(make_png()), "big-five", name="a.png")

    upload.refresh_from_db()
    assert len(callbacks) == 1
    assert upload.status == UploadStatus.QUEUED
    assert QueueMessage.objects.get().body == {"uploadId": upload.pk}
    assert OutboxMessage.objects.get().sent_at is not None


def test_bulk_create_costs_a_fixed_number_of_queries(
    django_capture_on_commit_callbacks: Any,
) -> None:
    doc_type = DocumentType.objects.get(slug="big-five")
    uploads = [
        Upload(
            document_type=doc_type, file=ContentFile(make_png(f"n{n}"), name=f"{n}.png")
        )
        for n in range(60)
    ]

    with (
        django_capture_on_commit_callbacks() as callbacks,
        CaptureQueriesContext(connection) as queries,
    ):
        created = Upload.objects.bulk_create(uploads)
    with CaptureQueriesContext(connection) as relay_queries:
        for callback in callbacks:
            callback()

    assert len(created) == 60
    assert len(queries) <= 4  # uploads and outbox rows, in bulk
    assert OutboxMessage.objects.count() == 60
    assert all(u.content_type == "image/png" and u.sha256 for u in created)
    assert len(relay_queries) <= 10  # one batch of queries, not one per upload
    assert QueueMessage.objects.count() == 60
    assert set(Upload.objects.values_list("status", flat=True)) == {"queued"}


def test_relay_failure_keeps_rows_pending(monkeypatch: Any) -> None:
    create_upload(io.BytesIO(make_png()), "big-five", name="a.png")

    def outage(self: Any, bodies: Any, **kwargs: Any) -> None:
        raise TransientQueueError("queue unreachable", retry_after=30)

    monkeypatch.setattr(DatabaseBackend, "enqueue_batch", outage)
    assert outbox.relay() == 0

    row = OutboxMessage.objects.get()
    assert row.sent_at is None
    assert row.attempts == 1
    assert "queue unreachable" in row.last_error
    assert row.next_attempt_at >= timezone.now() + timedelta(seconds=29)
    # Not due yet: the next pass leaves it alone.
    monkeypatch.undo()
    assert outbox.relay() == 0
    OutboxMessage.objects.update(next_attempt_at=timezone.now())
    assert outbox.relay() == 1
    assert QueueMessage.objects.count() == 1


def test_rows_left_by_a_crash_are_relayed_later() -> None:
    # Committed but never relayed: the process died before on_commit ran.
    create_upload(io.BytesIO(make_png("one")), "big-five", name="one.png")
    create_upload(io.BytesIO(make_png("two")), "big-five", name="two.png")
    assert outbox.pending_count() == 2

    assert outbox.relay() == 2
    assert outbox.relay() == 0
    assert outbox.pending_count() == 0
    assert QueueMessage.objects.count() == 2


def test_relay_sends_in_batches(ingest_settings: Any) -> None:
    ingest_settings(OUTBOX_BATCH_SIZE=3)
    sizes: list[int] = []
    original = DatabaseBackend.enqueue_batch

    def spy(self: Any, bodies: Any, **kwargs: Any) -> None:
        sizes.append(len(bodies))
        original(self, bodies, **kwargs)

    doc_type = DocumentType.objects.get(slug="big-five")
    Upload.objects.bulk_create(
        [
            Upload(
                document_type=doc_type, file=ContentFile(make_png(f"{n}"), f"{n}.png")
            )
            for n in range(7)
        ]
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseBackend, "enqueue_batch", spy)
        assert outbox.relay() == 7
    assert sizes == [3, 3, 1]
