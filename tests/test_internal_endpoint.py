"""The internal ingest endpoint, called over HTTP on a live server."""

from __future__ import annotations

import threading
import time
from typing import Any
from unittest import mock

import httpx
import pytest
from django.core.checks import run_checks
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from django_cf_ingest.internal import auth
from django_cf_ingest.internal.auth import sign
from django_cf_ingest.models import (
    Extraction,
    ProviderCall,
    Stage,
    Upload,
    UploadStatus,
)

from . import fake_provider
from .stage1_support import FAKE, SECRET, new_upload

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_chain(ingest_settings: Any) -> None:
    ingest_settings(PROVIDERS={"fake": FAKE}, PROVIDER_CHAIN=["fake"])
    fake_provider.calls.clear()


def ingest_url(server: Any, upload_id: int | str) -> str:
    return f"{server.url}/internal/ingest/{upload_id}"


def post(
    url: str, *, secret: str | None = SECRET, body: bytes = b"", **headers: str
) -> httpx.Response:
    if secret is not None:
        headers["X-Internal-Secret"] = secret
    return httpx.post(url, content=body, headers=headers, timeout=30)


def signed(url: str, body: bytes, *, secret: str = SECRET, at: float | None = None):
    path = httpx.URL(url).path
    timestamp = str(int(time.time() if at is None else at))
    return {
        "X-Internal-Secret": secret,
        "X-Timestamp": timestamp,
        "X-Signature": sign(secret, timestamp, "POST", path, body),
    }


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return body["error"]["code"]


def untouched(upload: Upload) -> bool:
    upload.refresh_from_db()
    return upload.attempts == 0 and not upload.provider_calls.exists()


# Secrets ---------------------------------------------------------------------


def test_good_secret_runs_the_pipeline(live_server: Any, fake_chain: None) -> None:
    upload = new_upload()

    response = post(ingest_url(live_server, upload.pk))

    assert response.status_code == 200, response.text
    body = response.json()
    extraction = Extraction.objects.get(upload=upload)
    assert body["status"] == "done"
    assert body["uploadId"] == upload.pk
    assert body["extractionId"] == extraction.pk
    assert body["confidence"] == extraction.confidence
    assert (body["provider"], body["model"]) == ("fake", "fake-1")
    assert extraction.stage == Stage.STAGE1
    assert ProviderCall.objects.get(upload=upload).stage == Stage.STAGE1
    # No session, no CSRF token, nothing cached on the way.
    assert "set-cookie" not in response.headers
    assert "no-store" in response.headers["cache-control"]

    again = post(ingest_url(live_server, upload.pk))
    assert again.status_code == 200
    assert again.json()["status"] == "already_done"
    assert again.json()["extractionId"] == extraction.pk
    assert ProviderCall.objects.filter(upload=upload).count() == 1


def test_missing_or_bad_secret_is_refused(live_server: Any, fake_chain: None) -> None:
    upload = new_upload()
    cases = [
        (None, 401, "missing_secret"),
        ("", 401, "missing_secret"),
        ("wrong-secret-0123456789abcdef", 403, "bad_secret"),
        (SECRET[:-1], 403, "bad_secret"),
        (SECRET + "x", 403, "bad_secret"),
        (SECRET.upper(), 403, "bad_secret"),
    ]

    for secret, status, code in cases:
        response = post(ingest_url(live_server, upload.pk), secret=secret)
        assert response.status_code == status, secret
        assert error_code(response) == code, secret
    assert untouched(upload)


def test_no_secret_configured_refuses_every_call(
    live_server: Any, fake_chain: None, ingest_settings: Any
) -> None:
    ingest_settings(INTERNAL_SECRETS=[""])
    upload = new_upload()

    for secret in (SECRET, "", None):
        response = post(ingest_url(live_server, upload.pk), secret=secret)
        assert response.status_code == 503
        assert error_code(response) == "not_configured"
        assert int(response.headers["retry-after"]) > 0
    assert untouched(upload)
    assert "cf_ingest.W001" in {message.id for message in run_checks()}


def test_rotation_accepts_every_configured_secret(
    live_server: Any, fake_chain: None, ingest_settings: Any
) -> None:
    new_secret = "rotated-secret-fedcba9876543210"
    ingest_settings(INTERNAL_SECRETS=[new_secret, SECRET])
    first, second, third = new_upload("a.png"), new_upload("b.png"), new_upload("c.png")

    assert post(ingest_url(live_server, first.pk), secret=new_secret).status_code == 200
    assert post(ingest_url(live_server, second.pk), secret=SECRET).status_code == 200

    # Once the old secret is removed, it stops working.
    ingest_settings(INTERNAL_SECRETS=[new_secret])
    assert post(ingest_url(live_server, third.pk), secret=SECRET).status_code == 403
    assert untouched(third)


def test_secret_is_compared_in_constant_time_with_every_secret(
    live_server: Any, fake_chain: None, ingest_settings: Any
) -> None:
    accepted = [
        "one-secret-0123456789abcdef",
        "two-secret-0123456789abcdef",
        "three-secret-0123456789abc",
    ]
    ingest_settings(INTERNAL_SECRETS=accepted)
    upload = new_upload()

    for presented, status in [(accepted[0], 200), ("not-any-of-them", 403)]:
        with mock.patch.object(
            auth, "constant_time_compare", wraps=constant_time_compare
        ) as compare:
            response = post(ingest_url(live_server, upload.pk), secret=presented)

        assert response.status_code == status
        # Every secret is compared, even after a match, and only this way.
        assert [call.args for call in compare.call_args_list] == [
            (presented, secret) for secret in accepted
        ]


# Signed requests -------------------------------------------------------------


@pytest.fixture
def signing(fake_chain: None, ingest_settings: Any) -> None:
    ingest_settings(REQUIRE_SIGNATURE=True, SIGNATURE_MAX_AGE=60)


def test_signed_request_is_accepted(live_server: Any, signing: None) -> None:
    upload = new_upload()
    url = ingest_url(live_server, upload.pk)
    body = b'{"uploadId": %d, "nonce": "a"}' % upload.pk

    response = httpx.post(url, content=body, headers=signed(url, body))

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "done"


def test_unsigned_request_is_refused_when_signing_is_required(
    live_server: Any, signing: None
) -> None:
    upload = new_upload()

    response = post(ingest_url(live_server, upload.pk))

    assert response.status_code == 401
    assert error_code(response) == "missing_signature"
    assert untouched(upload)


def test_bad_signature_is_refused(live_server: Any, signing: None) -> None:
    upload, other = new_upload("a.png"), new_upload("b.png")
    url = ingest_url(live_server, upload.pk)
    body = b'{"nonce": "b"}'
    good = signed(url, body)
    flipped = good["X-Signature"][:-1] + "01"[good["X-Signature"][-1] == "0"]
    # Signed with a key the server does not hold, sent with a good secret.
    foreign = {**signed(url, body, secret="other-secret-0123456789abcdef")}
    foreign["X-Internal-Secret"] = SECRET
    cases = [
        ("body", url, b'{"nonce": "c"}', good, "bad_signature"),
        ("path", ingest_url(live_server, other.pk), body, good, "bad_signature"),
        ("signature", url, body, {**good, "X-Signature": flipped}, "bad_signature"),
        ("key", url, body, foreign, "bad_signature"),
        ("timestamp", url, body, {**good, "X-Timestamp": "soon"}, "bad_timestamp"),
    ]

    for tamper, target, content, headers, code in cases:
        response = httpx.post(target, content=content, headers=headers)
        assert response.status_code in (401, 403), tamper
        assert error_code(response) == code, tamper
    assert untouched(upload)
    assert untouched(other)


def test_timestamp_outside_the_window_is_refused(
    live_server: Any, signing: None
) -> None:
    upload = new_upload()
    url = ingest_url(live_server, upload.pk)
    body = b"{}"

    for offset in (-61, 61, -3600):
        at = time.time() + offset
        response = httpx.post(url, content=body, headers=signed(url, body, at=at))
        assert response.status_code == 401, offset
        assert error_code(response) == "stale_signature", offset
    assert untouched(upload)


def test_signed_get_covers_its_query_string(live_server: Any, signing: None) -> None:
    upload = new_upload()
    base = f"{live_server.url}/internal/ingest/meta/{upload.pk}"

    def signed_get(nonce: str) -> dict[str, str]:
        timestamp = str(int(time.time()))
        path = f"/internal/ingest/meta/{upload.pk}?nonce={nonce}"
        return {
            "X-Internal-Secret": SECRET,
            "X-Timestamp": timestamp,
            "X-Signature": sign(SECRET, timestamp, "GET", path, b""),
        }

    # Two GETs of the same resource in the same second differ by their nonce.
    first = httpx.get(f"{base}?nonce=one", headers=signed_get("one"))
    second = httpx.get(f"{base}?nonce=two", headers=signed_get("two"))
    tampered = httpx.get(f"{base}?nonce=three", headers=signed_get("four"))

    assert first.status_code == 200, first.text
    assert second.status_code == 409  # signed correctly; the first holds the upload
    assert error_code(second) == "busy"
    assert tampered.status_code == 403
    assert error_code(tampered) == "bad_signature"


def test_replayed_signed_request_is_refused(live_server: Any, signing: None) -> None:
    upload = new_upload()
    url = ingest_url(live_server, upload.pk)
    body = b'{"nonce": "once"}'
    headers = signed(url, body)

    first = httpx.post(url, content=body, headers=headers)
    replay = httpx.post(url, content=body, headers=headers)

    assert first.status_code == 200
    assert replay.status_code == 401
    assert error_code(replay) == "replayed"
    # A fresh signature for the same upload is a new request, not a replay.
    fresh_body = b'{"nonce": "twice"}'
    fresh = httpx.post(url, content=fresh_body, headers=signed(url, fresh_body))
    assert fresh.status_code == 200
    assert fresh.json()["status"] == "already_done"
    assert ProviderCall.objects.filter(upload=upload).count() == 1


# Requests the endpoint refuses -------------------------------------------------


def test_malformed_id_is_refused(live_server: Any, fake_chain: None) -> None:
    upload = new_upload()
    raw_ids = ["abc", "0", "-1", "1.5", "1e3", "12345678901234567890", "%201"]
    # Arabic-Indic digits (U+0660 to U+0669) pass str.isdigit().
    arabic_indic = {ord("0") + d: 0x660 + d for d in range(10)}
    raw_ids += ["\u0661", str(upload.pk).translate(arabic_indic)]

    for raw_id in raw_ids:
        response = post(ingest_url(live_server, raw_id))
        assert response.status_code == 400, raw_id
        assert error_code(response) == "bad_upload_id", raw_id
    assert untouched(upload)


def test_body_naming_another_upload_is_refused(
    live_server: Any, fake_chain: None
) -> None:
    upload, other = new_upload("a.png"), new_upload("b.png")

    for body in (b'{"uploadId": %d}' % other.pk, b'{"uploadId": true}', b"[1]", b"{"):
        response = post(ingest_url(live_server, upload.pk), body=body)
        assert response.status_code == 400, body
        assert error_code(response) in ("upload_id_mismatch", "malformed_body")
    assert untouched(upload)
    assert untouched(other)


def test_oversized_body_is_refused(
    live_server: Any, fake_chain: None, ingest_settings: Any
) -> None:
    ingest_settings(INTERNAL_MAX_BODY_SIZE=1024)
    upload = new_upload()
    url = ingest_url(live_server, upload.pk)

    response = post(url, body=b"{" + b" " * 4096 + b"}")

    assert response.status_code == 413
    assert error_code(response) == "body_too_large"
    assert untouched(upload)
    # A body within the limit still goes through.
    assert post(url, body=b"{" + b" " * 1000 + b"}").status_code == 200


def test_unknown_upload_is_404(live_server: Any, fake_chain: None) -> None:
    response = post(ingest_url(live_server, 987654))

    assert response.status_code == 404
    assert error_code(response) == "unknown_upload"


def test_other_methods_are_405(live_server: Any, fake_chain: None) -> None:
    upload = new_upload()

    for method in ("GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
        response = httpx.request(
            method,
            ingest_url(live_server, upload.pk),
            headers={"X-Internal-Secret": SECRET},
        )
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST", method
        if method != "HEAD":
            assert error_code(response) == "method_not_allowed", method
    assert untouched(upload)


# What the status code says ------------------------------------------------------


def test_permanent_failure_is_422_and_the_upload_failed(
    live_server: Any, ingest_settings: Any
) -> None:
    ingest_settings(
        PROVIDERS={"fake": {**FAKE, "FAIL": "permanent"}}, PROVIDER_CHAIN=["fake"]
    )
    upload = new_upload()

    response = post(ingest_url(live_server, upload.pk))

    upload.refresh_from_db()
    assert response.status_code == 422
    assert error_code(response) == "permanent"
    assert upload.status == UploadStatus.FAILED
    assert "fake refusal" in upload.last_error
    assert ProviderCall.objects.get(upload=upload).status == "error"


@pytest.mark.parametrize(
    ("failure", "status", "code", "retry_after"),
    [("transient", 503, "transient", "1"), ("rate_limited", 429, "rate_limited", "7")],
)
def test_transient_failure_says_when_to_retry(
    live_server: Any,
    ingest_settings: Any,
    failure: str,
    status: int,
    code: str,
    retry_after: str,
) -> None:
    ingest_settings(
        PROVIDERS={"fake": {**FAKE, "FAIL": failure}}, PROVIDER_CHAIN=["fake"]
    )
    upload = new_upload()

    response = post(ingest_url(live_server, upload.pk))

    assert response.status_code == status
    assert error_code(response) == code
    assert response.headers["retry-after"] == retry_after
    assert response.json()["retryAfter"] == int(retry_after)


def test_low_confidence_requeue_is_503(live_server: Any, ingest_settings: Any) -> None:
    ingest_settings(
        PROVIDERS={"fake": {**FAKE, "CONFIDENCE": 0.2}},
        PROVIDER_CHAIN=["fake"],
        REQUEUE_ON_LOW_CONFIDENCE=True,
        LOW_CONFIDENCE_RETRY_DELAY=120,
    )
    upload = new_upload()

    response = post(ingest_url(live_server, upload.pk))

    upload.refresh_from_db()
    assert response.status_code == 503
    assert error_code(response) == "low_confidence"
    assert response.headers["retry-after"] == "120"
    assert upload.status == UploadStatus.QUEUED


def test_upload_held_by_another_delivery_is_409(
    live_server: Any, fake_chain: None
) -> None:
    upload = new_upload()
    Upload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.PROCESSING,
        delivery_token="someone-else",
        processing_started_at=timezone.now(),
    )

    response = post(ingest_url(live_server, upload.pk))

    assert response.status_code == 409
    assert error_code(response) == "busy"
    assert int(response.headers["retry-after"]) > 0


def test_own_failure_is_a_json_500(live_server: Any, fake_chain: None) -> None:
    upload = new_upload()

    with mock.patch(
        "django_cf_ingest.internal.views.process_upload",
        side_effect=RuntimeError("database went away"),
    ):
        response = post(ingest_url(live_server, upload.pk))

    assert response.status_code == 500
    assert error_code(response) == "internal_error"
    assert "database" not in response.text


def test_concurrent_duplicate_deliveries_make_one_extraction(
    live_server: Any, ingest_settings: Any
) -> None:
    ingest_settings(PROVIDERS={"fake": {**FAKE, "DELAY": 0.5}}, PROVIDER_CHAIN=["fake"])
    fake_provider.calls.clear()
    upload = new_upload("dup.png")
    url = ingest_url(live_server, upload.pk)
    start = threading.Barrier(8)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def deliver() -> None:
        start.wait()
        response = post(url)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = sorted(r.status_code for r in responses)
    outcomes = [r.json().get("status") for r in responses if r.status_code == 200]
    assert len(responses) == 8
    assert set(statuses) <= {200, 409}
    assert outcomes.count("done") == 1
    assert Extraction.objects.filter(upload=upload).count() == 1
    assert ProviderCall.objects.filter(upload=upload).count() == 1
    assert fake_provider.calls["dup.png"] == 1


# The dead-letter endpoint --------------------------------------------------------


def test_dead_endpoint_marks_the_upload(live_server: Any, fake_chain: None) -> None:
    upload = new_upload()
    url = f"{live_server.url}/internal/ingest/dead"
    body = b'{"uploadId": %d, "attempts": 5, "reason": "gave up"}' % upload.pk

    refused = post(url, secret="wrong-secret-0123456789abcdef", body=body)
    response = post(url, body=body)

    upload.refresh_from_db()
    assert refused.status_code == 403
    assert response.status_code == 200
    assert response.json() == {"uploadId": upload.pk, "marked": True}
    assert upload.status == UploadStatus.DEAD
    assert upload.attempts == 5


# System checks --------------------------------------------------------------------


def test_replay_cache_checks(settings: Any, ingest_settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
    }
    ingest_settings(REQUIRE_SIGNATURE=True)
    assert "cf_ingest.W023" in {m.id for m in run_checks()}

    ingest_settings(REPLAY_CACHE="missing")
    assert "cf_ingest.E020" in {m.id for m in run_checks()}

    ingest_settings(REQUIRE_SIGNATURE=False)
    ids = {m.id for m in run_checks()}
    assert not ids & {"cf_ingest.W023", "cf_ingest.E020"}
