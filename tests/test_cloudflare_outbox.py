"""The outbox relay publishing to Cloudflare Queues (the emulator): request
counts, outages, and pushes whose response was lost."""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from django_cf_ingest import outbox
from django_cf_ingest.consumer.handlers import InProcessHandler
from django_cf_ingest.consumer.worker import Worker
from django_cf_ingest.emulator import EmulatorServer, LostResponse
from django_cf_ingest.models import Extraction, OutboxMessage, Upload, UploadStatus
from django_cf_ingest.queues.cloudflare import CloudflareBackend
from django_cf_ingest.services import create_upload

from . import cloudflare_support
from .cloudflare_support import FAKE, CloudflareSite, shared_file_uploads
from .conftest import make_png

cloudflare = cloudflare_support.cloudflare
use_cloudflare = cloudflare_support.use_cloudflare

UseCloudflare = Callable[..., CloudflareBackend]
PUSHES = ("queues-push-message", "queues-push-messages")


def pushed_upload_ids(site: CloudflareSite) -> Counter[int]:
    return Counter(body["uploadId"] for body in site.messages())


@pytest.mark.django_db
def test_ten_thousand_uploads_cost_a_hundred_push_requests(
    cloudflare: CloudflareSite,
    use_cloudflare: UseCloudflare,
    django_capture_on_commit_callbacks: Any,
) -> None:
    use_cloudflare(QUEUE=cloudflare.queue_id)

    with django_capture_on_commit_callbacks(execute=True):
        uploads = shared_file_uploads(10_000)

    pushes = cloudflare.emulator.recorded(*PUSHES)
    assert len(pushes) == 100
    assert all(r.status == 200 for r in pushes)
    assert {len(r.body["messages"]) for r in pushes} == {100}
    assert pushed_upload_ids(cloudflare) == Counter(u.pk for u in uploads)
    assert outbox.pending_count() == 0
    assert Upload.objects.filter(status=UploadStatus.QUEUED).count() == 10_000


@pytest.mark.django_db(transaction=True)
def test_uploads_created_one_by_one_are_relayed_together(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    use_cloudflare(QUEUE=cloudflare.queue_id, RELAY_INTERVAL=0.5)
    image = make_png("Openness 42", size=(60, 20))

    started = time.monotonic()
    uploads = [
        create_upload(io.BytesIO(image), "big-five", name=f"one-{n}.png")
        for n in range(40)
    ]
    deadline = time.monotonic() + 10
    while outbox.pending_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.monotonic() - started

    assert outbox.pending_count() == 0
    assert pushed_upload_ids(cloudflare) == Counter(u.pk for u in uploads)
    # The first commit goes at once; then one push per interval at most.
    pushes = len(cloudflare.emulator.recorded(*PUSHES))
    assert pushes <= 2 + elapsed / 0.5, (pushes, elapsed)
    assert pushes < 20


@pytest.mark.django_db
def test_a_push_that_never_reached_cloudflare_is_sent_once_when_it_is_back(
    cloudflare: CloudflareSite,
    use_cloudflare: UseCloudflare,
    django_capture_on_commit_callbacks: Any,
) -> None:
    use_cloudflare(QUEUE=cloudflare.queue_id, TIMEOUT=2)
    port = cloudflare.server.port
    cloudflare.server.stop()

    with django_capture_on_commit_callbacks(execute=True):
        (upload,) = shared_file_uploads(1)

    row = OutboxMessage.objects.get()
    assert row.sent_at is None
    assert row.attempts == 1
    assert "could not reach the API" in row.last_error
    assert cloudflare.emulator.recorded() == []

    restarted = EmulatorServer(cloudflare.emulator, port=port).start()
    try:
        OutboxMessage.objects.update(next_attempt_at=timezone.now())
        assert outbox.relay() == 1
        assert outbox.relay() == 0
    finally:
        restarted.stop()

    assert pushed_upload_ids(cloudflare) == Counter({upload.pk: 1})
    assert len(cloudflare.emulator.recorded(*PUSHES)) == 1
    assert OutboxMessage.objects.get().sent_at is not None


@pytest.mark.parametrize(
    "lost", [LostResponse("timeout", delay=1.0), LostResponse("error")], ids=str
)
@pytest.mark.django_db(transaction=True)
def test_a_push_whose_response_was_lost_is_absorbed_by_the_pipeline(
    cloudflare: CloudflareSite,
    use_cloudflare: UseCloudflare,
    ingest_settings: Callable[..., None],
    lost: LostResponse,
) -> None:
    ingest_settings(PROVIDERS={"fake": FAKE}, PROVIDER_CHAIN=["fake"])
    backend = use_cloudflare(QUEUE=cloudflare.queue_id, TIMEOUT=0.3)
    cloudflare.emulator.faults.lose_responses("queues-push-message", 1, lost)

    (upload,) = shared_file_uploads(1)  # relayed after commit: the answer is lost
    row = OutboxMessage.objects.get()
    assert row.sent_at is None
    assert pushed_upload_ids(cloudflare) == Counter({upload.pk: 1})

    OutboxMessage.objects.update(next_attempt_at=timezone.now())
    assert outbox.relay() == 1  # pushed again: Cloudflare now holds it twice
    assert pushed_upload_ids(cloudflare) == Counter({upload.pk: 2})

    worker = Worker(backend, InProcessHandler(), drain=True, poll_interval=0.05)
    worker.run()

    # Delivered together, the copy finds the upload busy and comes back later.
    assert worker.stats.outcomes["done"] == 1
    assert worker.stats.outcomes["already_done"] == 1
    assert set(worker.stats.outcomes) <= {"done", "already_done", "busy"}
    assert worker.stats.acked == 2
    assert Extraction.objects.filter(upload=upload).count() == 1
    assert cloudflare.messages() == []
    assert outbox.pending_count() == 0
