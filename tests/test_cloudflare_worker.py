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
import json
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
from django_cf_ingest.providers.workers_ai import response_format, system_prompt
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


def wait_for_lines(runtime: WorkerRuntime, count: int) -> list[dict[str, str]]:
    """The Worker's log lines about messages, once there are ``count`` of them
    (a line is written after the message is settled)."""
    wait_for(
        lambda: len([e for e in runtime.events() if "message" in e]) >= count,
        10,
        runtime,
        f"{count} log lines",
    )
    return [e for e in runtime.events() if "message" in e]


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
    events = wait_for_lines(runtime, 3)
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
    lines = wait_for_lines(runtime, 11)
    first, second = [e for e in lines if e.get("upload") == str(flaky.pk)]
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
    assert "fake outage" in upload.last_error  # the last delivery's error is kept
    assert server_calls.count("POST", ingest_path(upload)) == 3
    assert server_calls.count("POST", "/internal/ingest/dead") == 1

    # Each retry waited at least the delay the Worker asked for, and the
    # delays grow with the delivery count.
    lines = wait_for_lines(runtime, 4)
    tries = [e for e in lines if e.get("queue") == QUEUE]
    assert [e["attempt"] for e in tries] == ["1", "2", "3"]
    assert all(e["action"] == "retry" for e in tries)
    delays = [int(e["delay"]) for e in tries]
    assert delays == sorted(delays)
    assert delays[-1] > delays[0]
    times = server_calls.times("POST", ingest_path(upload))
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for gap, delay in zip(gaps, delays, strict=False):
        assert gap >= delay - 0.3
    (report,) = [e for e in lines if e.get("queue") == DEAD_LETTER_QUEUE]
    assert (report["outcome"], report["action"]) == ("dead_reported", "ack")


def test_signed_calls_with_the_new_secret_while_rotating(
    settings: Any,
    start_worker: Callable[..., WorkerRuntime],
    server_calls: ServerCalls,
) -> None:
    # Mid-rotation: the site accepts the old and the new secret, and the
    # Worker already has the new one.
    new_secret = "rotated-secret-fedcba9876543210"
    settings.CF_INGEST = {
        **settings.CF_INGEST,
        "INTERNAL_SECRETS": [SECRET, new_secret],
        "REQUIRE_SIGNATURE": True,
    }
    uploads = [new_upload("signed0.png"), new_upload("signed1.png")]
    runtime = start_worker(secret=new_secret, stage=1)

    runtime.enqueue([{"uploadId": u.pk} for u in uploads])

    wait_for(
        lambda: statuses(uploads) == {UploadStatus.NEEDS_REVIEW: 2},
        30,
        runtime,
        "the signed calls to be processed",
    )
    assert 'SIGN_REQUESTS = "true"' in (runtime.folder / "wrangler.toml").read_text()
    for upload in uploads:
        assert server_calls.count("POST", ingest_path(upload)) == 1


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

    lines = wait_for_lines(runtime, 3)
    outcomes = sorted((e["outcome"], e["action"]) for e in lines)
    assert outcomes == [("dropped", "ack"), ("malformed", "ack"), ("malformed", "ack")]
    assert server_calls.count("POST", "/internal/ingest/987654") == 1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def valid_answer(upload: Upload) -> dict[str, Any]:
    schema = upload.document_type.spec.json_schema
    data = fake_provider.sample_value(schema, schema.get("$defs", {}))
    assert isinstance(data, dict)
    return data


def stored_bytes(upload: Upload) -> bytes:
    with upload.file.open("rb") as stream:
        return stream.read()


def seed(runtime: WorkerRuntime, upload: Upload) -> bytes:
    """Put the upload's file in the Worker's R2 bucket under its storage key."""
    data = stored_bytes(upload)
    runtime.put_object(upload.file.name, data, upload.content_type)
    return data


def test_stage2_runs_the_model_at_the_edge(
    start_worker: Callable[..., WorkerRuntime], server_calls: ServerCalls
) -> None:
    first, second = new_upload("edge0.png"), new_upload("edge1.png")
    runtime = start_worker(stage=2, bucket="uploads")
    images = {first.pk: seed(runtime, first), second.pk: seed(runtime, second)}
    answer = valid_answer(first)
    # JSON Mode answers with an object; without it the text may wrap the JSON.
    runtime.set_ai_reply(
        {
            "output": {
                "response": answer,
                "usage": {"prompt_tokens": 1620, "completion_tokens": 48},
            }
        }
    )

    runtime.enqueue([{"uploadId": first.pk}])
    wait_for(
        lambda: statuses([first]) == {UploadStatus.NEEDS_REVIEW: 1},
        30,
        runtime,
        "the first edge run",
    )
    runtime.set_ai_reply(
        {
            "output": {
                "response": "Here it is:\n```json\n" + json.dumps(answer) + "\n```"
            }
        }
    )
    runtime.enqueue([{"uploadId": second.pk}])
    wait_for(
        lambda: statuses([second]) == {UploadStatus.NEEDS_REVIEW: 1},
        30,
        runtime,
        "the second edge run",
    )

    for upload in (first, second):
        extraction = upload.extractions.get()
        assert extraction.data == answer
        assert extraction.is_valid
        assert (extraction.stage, extraction.provider) == ("stage2", "workers_ai")
        assert server_calls.count("GET", f"/internal/ingest/meta/{upload.pk}") == 1
        assert server_calls.count("POST", ingest_path(upload)) == 0
    assert server_calls.count("POST", "/internal/ingest/complete") == 2
    ledger = first.provider_calls.get()
    assert (ledger.tokens_in, ledger.tokens_out) == (1620, 48)
    assert fake_provider.calls.total() == 0  # the site ran no provider itself

    calls = runtime.ai_calls()
    assert len(calls) == 2
    spec = first.document_type.spec
    for call, upload in zip(calls, (first, second), strict=True):
        # The stand-in decoded a base64 string into exactly the stored file.
        assert call["imageType"] == "base64"
        assert call["imageSha256"] == sha256(images[upload.pk])
        assert call["model"] == "@cf/meta/llama-3.2-11b-vision-instruct"
        assert call["maxTokens"] == 2048
        assert call["responseFormat"] == "json_schema"
        assert call["roles"] == ["system", "user"]
        # The same request the site's own Workers AI provider would send.
        assert call["systemPrompt"] == system_prompt(
            upload.document_type.instructions or spec.instructions, spec.json_schema
        )
        assert (
            call["responseFormatSchema"]
            == response_format(spec.json_schema)["json_schema"]
        )


def test_stage2_retries_a_busy_model_and_reports_a_missing_file(
    start_worker: Callable[..., WorkerRuntime], server_calls: ServerCalls
) -> None:
    busy, missing = new_upload("busy.png"), new_upload("missing.png")
    runtime = start_worker(stage=2, bucket="uploads")
    seed(runtime, busy)  # nothing stored for ``missing``
    runtime.set_ai_reply(
        [
            {"error": "3040: Capacity temporarily exceeded, please try again."},
            {"output": {"response": valid_answer(busy)}},
        ]
    )

    runtime.enqueue([{"uploadId": busy.pk}, {"uploadId": missing.pk}])

    wait_for(
        lambda: (
            statuses([busy, missing])
            == {UploadStatus.NEEDS_REVIEW: 1, UploadStatus.FAILED: 1}
        ),
        30,
        runtime,
        "one upload done and one failed",
    )
    lines = wait_for_lines(runtime, 3)
    busy.refresh_from_db()
    missing.refresh_from_db()
    assert busy.status == UploadStatus.NEEDS_REVIEW
    assert "not in R2" in missing.last_error
    # The refused call is in the ledger; the message came back once.
    assert list(
        busy.provider_calls.values_list("status", flat=True).order_by("id")
    ) == [
        "error",
        "ok",
    ]
    tries = [e for e in lines if e.get("upload") == str(busy.pk)]
    assert [(e["attempt"], e["action"], e["status"]) for e in tries] == [
        ("1", "retry", "429"),
        ("2", "ack", "200"),
    ]
    (gone,) = [e for e in lines if e.get("upload") == str(missing.pk)]
    assert (gone["action"], gone["status"], gone["outcome"]) == ("ack", "422", "failed")
    assert len(runtime.ai_calls()) == 2
