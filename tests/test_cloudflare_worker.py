"""The Cloudflare Worker consumer, run in workerd against the live test server.

Each test writes the Worker with ``cf_ingest_worker`` (pointed at the live
server), starts it in workerd through Miniflare, and feeds its queue through a
queue binding. The site uses a fast fake provider, so the tests are about
delivery: acks, retries, the dead-letter queue, and the Stage 2 round trip.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.signals import request_started
from pytest_django.live_server_helper import LiveServer

from django_cf_ingest.exceptions import TransientProviderError
from django_cf_ingest.models import Upload, UploadStatus
from django_cf_ingest.providers.base import ExtractionRequest, ProviderResult
from django_cf_ingest.services import create_upload

from . import fake_provider
from .conftest import make_png
from .worker_runtime import SKIP_REASON, WorkerRuntime, node_modules_present

SECRET = "test-secret-0123456789abcdef"
QUEUE = "cf-ingest-test"
DEAD_LETTER_QUEUE = "cf-ingest-test-dlq"

pytestmark = [
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.skipif(not node_modules_present(), reason=SKIP_REASON),
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
]


class ScriptedProvider(fake_provider.FakeProvider):
    """The fake provider, failing for some file names: ``always-down*`` fails
    every time, ``down-once*`` fails the first time only (transient, with
    Retry-After 1)."""

    def extract(self, request: ExtractionRequest) -> ProviderResult:
        name = request.filename
        failing = name.startswith("always-down") or (
            name.startswith("down-once") and fake_provider.calls[name] == 0
        )
        if failing:
            fake_provider.calls[name] += 1
            raise TransientProviderError("fake outage", status_code=503, retry_after=1)
        return super().extract(request)


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    """pytest-django's live server on 127.0.0.1, where the Worker reaches it."""
    server = LiveServer("127.0.0.1")
    yield server
    server.stop()


@pytest.fixture
def site(settings: Any, live_server: LiveServer) -> LiveServer:
    fake_provider.calls.clear()
    settings.CF_INGEST = {
        **settings.CF_INGEST,
        "PROVIDERS": {
            "fake": {"BACKEND": "tests.test_cloudflare_worker.ScriptedProvider"}
        },
        "PROVIDER_CHAIN": ["fake"],
        "INTERNAL_SECRETS": [SECRET],
        "INTERNAL_INGEST_BASE_URL": live_server.url,
        "MAX_ATTEMPTS": 3,
        "RETRY_BASE_DELAY": 1.0,
        "RETRY_MAX_DELAY": 4.0,
    }
    return live_server


class ServerCalls:
    """Requests the live server received, by method and path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[float, str, str]] = []

    def __call__(
        self, sender: Any, environ: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if environ is None:
            return
        with self.lock:
            self.calls.append(
                (time.monotonic(), environ["REQUEST_METHOD"], environ["PATH_INFO"])
            )

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return sum(1 for _, m, p in self.calls if m == method and p == path)

    def times(self, method: str, path: str) -> list[float]:
        with self.lock:
            return [t for t, m, p in self.calls if m == method and p == path]


@pytest.fixture
def server_calls() -> Iterator[ServerCalls]:
    recorder = ServerCalls()
    request_started.connect(recorder, weak=False)
    yield recorder
    request_started.disconnect(recorder)


@pytest.fixture
def start_worker(
    site: LiveServer, tmp_path: Path
) -> Iterator[Callable[..., WorkerRuntime]]:
    runtimes: list[WorkerRuntime] = []

    def start(secret: str = SECRET, **options: Any) -> WorkerRuntime:
        folder = tmp_path / f"worker{len(runtimes)}"
        call_command(
            "cf_ingest_worker",
            str(folder),
            queue=QUEUE,
            dlq=DEAD_LETTER_QUEUE,
            batch_timeout=1,
            stdout=io.StringIO(),
            stderr=io.StringIO(),
            **options,
        )
        runtime = WorkerRuntime(folder, secret, tmp_path / f"worker{len(runtimes)}.log")
        runtimes.append(runtime)
        return runtime.start()

    yield start
    for runtime in runtimes:
        runtime.stop()


def new_upload(name: str) -> Upload:
    return create_upload(io.BytesIO(make_png(name)), "big-five", name=name)


def wait_for(
    predicate: Callable[[], bool], timeout: float, runtime: WorkerRuntime, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(
        f"timed out waiting for {what}\n--- worker log ---\n{runtime.log()}"
    )


def statuses(uploads: list[Upload]) -> Counter[str]:
    ids = [u.pk for u in uploads]
    return Counter(Upload.objects.filter(pk__in=ids).values_list("status", flat=True))


def ingest_path(upload: Upload) -> str:
    return f"/internal/ingest/{upload.pk}"


def test_stage1_processes_what_the_queue_delivers(
    start_worker: Callable[..., WorkerRuntime], server_calls: ServerCalls
) -> None:
    uploads = [new_upload(f"plain{n}.png") for n in range(3)]
    runtime = start_worker(stage=1)

    runtime.enqueue([{"uploadId": u.pk} for u in uploads])

    wait_for(
        lambda: statuses(uploads) == {UploadStatus.NEEDS_REVIEW: 3},
        30,
        runtime,
        "three uploads to be processed",
    )
    for upload in uploads:
        assert server_calls.count("POST", ingest_path(upload)) == 1
        assert upload.extractions.count() == 1
    events = [e for e in runtime.events() if e.get("queue") == QUEUE]
    assert sorted(e["upload"] for e in events) == sorted(str(u.pk) for u in uploads)
    assert {(e["outcome"], e["action"], e["status"]) for e in events} == {
        ("done", "ack", "200")
    }
    assert all(int(e["ms"]) >= 0 for e in events)


def test_one_failing_message_is_retried_alone(
    start_worker: Callable[..., WorkerRuntime], server_calls: ServerCalls
) -> None:
    good = [new_upload(f"good{n}.png") for n in range(9)]
    flaky = new_upload("down-once.png")
    batch = [*good[:4], flaky, *good[4:]]
    runtime = start_worker(stage=1)

    runtime.enqueue([{"uploadId": u.pk} for u in batch])

    wait_for(
        lambda: statuses(batch) == {UploadStatus.NEEDS_REVIEW: 10},
        30,
        runtime,
        "all ten uploads to be processed",
    )
    # The nine good messages reached the site once; only the failed one came back.
    for upload in good:
        assert server_calls.count("POST", ingest_path(upload)) == 1
        assert fake_provider.calls[upload.original_name] == 1
    assert server_calls.count("POST", ingest_path(flaky)) == 2
    assert fake_provider.calls["down-once.png"] == 2
    first, second = [e for e in runtime.events() if e.get("upload") == str(flaky.pk)]
    assert (first["attempt"], first["action"], first["status"]) == ("1", "retry", "503")
    assert int(first["delay"]) >= 1  # the site's Retry-After
    assert (second["attempt"], second["action"]) == ("2", "ack")


def test_retries_back_off_until_the_dead_letter_queue_reports_the_upload(
    start_worker: Callable[..., WorkerRuntime], server_calls: ServerCalls
) -> None:
    upload = new_upload("always-down.png")
    runtime = start_worker(stage=1)  # MAX_ATTEMPTS 3 gives max_retries 2

    runtime.enqueue([{"uploadId": upload.pk}])

    wait_for(
        lambda: statuses([upload]) == {UploadStatus.DEAD: 1},
        60,
        runtime,
        "the upload to be marked dead",
    )
    upload.refresh_from_db()
    assert upload.attempts == 3
    assert "3 deliveries" in upload.last_error
    assert server_calls.count("POST", ingest_path(upload)) == 3
    assert server_calls.count("POST", "/internal/ingest/dead") == 1

    # Each retry waited at least the delay the Worker asked for, and the
    # delays grow with the delivery count.
    tries = [e for e in runtime.events() if e.get("queue") == QUEUE]
    assert [e["attempt"] for e in tries] == ["1", "2", "3"]
    assert all(e["action"] == "retry" for e in tries)
    delays = [int(e["delay"]) for e in tries]
    assert delays == sorted(delays)
    assert delays[-1] > delays[0]
    times = server_calls.times("POST", ingest_path(upload))
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for gap, delay in zip(gaps, delays, strict=False):
        assert gap >= delay - 0.3
    (report,) = [e for e in runtime.events() if e.get("queue") == DEAD_LETTER_QUEUE]
    assert (report["outcome"], report["action"]) == ("dead_reported", "ack")


def test_signed_calls_are_accepted(
    settings: Any,
    start_worker: Callable[..., WorkerRuntime],
    server_calls: ServerCalls,
) -> None:
    settings.CF_INGEST = {**settings.CF_INGEST, "REQUIRE_SIGNATURE": True}
    uploads = [new_upload("signed0.png"), new_upload("signed1.png")]
    runtime = start_worker(stage=1)

    runtime.enqueue([{"uploadId": u.pk} for u in uploads])

    wait_for(
        lambda: statuses(uploads) == {UploadStatus.NEEDS_REVIEW: 2},
        30,
        runtime,
        "the signed calls to be processed",
    )
    assert 'SIGN_REQUESTS = "true"' in (runtime.folder / "wrangler.toml").read_text()


def test_a_refused_secret_is_logged_and_retried_not_dropped(
    start_worker: Callable[..., WorkerRuntime], server_calls: ServerCalls
) -> None:
    upload = new_upload("refused.png")
    runtime = start_worker(secret="not-the-site-secret-0123456789", stage=1)

    runtime.enqueue([{"uploadId": upload.pk}])

    wait_for(
        lambda: any(e.get("outcome") == "unauthorized" for e in runtime.events()),
        30,
        runtime,
        "the refusal",
    )
    (event,) = runtime.events()
    assert (event["action"], event["status"]) == ("retry", "403")
    assert int(event["delay"]) >= 60
    assert "INTERNAL_SECRETS" in event["hint"]
    assert "not-the-site-secret" not in runtime.log()
    assert statuses([upload]) == {UploadStatus.QUEUED: 1}


def test_unknown_and_malformed_messages_are_dropped(
    start_worker: Callable[..., WorkerRuntime], server_calls: ServerCalls
) -> None:
    runtime = start_worker(stage=1)

    runtime.enqueue([{"uploadId": 987654}, {"upload": "x"}, "not json"])

    wait_for(lambda: len(runtime.events()) == 3, 30, runtime, "three log lines")
    outcomes = sorted((e["outcome"], e["action"]) for e in runtime.events())
    assert outcomes == [("dropped", "ack"), ("malformed", "ack"), ("malformed", "ack")]
    assert server_calls.count("POST", "/internal/ingest/987654") == 1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
