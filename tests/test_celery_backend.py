"""The Celery backend against a real RabbitMQ broker and a real Celery worker."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from django_cf_ingest.models import Extraction, ProviderCall, Upload, UploadStatus
from django_cf_ingest.services import create_upload

from .conftest import make_png
from .subprocess_env import ROOT, child_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FAKE = {"BACKEND": "tests.fake_provider.FakeProvider"}


@pytest.fixture
def celery_queue(ingest_settings: Any) -> str:
    import example_project.celery  # noqa: F401  (the app producers send through)

    name = f"cf-ingest-test-{uuid.uuid4().hex[:8]}"
    ingest_settings(
        QUEUE={
            "BACKEND": "django_cf_ingest.queues.celery.CeleryBackend",
            "OPTIONS": {"QUEUE": name},
        }
    )
    return name


def start_worker(queue: str, **overrides: Any) -> subprocess.Popen[str]:
    overrides["QUEUE"] = {
        "BACKEND": "django_cf_ingest.queues.celery.CeleryBackend",
        "OPTIONS": {"QUEUE": queue},
    }
    return subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "example_project", "worker",
            "-Q", queue, "--pool", "threads", "--concurrency", "2",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel", "WARNING",
        ],
        cwd=ROOT,
        env=child_env(**overrides),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )  # fmt: skip


@pytest.fixture
def stop_later() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_worker_processes_each_upload_once(
    celery_queue: str, stop_later: list[subprocess.Popen[str]]
) -> None:
    uploads = [
        create_upload(io.BytesIO(make_png(f"c{n}")), "big-five", name=f"c{n}.png")
        for n in range(8)
    ]
    assert set(Upload.objects.values_list("status", flat=True)) == {"queued"}

    stop_later.append(
        start_worker(celery_queue, PROVIDERS={"fake": FAKE}, PROVIDER_CHAIN=["fake"])
    )
    wait_for(lambda: Extraction.objects.count() == len(uploads))

    assert set(Upload.objects.values_list("status", flat=True)) == {"needs_review"}
    assert ProviderCall.objects.count() == len(uploads)


def test_transient_failures_retry_then_go_dead(
    celery_queue: str, stop_later: list[subprocess.Popen[str]]
) -> None:
    upload = create_upload(io.BytesIO(make_png()), "big-five", name="flaky.png")

    stop_later.append(
        start_worker(
            celery_queue,
            PROVIDERS={"fake": {**FAKE, "FAIL": "transient"}},
            PROVIDER_CHAIN=["fake"],
            MAX_ATTEMPTS=3,
        )
    )
    wait_for(lambda: Upload.objects.get(pk=upload.pk).status == UploadStatus.DEAD)

    upload.refresh_from_db()
    assert upload.attempts == 3
    assert ProviderCall.objects.filter(upload=upload, status="error").count() == 3
    assert not Extraction.objects.exists()
