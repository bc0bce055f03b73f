"""The fault run: 1,000 uploads through Cloudflare Queues (the emulator) while
30% of push, pull and ack requests are answered 429 or 500, and the consumer
is killed with SIGKILL once in the middle and started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from django_cf_ingest import outbox
from django_cf_ingest.emulator import Emulator, EmulatorServer, FaultPolicy
from django_cf_ingest.models import Extraction, Upload, UploadStatus

from .cloudflare_support import ACCOUNT_ID, FAKE, QUEUE, TOKEN, shared_file_uploads
from .subprocess_env import ROOT, child_env

UPLOADS = 1000
CHUNK = 25
FAULTED = (
    "queues-push-message",
    "queues-push-messages",
    "queues-pull-messages",
    "queues-ack-messages",
)


@pytest.fixture
def faulty_cloudflare() -> Iterator[tuple[Emulator, EmulatorServer]]:
    emulator = Emulator(
        account_id=ACCOUNT_ID,
        token=TOKEN,
        faults=FaultPolicy(rate=0.3, rate_limited_share=0.5, retry_after=1, seed=20),
    )
    # Cloudflare must not give up before the site does.
    emulator.add_queue(QUEUE, max_retries=100)
    server = emulator.serve()
    yield emulator, server
    server.stop()
    assert emulator.errors == []


def start_consumer(log: Path, overrides: dict[str, Any]) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "cf_ingest_consume",
                "--concurrency",
                "16",
                "--poll-interval",
                "0.2",
            ],
            cwd=ROOT,
            env=child_env(**overrides),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.django_db(transaction=True)
def test_every_upload_finishes_once_despite_faults_and_a_killed_consumer(
    faulty_cloudflare: tuple[Emulator, EmulatorServer],
    ingest_settings: Callable[..., None],
    tmp_path: Path,
) -> None:
    emulator, server = faulty_cloudflare
    overrides: dict[str, Any] = {
        "QUEUE": {
            "BACKEND": "django_cf_ingest.queues.cloudflare.CloudflareBackend",
            "OPTIONS": {
                "ACCOUNT_ID": ACCOUNT_ID,
                "API_TOKEN": TOKEN,
                "QUEUE": QUEUE,
                "API_BASE_URL": server.base_url,
                "RELAY_INTERVAL": 0.2,
                "TIMEOUT": 5,
            },
        },
        # A short provider call, so the kill finds uploads mid-run.
        "PROVIDERS": {"fake": {**FAKE, "DELAY": 0.02}},
        "PROVIDER_CHAIN": ["fake"],
        # Short leases and claims, so the killed consumer's work comes back soon.
        "PROCESSING_TIMEOUT": 3,
        "MAX_ATTEMPTS": 100,
    }
    ingest_settings(**overrides)
    log = tmp_path / "consumer.log"
    consumer = start_consumer(log, overrides)
    try:
        # Uploads arrive in small transactions, published after each commit.
        uploads: list[Upload] = []
        for _ in range(UPLOADS // CHUNK):
            uploads += shared_file_uploads(CHUNK)
        wait_for(lambda: Extraction.objects.count() >= UPLOADS // 3, 90, "a third done")
        os.killpg(consumer.pid, signal.SIGKILL)
        consumer.wait(timeout=10)
        in_flight = Upload.objects.filter(status=UploadStatus.PROCESSING).count()

        consumer = start_consumer(log, overrides)
        wait_for(
            lambda: (
                not Upload.objects.exclude(status=UploadStatus.NEEDS_REVIEW).exists()
                and outbox.pending_count() == 0
                and not emulator.queue(QUEUE).messages
            ),
            120,
            "every upload done and the queue empty",
        )
    finally:
        if consumer.poll() is None:
            os.killpg(consumer.pid, signal.SIGTERM)
            consumer.wait(timeout=30)

    per_upload = Counter(Extraction.objects.values_list("upload_id", flat=True))
    assert sorted(per_upload) == sorted(u.pk for u in uploads)
    assert set(per_upload.values()) == {1}, "an upload was extracted twice"
    assert set(Upload.objects.values_list("status", flat=True)) == {"needs_review"}
    assert outbox.pending_count() == 0
    assert consumer.returncode == 0, log.read_text()[-3000:]
    # The faults really happened, on every operation, both kinds.
    refused = Counter(
        (r.operation, r.status) for r in emulator.recorded(*FAULTED) if r.refused
    )
    for operation in (
        "queues-push-messages",
        "queues-pull-messages",
        "queues-ack-messages",
    ):
        assert refused[(operation, 429)] > 0, operation
        assert refused[(operation, 500)] > 0, operation
    sent = Counter(r.operation for r in emulator.recorded(*FAULTED))
    share = sum(refused.values()) / sum(sent.values())
    assert 0.2 < share < 0.4
    print(
        f"fault run: in_flight_at_kill={in_flight} requests={dict(sent)} "
        f"refused={sum(refused.values())}"
    )
