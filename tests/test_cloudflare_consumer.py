"""``cf_ingest_consume``'s worker as an HTTP pull consumer of Cloudflare Queues
(the emulator): acks and retries, and no second extraction when a lease runs
out while a message is still being processed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from django_cf_ingest.consumer.handlers import InProcessHandler
from django_cf_ingest.consumer.stage1 import Stage1Handler
from django_cf_ingest.consumer.worker import Worker
from django_cf_ingest.models import (
    Extraction,
    ProviderCall,
    Stage,
    Upload,
    UploadStatus,
)
from django_cf_ingest.providers.base import ExtractionRequest, ProviderResult
from django_cf_ingest.queues.cloudflare import CloudflareBackend

from . import cloudflare_support
from .cloudflare_support import FAKE, CloudflareSite, shared_file_uploads
from .fake_provider import FakeProvider

cloudflare = cloudflare_support.cloudflare
use_cloudflare = cloudflare_support.use_cloudflare

UseCloudflare = Callable[..., CloudflareBackend]

#: Set to let the first held call of ``HeldProvider`` finish.
release_first_call = threading.Event()
first_call_started = threading.Event()
_first = threading.Lock()


class HeldProvider(FakeProvider):
    """Holds its first call until the test releases it; later calls are quick."""

    def extract(self, request: ExtractionRequest) -> ProviderResult:
        if _first.acquire(blocking=False):
            first_call_started.set()
            assert release_first_call.wait(timeout=30)
        return super().extract(request)


@pytest.fixture
def fake_provider(ingest_settings: Callable[..., None]) -> Callable[..., None]:
    def apply(**options: Any) -> None:
        ingest_settings(
            PROVIDERS={"fake": {**FAKE, **options}}, PROVIDER_CHAIN=["fake"]
        )

    return apply


def run(backend: CloudflareBackend, **kwargs: Any) -> Worker:
    worker = Worker(
        backend, InProcessHandler(), drain=True, poll_interval=0.05, **kwargs
    )
    worker.run()
    return worker


@pytest.mark.django_db(transaction=True)
def test_uploads_are_pulled_processed_and_acked(
    cloudflare: CloudflareSite,
    use_cloudflare: UseCloudflare,
    fake_provider: Callable[..., None],
) -> None:
    fake_provider()
    backend = use_cloudflare()
    uploads = shared_file_uploads(30)

    worker = run(backend, concurrency=4, batch_size=4)

    assert worker.stats.outcomes == {"done": 30}
    assert set(Upload.objects.values_list("status", flat=True)) == {"needs_review"}
    assert Extraction.objects.count() == len(uploads)
    assert cloudflare.messages() == []
    pulls = cloudflare.emulator.recorded("queues-pull-messages")
    assert pulls[0].path == cloudflare.path("/messages/pull")
    assert pulls[0].body == {"batch_size": 4, "visibility_timeout_ms": 300_000}
    assert all(r.body["batch_size"] <= 4 for r in pulls)
    acks = cloudflare.emulator.recorded("queues-ack-messages")
    acked = [entry["lease_id"] for r in acks for entry in r.body.get("acks", [])]
    assert len(acked) == len(set(acked)) == 30
    assert all("retries" not in r.body for r in acks)
    # Settled as they finish, several per call.
    assert len(acks) < 30


@pytest.mark.django_db(transaction=True)
def test_failures_are_retried_with_a_delay_then_dead_lettered(
    cloudflare: CloudflareSite,
    use_cloudflare: UseCloudflare,
    fake_provider: Callable[..., None],
    ingest_settings: Callable[..., None],
) -> None:
    fake_provider(FAIL="transient")
    ingest_settings(MAX_ATTEMPTS=2)
    backend = use_cloudflare()
    (upload,) = shared_file_uploads(1)

    worker = run(backend)

    upload.refresh_from_db()
    assert upload.status == UploadStatus.DEAD
    assert worker.stats.retried == 1
    assert worker.stats.dead == 1
    first, last = cloudflare.emulator.recorded("queues-ack-messages")
    (retry,) = first.body["retries"]
    assert "acks" not in first.body
    # Seconds, rounded up from the backoff, so never shorter than asked.
    assert retry["delay_seconds"] == 1
    assert len(last.body["acks"]) == 1
    assert cloudflare.messages() == []


@pytest.mark.django_db(transaction=True)
def test_a_message_whose_lease_ran_out_mid_run_makes_no_second_extraction(
    cloudflare: CloudflareSite,
    use_cloudflare: UseCloudflare,
    ingest_settings: Callable[..., None],
) -> None:
    ingest_settings(
        PROVIDERS={"fake": {"BACKEND": "tests.test_cloudflare_consumer.HeldProvider"}},
        PROVIDER_CHAIN=["fake"],
        PROCESSING_TIMEOUT=1,
    )
    backend = use_cloudflare(ACK_DELAY_MS=0)
    (upload,) = shared_file_uploads(1)
    handler = InProcessHandler()
    release_first_call.clear()
    first_call_started.clear()

    # The first delivery starts and stalls inside the provider.
    (first,) = backend.receive(1, visibility_timeout=1)
    decisions: list[Any] = []
    stalled = threading.Thread(
        target=lambda: decisions.append(handler.handle(upload.pk)), daemon=True
    )
    stalled.start()
    assert first_call_started.wait(timeout=10)

    # Its lease and its claim run out: Cloudflare delivers the message again.
    time.sleep(1.2)
    (second,) = backend.receive(1, visibility_timeout=30)
    assert (second.id, second.attempts) == (first.id, 2)
    takeover = handler.handle(upload.pk)
    backend.settle([second], [])

    # The first delivery wakes up, finds its claim taken, and acks late.
    release_first_call.set()
    stalled.join(timeout=10)
    (late,) = decisions
    backend.settle([first], [])

    assert takeover.outcome == "done"
    assert late.action == "ack"
    assert late.outcome == "already_done"
    assert Extraction.objects.filter(upload=upload).count() == 1
    assert ProviderCall.objects.filter(upload=upload).count() == 2
    assert cloudflare.messages() == []
    late_ack = cloudflare.emulator.recorded("queues-ack-messages")[-1]
    assert late_ack.status == 200
    assert late_ack.response["result"]["warnings"] == {}


@pytest.mark.django_db(transaction=True)
def test_stage_1_posts_each_pulled_upload_to_the_site(
    cloudflare: CloudflareSite,
    use_cloudflare: UseCloudflare,
    fake_provider: Callable[..., None],
    ingest_settings: Callable[..., None],
    live_server: Any,
) -> None:
    fake_provider()
    ingest_settings(INTERNAL_INGEST_BASE_URL=live_server.url)
    backend = use_cloudflare()
    uploads = shared_file_uploads(6)

    worker = Worker(
        backend,
        Stage1Handler(concurrency=3),
        concurrency=3,
        drain=True,
        poll_interval=0.05,
    )
    worker.run()

    assert worker.stats.outcomes == {"done": 6}
    stages = Extraction.objects.values_list("upload_id", "stage")
    assert sorted(stages) == sorted((u.pk, Stage.STAGE1) for u in uploads)
    assert cloudflare.messages() == []
