"""The HTTP layer shared by providers: error classes, Retry-After, scrubbing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured

from django_cf_ingest.exceptions import (
    InvalidOutputError,
    PermanentProviderError,
    RateLimited,
    TransientProviderError,
)
from django_cf_ingest.providers.base import ExtractionRequest, ProviderResult
from django_cf_ingest.providers.http import (
    HttpProvider,
    ProviderHttp,
    error_for_response,
    parse_retry_after,
)
from tests.fakes.server import FakeResponse, FakeServer

SECRET = "very-secret-token-abcdef"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def http(server: FakeServer) -> Iterator[ProviderHttp]:
    client = ProviderHttp(
        "vendor",
        base_url=server.url + "/api/",
        timeout=2.0,
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    yield client
    client.close()


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)

    assert parse_retry_after(later, now=now) == 90.0
    assert parse_retry_after(earlier, now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "Mon, 99 Foo 2026"])
def test_retry_after_unreadable(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_success_returns_json_and_sends_headers(
    server: FakeServer, http: ProviderHttp
) -> None:
    server.enqueue(FakeResponse(json={"ok": True}))

    assert http.post_json("/run", {"a": 1}) == {"ok": True}

    request = server.last
    assert request.method == "POST"
    assert request.path == "/api/run"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {"a": 1}


def test_429_with_retry_after_seconds(server: FakeServer, http: ProviderHttp) -> None:
    server.enqueue(
        FakeResponse(
            429,
            json={
                "error": {
                    "code": 429,
                    "message": "Quota",
                    "status": "RESOURCE_EXHAUSTED",
                }
            },
            headers={"Retry-After": "17"},
        )
    )

    with pytest.raises(RateLimited) as caught:
        http.post_json("/run", {})

    assert caught.value.retry_after == 17.0
    assert caught.value.status_code == 429
    assert "RESOURCE_EXHAUSTED Quota" in str(caught.value)


def test_429_with_retry_after_date(server: FakeServer, http: ProviderHttp) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    server.enqueue(
        FakeResponse(429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    )

    with pytest.raises(RateLimited) as caught:
        http.post_json("/run", {})

    assert caught.value.retry_after is not None
    assert 115 <= caught.value.retry_after <= 120


def test_429_with_retry_after_ms(server: FakeServer, http: ProviderHttp) -> None:
    server.enqueue(FakeResponse(429, headers={"retry-after-ms": "2500"}))

    with pytest.raises(RateLimited) as caught:
        http.post_json("/run", {})

    assert caught.value.retry_after == 2.5


def test_429_without_retry_after(server: FakeServer, http: ProviderHttp) -> None:
    server.enqueue(FakeResponse(429, json={"error": {"message": "slow down"}}))

    with pytest.raises(RateLimited) as caught:
        http.post_json("/run", {})

    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_transient(
    server: FakeServer, http: ProviderHttp, status: int
) -> None:
    server.enqueue(FakeResponse(status, json={"error": {"message": "busy"}}))

    with pytest.raises(TransientProviderError) as caught:
        http.post_json("/run", {})

    assert not isinstance(caught.value, RateLimited)
    assert caught.value.status_code == status


def test_503_retry_after_is_kept(server: FakeServer, http: ProviderHttp) -> None:
    server.enqueue(FakeResponse(503, headers={"Retry-After": "4"}))

    with pytest.raises(TransientProviderError) as caught:
        http.post_json("/run", {})

    assert caught.value.retry_after == 4.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 301])
def test_client_errors_are_permanent(
    server: FakeServer, http: ProviderHttp, status: int
) -> None:
    server.enqueue(
        FakeResponse(status, json={"errors": [{"code": 7, "message": "no"}]})
    )

    with pytest.raises(PermanentProviderError) as caught:
        http.post_json("/run", {})

    assert caught.value.status_code == status
    assert "7 no" in str(caught.value)


def test_timeout_is_transient(server: FakeServer) -> None:
    server.enqueue(FakeResponse(json={}, delay=2.0))
    client = ProviderHttp("vendor", base_url=server.url, timeout=0.2)

    started = time.monotonic()
    with pytest.raises(TransientProviderError, match="timed out"):
        client.post_json("/run", {})
    client.close()

    assert time.monotonic() - started < 1.5


def test_connection_refused_is_transient() -> None:
    with FakeServer() as fake:
        url = fake.url
    client = ProviderHttp("vendor", base_url=url, timeout=1.0)

    with pytest.raises(TransientProviderError, match="could not be reached"):
        client.post_json("/run", {})
    client.close()


def test_dropped_connection_is_transient(
    server: FakeServer, http: ProviderHttp
) -> None:
    server.enqueue(FakeResponse(drop=True))

    with pytest.raises(TransientProviderError):
        http.post_json("/run", {})


def test_bad_scheme_is_permanent() -> None:
    client = ProviderHttp("vendor", base_url="ftp://127.0.0.1:1", timeout=1.0)

    with pytest.raises(PermanentProviderError, match="BASE_URL"):
        client.post_json("/run", {})
    client.close()


def test_body_that_is_not_json(server: FakeServer, http: ProviderHttp) -> None:
    server.enqueue(FakeResponse(body=b"<html>gateway</html>"))

    with pytest.raises(InvalidOutputError) as caught:
        http.post_json("/run", {})

    assert caught.value.raw_text == "<html>gateway</html>"


def test_empty_body(server: FakeServer, http: ProviderHttp) -> None:
    server.enqueue(FakeResponse(body=b""))

    with pytest.raises(InvalidOutputError, match="empty"):
        http.post_json("/run", {})


def test_error_message_never_quotes_a_body_that_is_not_json(
    server: FakeServer, http: ProviderHttp
) -> None:
    server.enqueue(FakeResponse(502, body=b"<html>upstream said: secret stuff</html>"))

    with pytest.raises(TransientProviderError) as caught:
        http.post_json("/run", {})

    assert "secret stuff" not in str(caught.value)
    assert "bytes of text/plain" in str(caught.value)


def test_echoed_credentials_are_scrubbed(
    server: FakeServer, http: ProviderHttp
) -> None:
    server.enqueue(
        FakeResponse(401, json={"error": {"message": f"Bad token {SECRET} given"}})
    )

    with pytest.raises(PermanentProviderError) as caught:
        http.post_json("/run", {})

    assert SECRET not in str(caught.value)
    assert "[redacted]" in str(caught.value)


def test_classify_sees_failed_responses_first(
    server: FakeServer, http: ProviderHttp
) -> None:
    server.enqueue(FakeResponse(400, json={"errors": [{"code": 3040}]}))

    def classify(response: httpx.Response) -> TransientProviderError | None:
        if response.json()["errors"][0]["code"] == 3040:
            return TransientProviderError("capacity", status_code=400)
        return None

    with pytest.raises(TransientProviderError, match="capacity"):
        http.post_json("/run", {}, classify=classify)


def test_classify_may_defer_to_the_status(
    server: FakeServer, http: ProviderHttp
) -> None:
    server.enqueue(FakeResponse(400, json={}))

    with pytest.raises(PermanentProviderError):
        http.post_json("/run", {}, classify=lambda response: None)


def test_error_for_response_without_a_request() -> None:
    response = httpx.Response(429, headers={"Retry-After": "3"}, json={})

    error = error_for_response(response, "vendor")

    assert isinstance(error, RateLimited)
    assert error.retry_after == 3.0


def test_one_client_serves_threads_concurrently() -> None:
    with FakeServer(latency=0.2) as fake:
        client = ProviderHttp("vendor", base_url=fake.url, timeout=5.0)
        # The first call builds the client (and its TLS context): not timed.
        fake.enqueue(FakeResponse(json={}))
        client.post_json("/warm-up", {})
        fake.enqueue(*[FakeResponse(json={"n": n}) for n in range(8)])
        results: list[object] = []

        def call() -> None:
            results.append(client.post_json("/run", {}))

        threads = [threading.Thread(target=call) for _ in range(8)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        client.close()

    assert sorted(r["n"] for r in results) == list(range(8))  # type: ignore[index]
    # Eight calls of 0.2 s each took well under 1.6 s: they ran side by side.
    assert elapsed < 1.2


class _Provider(HttpProvider):
    default_base_url = "https://api.example.com/"

    def extract(self, request: ExtractionRequest) -> ProviderResult:
        raise NotImplementedError


def test_http_provider_rejects_unknown_options() -> None:
    with pytest.raises(ImproperlyConfigured, match="API_KEYS"):
        _Provider("vendor", {"API_KEYS": "x"})


@pytest.mark.parametrize("timeout", ["soon", 0, -1])
def test_http_provider_rejects_bad_timeouts(timeout: object) -> None:
    with pytest.raises(ImproperlyConfigured, match="TIMEOUT"):
        _Provider("vendor", {"TIMEOUT": timeout})


def test_http_provider_defaults_and_lazy_client() -> None:
    provider = _Provider("vendor", {"TIMEOUT": "7.5"})

    assert provider.base_url == "https://api.example.com"
    assert provider.timeout == 7.5
    assert provider._http is None
    assert provider.http is provider.http
    provider.close()
    assert provider._http is None
