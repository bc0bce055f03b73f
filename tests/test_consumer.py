from __future__ import annotations

import io
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from django_cf_ingest.consumer.handlers import InProcessHandler
from django_cf_ingest.consumer.worker import Worker
from django_cf_ingest.models import (
    Extraction,
    OutboxMessage,
    ProviderCall,
    QueueMessage,
    Upload,
    UploadStatus,
)
from django_cf_ingest.queues import get_backend
from django_cf_ingest.services import create_upload

from .conftest import make_png
from .subprocess_env import manage

FAKE = {"BACKEND": "tests.fake_provider.FakeProvider"}


def upload_many(count: int, prefix: str = "doc") -> list[Upload]:
    return [
        create_upload(
            io.BytesIO(make_png(f"{prefix}{n}")), "big-five", name=f"{prefix}{n}.png"
        )
        for n in range(count)
    ]


def run_worker(**kwargs: Any) -> Worker:
    worker = Worker(
        get_backend(), InProcessHandler(), drain=True, poll_interval=0.05, **kwargs
    )
    worker.run()
    return worker


@pytest.mark.django_db(transaction=True)
def test_drain_processes_everything(ingest_settings: Any) -> None:
    ingest_settings(PROVIDERS={"fake": FAKE}, PROVIDER_CHAIN=["fake"])
    uploads = upload_many(12)

    worker = run_worker(concurrency=3)

    assert worker.stats.outcomes == {"done": 12}
    assert worker.stats.acked == 12
    assert set(Upload.objects.values_list("status", flat=True)) == {"needs_review"}
    assert Extraction.objects.count() == len(uploads)
    assert not QueueMessage.objects.exists()
    assert not OutboxMessage.objects.filter(sent_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_max_messages_stops_early(ingest_settings: Any) -> None:
    ingest_settings(PROVIDERS={"fake": FAKE}, PROVIDER_CHAIN=["fake"])
    upload_many(5)

    worker = run_worker(concurrency=2, max_messages=3)

    assert worker.stats.received == 3
    assert Extraction.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_malformed_and_unknown_messages(ingest_settings: Any) -> None:
    ingest_settings(PROVIDERS={"fake": FAKE}, PROVIDER_CHAIN=["fake"])
    get_backend().enqueue_batch(
        [{"uploadId": 424242}, {"upload": 1}, {"uploadId": "1"}, ["x"]]
    )

    worker = run_worker()

    assert worker.stats.outcomes == {"not_found": 1, "malformed": 3}
    dead = QueueMessage.objects.filter(dead_at__isnull=False)
    assert dead.count() == 3
    assert {row.last_error for row in dead} == {"message body is not {uploadId}"}
    assert QueueMessage.objects.count() == 3  # the unknown upload was acked


@pytest.mark.django_db(transaction=True)
def test_retries_then_dead_letter(ingest_settings: Any) -> None:
    ingest_settings(
        PROVIDERS={"fake": {**FAKE, "FAIL": "transient"}},
        PROVIDER_CHAIN=["fake"],
        MAX_ATTEMPTS=3,
        RETRY_BASE_DELAY=0.01,
        RETRY_MAX_DELAY=0.02,
    )
    (upload,) = upload_many(1)

    worker = run_worker()

    upload.refresh_from_db()
    assert worker.stats.retried == 2
    assert worker.stats.dead == 1
    assert upload.status == UploadStatus.DEAD
    assert upload.attempts == 3
    assert "fake outage" in upload.last_error
    assert ProviderCall.objects.filter(upload=upload, status="error").count() == 3
    assert QueueMessage.objects.get().dead_at is not None


def _wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_consumer_killed_mid_run_finishes_every_upload_once(tmp_path: Path) -> None:
    call_log = tmp_path / "calls.log"
    overrides = {
        "PROVIDERS": {"fake": {**FAKE, "DELAY": 0.3, "CALL_LOG": str(call_log)}},
        "PROVIDER_CHAIN": ["fake"],
        "PROCESSING_TIMEOUT": 2,
    }
    uploads = upload_many(30, prefix="crash")
    args = ("cf_ingest_consume", "--concurrency", "3", "--poll-interval", "0.1")

    first = manage(*args, "--visibility-timeout", "2", **overrides)
    # Kill it mid-run: some uploads finished, others claimed and in flight.
    _wait_for(
        lambda: (
            Extraction.objects.count() >= 8
            and Upload.objects.filter(status=UploadStatus.PROCESSING).exists()
        ),
        timeout=60,
    )
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    finished_before = set(
        Upload.objects.filter(status=UploadStatus.NEEDS_REVIEW).values_list(
            "original_name", flat=True
        )
    )
    interrupted = Upload.objects.filter(status=UploadStatus.PROCESSING).count()

    second = manage(*args, "--visibility-timeout", "2", "--drain", **overrides)
    output, _ = second.communicate(timeout=120)

    assert second.returncode == 0, output
    assert 8 <= len(finished_before) < len(uploads)
    assert interrupted > 0, "the kill should land while uploads are in flight"
    per_upload = Counter(Extraction.objects.values_list("upload_id", flat=True))
    assert sorted(per_upload) == sorted(u.pk for u in uploads)
    assert set(per_upload.values()) == {1}
    calls = Counter(call_log.read_text().split())
    assert all(calls[name] == 1 for name in finished_before)
    assert set(Upload.objects.values_list("status", flat=True)) == {"needs_review"}
    assert not QueueMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_sigterm_finishes_in_flight_work(ingest_settings: Any) -> None:
    overrides = {
        "PROVIDERS": {"fake": {**FAKE, "DELAY": 1.0}},
        "PROVIDER_CHAIN": ["fake"],
    }
    upload_many(6, prefix="term")
    consumer = manage("cf_ingest_consume", "--concurrency", "2", **overrides)
    _wait_for(
        lambda: Upload.objects.filter(status=UploadStatus.PROCESSING).count() == 2, 30
    )

    os.killpg(consumer.pid, signal.SIGTERM)
    output, _ = consumer.communicate(timeout=30)

    assert consumer.returncode == 0, output
    # The two in flight finished; nothing else was started.
    assert Extraction.objects.count() == 2
    assert Upload.objects.filter(status=UploadStatus.PROCESSING).count() == 0
    assert QueueMessage.objects.filter(lease_id="").count() == 4
