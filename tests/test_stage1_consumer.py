"""The consumer's Stage 1 mode: each endpoint answer leads to the documented
queue action, many requests stay in flight, and nothing secret is logged."""

from __future__ import annotations

import base64
import io
import json
import logging
import signal
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from unittest import mock

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_cf_ingest.consumer.handlers import Decision
from django_cf_ingest.consumer.stage1 import Stage1Handler
from django_cf_ingest.consumer.worker import Worker
from django_cf_ingest.internal.auth import sign
from django_cf_ingest.models import (
    Extraction,
    ProviderCall,
    QueueMessage,
    Stage,
    Upload,
    UploadStatus,
)
from django_cf_ingest.queues import get_backend
from django_cf_ingest.services import create_upload

from . import fake_provider
from .fakes import gemini
from .fakes.gemini import google_error
from .stage1_support import (
    FAKE,
    SECRET,
    Reply,
    ScriptedSite,
    new_upload,
    scripted_site,
    upload_many,
)
from .subprocess_env import manage

__all__ = ["scripted_site"]

# Tests that touch the database share it with a live server or a subprocess.
uses_db = pytest.mark.django_db(transaction=True)

NEW_SECRET = "rotated-secret-fedcba9876543210"


@pytest.fixture
def ingest_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture the app's records too: its logger does not propagate to root."""
    logger = logging.getLogger("django_cf_ingest")
    level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)


@pytest.fixture
def restore_signals_and_logging() -> Iterator[None]:
    """The command installs signal handlers and sets the app's log level."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    logger = logging.getLogger("django_cf_ingest")
    level = logger.level
    yield
    for signum, handler in handlers.items():
        signal.signal(signum, handler)
    logger.setLevel(level)


def site_handler(ingest_settings: Any, url: str, **overrides: Any) -> Stage1Handler:
    ingest_settings(INTERNAL_INGEST_BASE_URL=url, **overrides)
    return Stage1Handler(concurrency=2)


def run_worker(handler: Stage1Handler, **kwargs: Any) -> Worker:
    kwargs.setdefault("poll_interval", 0.05)
    worker = Worker(get_backend(), handler, **kwargs)
    worker.run()
    return worker


def queued_delay(message: QueueMessage) -> float:
    return (message.available_at - timezone.now()).total_seconds()


# Mapping answers to decisions -----------------------------------------------------


def _err(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": "m"}}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            Reply(200, {"status": "done", "uploadId": 5, "extractionId": 9}),
            Decision("ack", "done"),
        ),
        (Reply(200, {"status": "already_done"}), Decision("ack", "already_done")),
        (Reply(201, ""), Decision("ack", "done")),
        (
            Reply(404, _err("unknown_upload")),
            Decision("ack", "not_found", reason="HTTP 404 unknown_upload"),
        ),
        (
            Reply(404, "<h1>Page not found</h1>"),
            Decision("retry", "misrouted", 60.0, "HTTP 404"),
        ),
        (
            Reply(409, _err("busy"), {"Retry-After": "75"}),
            Decision("retry", "busy", 75.0, "HTTP 409 busy"),
        ),
        (
            Reply(422, _err("permanent")),
            Decision("ack", "failed", reason="HTTP 422 permanent"),
        ),
        (
            Reply(429, _err("rate_limited"), {"Retry-After": "7"}),
            Decision("retry", "rate_limited", 7.0, "HTTP 429 rate_limited"),
        ),
        (
            Reply(503, _err("low_confidence"), {"Retry-After": "300"}),
            Decision("retry", "low_confidence", 300.0, "HTTP 503 low_confidence"),
        ),
        (
            Reply(503, "overloaded", {"Retry-After": "12"}),
            Decision("retry", "unavailable", 12.0, "HTTP 503"),
        ),
        (
            Reply(401, _err("missing_secret")),
            Decision("retry", "unauthorized", 60.0, "HTTP 401 missing_secret"),
        ),
        (
            Reply(403, _err("bad_secret")),
            Decision("retry", "unauthorized", 60.0, "HTTP 403 bad_secret"),
        ),
        (
            Reply(500, _err("internal_error")),
            Decision("retry", "server_error", None, "HTTP 500 internal_error"),
        ),
        (
            Reply(502, "bad gateway"),
            Decision("retry", "server_error", None, "HTTP 502"),
        ),
        (
            Reply(400, _err("bad_upload_id")),
            Decision("retry", "unexpected_status", None, "HTTP 400 bad_upload_id"),
        ),
        (
            Reply(413, _err("body_too_large")),
            Decision("retry", "unexpected_status", None, "HTTP 413 body_too_large"),
        ),
        (
            Reply(302, "", {"Location": "https://elsewhere.example/"}),
            Decision("retry", "unexpected_status", None, "HTTP 302"),
        ),
    ],
)
def test_answer_maps_to_decision(
    scripted_site: ScriptedSite, ingest_settings: Any, reply: Reply, expected: Decision
) -> None:
    scripted_site.reply = reply
    handler = site_handler(ingest_settings, scripted_site.url)

    decision = handler.handle(5)

    handler.close()
    assert decision == expected
    assert len(scripted_site.requests) == 1  # redirects are not followed


def test_retry_after_as_http_date(
    scripted_site: ScriptedSite, ingest_settings: Any
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)
    scripted_site.reply = Reply(
        503, _err("transient"), {"Retry-After": format_datetime(when, usegmt=True)}
    )
    handler = site_handler(ingest_settings, scripted_site.url)

    decision = handler.handle(5)

    assert decision.action == "retry"
    assert decision.delay is not None
    assert 85 <= decision.delay <= 90


def test_timeout_and_unreachable_site_are_retried(
    scripted_site: ScriptedSite, ingest_settings: Any
) -> None:
    scripted_site.reply = Reply(200, {"status": "done"}, delay=1.5)
    slow = site_handler(ingest_settings, scripted_site.url, HTTP_TIMEOUT=0.3)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    unreachable = site_handler(ingest_settings, f"http://127.0.0.1:{closed_port}")

    assert slow.handle(5) == Decision("retry", "timeout", reason="ReadTimeout")
    assert unreachable.handle(5) == Decision(
        "retry", "network_error", reason="ConnectError"
    )


def test_refused_credentials_are_logged_loudly_without_the_secret(
    scripted_site: ScriptedSite, ingest_settings: Any, ingest_logs: Any
) -> None:
    scripted_site.reply = Reply(403, _err("bad_secret"))
    handler = site_handler(ingest_settings, scripted_site.url)

    handler.handle(5)

    errors = [r for r in ingest_logs.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "status=403" in message
    assert "code=bad_secret" in message
    assert "upload=5" in message
    assert SECRET not in ingest_logs.text


# The request itself ---------------------------------------------------------------


def test_request_carries_the_first_secret_and_a_unique_body(
    scripted_site: ScriptedSite, ingest_settings: Any
) -> None:
    handler = site_handler(
        ingest_settings, scripted_site.url, INTERNAL_SECRETS=[NEW_SECRET, SECRET]
    )

    handler.handle(41)
    handler.handle(41)

    first, second = scripted_site.requests
    assert (first.method, first.path) == ("POST", "/internal/ingest/41")
    assert first.headers["X-Internal-Secret"] == NEW_SECRET
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["User-Agent"].startswith("django-cf-ingest/")
    assert "X-Signature" not in first.headers
    bodies = [json.loads(r.body) for r in (first, second)]
    assert [b["uploadId"] for b in bodies] == [41, 41]
    assert len(bodies[0]["nonce"]) == 32
    assert bodies[0]["nonce"] != bodies[1]["nonce"]


def test_signed_request_under_a_mounted_path(
    scripted_site: ScriptedSite, ingest_settings: Any
) -> None:
    handler = site_handler(
        ingest_settings,
        scripted_site.url + "/site/",
        REQUIRE_SIGNATURE=True,
        INTERNAL_URL_PREFIX="hooks/ingest/",
    )

    handler.handle(7)

    (request,) = scripted_site.requests
    timestamp = request.headers["X-Timestamp"]
    assert request.path == "/site/hooks/ingest/7"
    assert abs(int(timestamp) - time.time()) < 5
    assert request.headers["X-Signature"] == sign(
        SECRET, timestamp, "POST", request.path, request.body
    )


def test_handler_refuses_to_start_without_url_or_secret(
    ingest_settings: Any, restore_signals_and_logging: None
) -> None:
    for overrides, words in [
        ({"INTERNAL_INGEST_BASE_URL": ""}, "is empty"),
        ({"INTERNAL_INGEST_BASE_URL": "ftp://files.example"}, "absolute http(s)"),
        ({"INTERNAL_INGEST_BASE_URL": "http://site.example/?a=1"}, "query string"),
        ({"INTERNAL_INGEST_BASE_URL": "http://u:p@site.example"}, "credentials"),
        ({"INTERNAL_INGEST_BASE_URL": "http://site.example:99999"}, "not a valid"),
        ({"INTERNAL_SECRETS": []}, "INTERNAL_SECRETS"),
    ]:
        ingest_settings(
            INTERNAL_SECRETS=[SECRET], INTERNAL_INGEST_BASE_URL="https://a.example"
        )
        ingest_settings(**overrides)
        with pytest.raises(
            CommandError, match=words.replace("(", r"\(").replace(")", r"\)")
        ):
            call_command("cf_ingest_consume", "--stage", "1", "--max-messages", "0")


def test_base_url_checks(ingest_settings: Any) -> None:
    def ids() -> set[str]:
        return {m.id for m in run_checks() if m.id}

    ingest_settings(INTERNAL_INGEST_BASE_URL="")
    assert "cf_ingest.W020" in ids()
    ingest_settings(USE_EDGE_INGEST=True)
    assert "cf_ingest.W020" not in ids()
    ingest_settings(INTERNAL_INGEST_BASE_URL="site.example/app")
    assert "cf_ingest.W021" in ids()
    ingest_settings(INTERNAL_INGEST_BASE_URL="http://site.example")
    assert "cf_ingest.W022" in ids()
    for good in (
        "https://site.example/app/",
        "http://127.0.0.1:8000",
        "http://localhost",
    ):
        ingest_settings(INTERNAL_INGEST_BASE_URL=good)
        assert not ids() & {"cf_ingest.W020", "cf_ingest.W021", "cf_ingest.W022"}


# Queue actions through the worker -------------------------------------------------


#: An answer, and where its message ends: acked (None) or retried after a
#: delay within (low, high) seconds.
QUEUE_ACTIONS: list[tuple[Reply, tuple[float, float] | None]] = [
    (Reply(200, {"status": "done"}), None),
    (Reply(404, _err("unknown_upload")), None),
    (Reply(422, _err("permanent")), None),
    (Reply(409, _err("busy"), {"Retry-After": "75"}), (75, 76)),
    (Reply(429, _err("rate_limited"), {"Retry-After": "30"}), (30, 31)),
    (Reply(503, _err("transient"), {"Retry-After": "45"}), (45, 46)),
    (Reply(401, _err("missing_secret")), (60, 61)),
    (Reply(403, _err("bad_secret")), (60, 61)),
    (Reply(404, "<h1>Not found</h1>"), (60, 61)),
    (Reply(500, _err("internal_error")), (1, 2.1)),
]


@uses_db
def test_answer_leads_to_queue_action(
    scripted_site: ScriptedSite, ingest_settings: Any
) -> None:
    for number, (reply, retried_within) in enumerate(QUEUE_ACTIONS, start=1):
        handler = site_handler(
            ingest_settings,
            scripted_site.url,
            RETRY_BASE_DELAY=2.0,
            RETRY_MAX_DELAY=3600,
        )
        scripted_site.reply = reply
        body = {"uploadId": number}
        get_backend().enqueue_batch([body])

        worker = run_worker(handler, max_messages=1, relay=False)

        case = f"HTTP {reply.status} {reply.body!r}"
        assert scripted_site.requests[-1].path.endswith(f"/{number}"), case
        message = QueueMessage.objects.filter(body=body).first()
        if retried_within is None:
            assert message is None, case
            assert worker.stats.acked == 1, case
            continue
        low, high = retried_within
        assert message is not None, case
        assert worker.stats.retried == 1, case
        assert (message.lease_id, message.dead_at, message.attempts) == ("", None, 1)
        assert low - 1 <= queued_delay(message) <= high, case
    assert len(scripted_site.requests) == len(QUEUE_ACTIONS)


@uses_db
def test_one_failure_does_not_retry_the_batch(
    scripted_site: ScriptedSite, ingest_settings: Any
) -> None:
    scripted_site.reply = lambda path: (
        Reply(503, _err("transient"), {"Retry-After": "30"})
        if path.endswith("/3")
        else Reply(200, {"status": "done"})
    )
    handler = site_handler(ingest_settings, scripted_site.url, RETRY_MAX_DELAY=3600)
    get_backend().enqueue_batch([{"uploadId": n} for n in range(1, 6)])

    worker = run_worker(handler, concurrency=5, batch_size=5, max_messages=5)

    assert (worker.stats.acked, worker.stats.retried) == (4, 1)
    assert [m.body for m in QueueMessage.objects.all()] == [{"uploadId": 3}]
    assert len(scripted_site.requests) == 5


# Requests in flight ---------------------------------------------------------------


@uses_db
@pytest.mark.parametrize("batch_size", [None, "10"])
def test_concurrency_64_keeps_64_requests_in_flight(
    scripted_site: ScriptedSite,
    ingest_settings: Any,
    restore_signals_and_logging: None,
    batch_size: str | None,
) -> None:
    scripted_site.reply = Reply(200, {"status": "done"}, delay=1.0)
    ingest_settings(INTERNAL_INGEST_BASE_URL=scripted_site.url)
    get_backend().enqueue_batch([{"uploadId": n} for n in range(1, 129)])
    args = ["--stage", "1", "--concurrency", "64", "--drain", "--poll-interval", "0.05"]
    if batch_size:
        args += ["--batch-size", batch_size]

    started = time.monotonic()
    call_command("cf_ingest_consume", *args, verbosity=0)
    elapsed = time.monotonic() - started

    assert len(scripted_site.requests) == 128
    assert scripted_site.peak == 64
    assert not QueueMessage.objects.exists()
    # Two rounds of 1 s when the pool stays full; one at a time would take 128 s.
    assert elapsed < 30


# Against the real endpoint --------------------------------------------------------


@pytest.fixture
def fake_chain(ingest_settings: Any, live_server: Any) -> None:
    ingest_settings(
        PROVIDERS={"fake": FAKE},
        PROVIDER_CHAIN=["fake"],
        INTERNAL_INGEST_BASE_URL=live_server.url,
    )
    fake_provider.calls.clear()


@uses_db
@pytest.mark.parametrize("signed", [False, True])
def test_consumer_processes_uploads_through_the_endpoint(
    fake_chain: None, ingest_settings: Any, signed: bool
) -> None:
    ingest_settings(REQUIRE_SIGNATURE=signed)
    uploads = upload_many(8)

    worker = run_worker(Stage1Handler(concurrency=4), concurrency=4, drain=True)

    assert worker.stats.outcomes == {"done": 8}
    assert not QueueMessage.objects.exists()
    for upload in uploads:
        upload.refresh_from_db()
        assert upload.status == UploadStatus.NEEDS_REVIEW
        assert upload.extractions.get().stage == Stage.STAGE1
    assert ProviderCall.objects.count() == 8


Scenario = Callable[[Any], int]


def _unknown(ingest_settings: Any) -> int:
    return 123456


def _permanent(ingest_settings: Any) -> int:
    ingest_settings(PROVIDERS={"fake": {**FAKE, "FAIL": "permanent"}})
    return new_upload().pk


def _transient(ingest_settings: Any) -> int:
    ingest_settings(PROVIDERS={"fake": {**FAKE, "FAIL": "transient"}})
    return new_upload().pk


def _rate_limited(ingest_settings: Any) -> int:
    ingest_settings(PROVIDERS={"fake": {**FAKE, "FAIL": "rate_limited"}})
    return new_upload().pk


def _busy(ingest_settings: Any) -> int:
    upload = new_upload()
    Upload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.PROCESSING,
        delivery_token="another",
        processing_started_at=timezone.now(),
    )
    return upload.pk


def _site_has_another_secret(ingest_settings: Any) -> int:
    ingest_settings(INTERNAL_SECRETS=[NEW_SECRET])
    return new_upload().pk


def _site_has_no_secret(ingest_settings: Any) -> int:
    ingest_settings(INTERNAL_SECRETS=[])
    return new_upload().pk


#: How a run goes wrong, what the consumer makes of the answer, and where the
#: message ends: acked (None) or retried after at least so many seconds.
ENDPOINT_CASES: list[tuple[Scenario, str, float | None, str | None]] = [
    (_unknown, "not_found", None, None),
    (_permanent, "failed", None, UploadStatus.FAILED),
    (_transient, "transient", 1, UploadStatus.FAILED),
    (_rate_limited, "rate_limited", 7, UploadStatus.FAILED),
    (_busy, "busy", 60, UploadStatus.PROCESSING),
    (_site_has_another_secret, "unauthorized", 60, UploadStatus.QUEUED),
    (_site_has_no_secret, "not_configured", 300, UploadStatus.QUEUED),
]


@uses_db
def test_endpoint_answer_leads_to_queue_action(
    live_server: Any, ingest_settings: Any, ingest_logs: Any
) -> None:
    for scenario, outcome, retried_after, upload_status in ENDPOINT_CASES:
        ingest_settings(
            PROVIDERS={"fake": FAKE},
            PROVIDER_CHAIN=["fake"],
            INTERNAL_INGEST_BASE_URL=live_server.url,
            INTERNAL_SECRETS=[SECRET],
            RETRY_MAX_DELAY=3600,
        )
        handler = Stage1Handler(concurrency=1)  # keeps the secret it starts with
        upload_id = scenario(ingest_settings)
        body = {"uploadId": upload_id}
        if not QueueMessage.objects.filter(body=body).exists():
            get_backend().enqueue_batch([body])  # an unknown upload
        ingest_logs.clear()

        worker = run_worker(handler, max_messages=1, relay=False)

        case = scenario.__name__
        message = QueueMessage.objects.filter(body=body).first()
        assert worker.stats.outcomes == {outcome: 1}, case
        if retried_after is None:
            assert message is None, case
        else:
            assert message is not None, case
            assert message.lease_id == "", case
            assert queued_delay(message) >= retried_after - 1, case
        if upload_status:
            assert Upload.objects.get(pk=upload_id).status == upload_status, case
        errors = [
            record
            for record in ingest_logs.records
            if record.levelno >= logging.ERROR
            and record.name.startswith("django_cf_ingest")
        ]
        assert bool(errors) == (outcome in ("unauthorized", "not_configured")), case


@uses_db
@pytest.mark.slow
def test_default_chain_through_the_endpoint(
    live_server: Any, ingest_settings: Any
) -> None:
    from example_project.demo import samples

    manifest = json.loads((samples.SAMPLES_DIR / "manifest.json").read_text())
    entry = next(e for e in manifest if e["file"] == "big-five-a.png")
    ingest_settings(INTERNAL_INGEST_BASE_URL=live_server.url)
    content = (samples.SAMPLES_DIR / entry["file"]).read_bytes()
    upload = create_upload(io.BytesIO(content), entry["type"], name=entry["file"])

    worker = run_worker(Stage1Handler(concurrency=1), drain=True)

    upload.refresh_from_db()
    extraction = upload.extractions.get()
    assert worker.stats.outcomes == {"done": 1}
    assert upload.status == UploadStatus.NEEDS_REVIEW
    assert (extraction.provider, extraction.stage) == ("ocr", Stage.STAGE1)
    assert extraction.is_valid
    assert extraction.data == entry["expected"]
    assert upload.provider_calls.get().status == "ok"


# End to end, in a separate process ------------------------------------------------


@uses_db
@pytest.mark.slow
def test_consume_command_in_a_subprocess(live_server: Any, fake_chain: None) -> None:
    uploads = upload_many(6, prefix="e2e")
    overrides = {
        "PROVIDERS": {"fake": FAKE},
        "PROVIDER_CHAIN": ["fake"],
        "INTERNAL_INGEST_BASE_URL": live_server.url,
    }

    consumer = manage(
        "cf_ingest_consume",
        "--stage",
        "1",
        "--drain",
        "--concurrency",
        "3",
        "--poll-interval",
        "0.1",
        **overrides,
    )
    output, _ = consumer.communicate(timeout=120)

    assert consumer.returncode == 0, output
    assert "acked=6" in output
    assert SECRET not in output
    assert set(Upload.objects.values_list("status", flat=True)) == {"needs_review"}
    extractions = Extraction.objects.filter(upload__in=uploads)
    assert sorted(e.upload_id for e in extractions) == sorted(u.pk for u in uploads)
    assert {e.stage for e in extractions} == {Stage.STAGE1}
    assert not QueueMessage.objects.exists()


# Log hygiene ----------------------------------------------------------------------


@uses_db
def test_nothing_secret_is_logged(
    live_server: Any,
    ingest_settings: Any,
    ingest_logs: Any,
    capfd: pytest.CaptureFixture[str],
    fake_gemini: gemini.FakeGemini,
) -> None:
    api_key = "AIzaFakeKey-d41d8cd98f00b204e9800998ecf8427e"
    wrong_secret = "consumer-wrong-secret-5f4dcc3b5aa765d6"
    fake = {**FAKE, "API_KEY": api_key}
    ingest_settings(
        PROVIDERS={"fake": fake},
        PROVIDER_CHAIN=["fake"],
        INTERNAL_INGEST_BASE_URL=live_server.url,
        INTERNAL_SECRETS=[NEW_SECRET, SECRET],
        REQUIRE_SIGNATURE=True,
    )
    uploads = upload_many(4, prefix="hygiene")
    files = [u.file.open("rb").read() for u in uploads]
    for upload in uploads:
        upload.file.close()

    # Successes, signed, with the secrets rotated.
    run_worker(Stage1Handler(concurrency=2), concurrency=2, drain=True)
    # A permanent failure, a transient one, the site's own failure.
    ingest_settings(PROVIDERS={"fake": {**fake, "FAIL": "permanent"}})
    Stage1Handler().handle(new_upload("hygiene-p.png").pk)
    ingest_settings(PROVIDERS={"fake": {**fake, "FAIL": "transient"}})
    Stage1Handler().handle(new_upload("hygiene-t.png").pk)
    with mock.patch(
        "django_cf_ingest.internal.views.process_upload",
        side_effect=RuntimeError("boom"),
    ):
        Stage1Handler().handle(uploads[0].pk)
    # The Gemini provider, against a local fake of its API: a success, a
    # rate limit and a refusal.
    ingest_settings(
        PROVIDERS={"google": {"API_KEY": gemini.API_KEY, "BASE_URL": fake_gemini.url}},
        PROVIDER_CHAIN=["google"],
    )
    fake_gemini.enqueue(
        google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded."),
        google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    )
    google_uploads = [new_upload(f"hygiene-g{n}.png") for n in range(3)]
    for upload in google_uploads:
        Stage1Handler().handle(upload.pk)
    assert len(fake_gemini.requests) >= 3
    assert Extraction.objects.filter(upload__in=google_uploads).count() == 1
    files += [u.file.open("rb").read() for u in google_uploads]
    # Refused credentials, and a replayed signed request.
    refused = Stage1Handler()
    refused.site.secret = wrong_secret
    refused.handle(uploads[1].pk)
    replaying = Stage1Handler()
    url = replaying.url(uploads[2].pk)
    body = b'{"nonce": "same"}'
    headers = replaying.request_headers(url, body)
    for _ in range(2):
        replaying.site.http.post(url, content=body, headers=headers)

    out, err = capfd.readouterr()
    captured = "\n".join([ingest_logs.text, out, err])
    for record in ingest_logs.records:
        captured += "\n" + record.getMessage() + repr(record.args)
        if record.exc_info:
            captured += logging.Formatter().formatException(record.exc_info)
    # The capture works: the runs above were logged.
    assert "upload=" in captured
    assert "code=bad_secret" in captured
    assert "code=replayed" in captured
    assert "internal endpoint failed" in captured

    forbidden = [SECRET, NEW_SECRET, wrong_secret, api_key, gemini.API_KEY]
    for content in files:
        forbidden += [
            base64.b64encode(content).decode()[:40],
            base64.b64encode(content[100:400]).decode()[4:44],
            base64.urlsafe_b64encode(content[100:400]).decode()[4:44],
            content[100:130].hex(),
            repr(content[100:130])[2:-1],
        ]
    leaked = [needle for needle in forbidden if needle in captured]
    assert not leaked
