"""A small client for Cloudflare's Queues REST API, and its error mapping.

Every answer comes in Cloudflare's envelope (``success``, ``errors``,
``messages``, ``result``). Failures become queue errors the relay and the
consumer know how to treat:

- 429 (codes 10250-10253), 408, 5xx (code 15000) and network failures are
  ``CloudflareTransientError``: try again later, after ``Retry-After`` when
  the API sends one;
- any other 4xx is ``CloudflarePermanentError``, carrying Cloudflare's error
  code and message.

Error messages name the operation, the HTTP status and Cloudflare's code and
message. The API token is only ever put in the ``Authorization`` header.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx

from ..exceptions import PermanentQueueError, TransientQueueError
from ..retry_after import parse_retry_after

logger = logging.getLogger("django_cf_ingest.queues")

DEFAULT_API_BASE_URL = "https://api.cloudflare.com/client/v4"
USER_AGENT = "django-cf-ingest"


class CloudflareAPIError:
    """What Cloudflare answered: HTTP status and error codes (mixin)."""

    status_code: int | None = None
    codes: tuple[int, ...] = ()

    @property
    def code(self) -> int | None:
        return self.codes[0] if self.codes else None

    @property
    def is_auth_failure(self) -> bool:
        return self.status_code in (401, 403)


class CloudflareTransientError(CloudflareAPIError, TransientQueueError):
    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        codes: tuple[int, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status_code = status_code
        self.codes = codes


class CloudflarePermanentError(CloudflareAPIError, PermanentQueueError):
    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        codes: tuple[int, ...] = (),
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.codes = codes


def _errors(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict):
        return []
    errors = data.get("errors")
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, dict)]


def _describe(operation: str, status: int, errors: list[dict[str, Any]]) -> str:
    if not errors:
        return f"Cloudflare {operation} failed: HTTP {status}"
    parts = [
        f"code {e.get('code', '?')}: {str(e.get('message', '')).strip()[:300]}"
        for e in errors[:3]
    ]
    return f"Cloudflare {operation} failed: HTTP {status}, " + "; ".join(parts)


class QueuesAPI:
    """Calls under ``/accounts/{account_id}``; one HTTP client per instance,
    shared by the threads of the process."""

    def __init__(
        self, *, base_url: str, account_id: str, api_token: str, timeout: float
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account_id = account_id
        self._token = api_token
        self.timeout = timeout
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        #: Requests sent by this instance, for throughput figures.
        self.request_count = 0

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=f"{self.base_url}/accounts/{self.account_id}",
                    headers={
                        "Authorization": f"Bearer {self._token}",
                        "User-Agent": USER_AGENT,
                    },
                    timeout=self.timeout,
                )
            return self._client

    def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send one request; return the envelope of a successful answer."""
        client = self._http()
        with self._lock:
            self.request_count += 1
        started = time.monotonic()
        try:
            response = client.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise CloudflareTransientError(
                f"Cloudflare {operation} timed out ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise CloudflareTransientError(
                f"Cloudflare {operation} could not reach the API ({type(exc).__name__})"
            ) from exc
        elapsed_ms = int((time.monotonic() - started) * 1000)
        status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        logger.debug(
            "cloudflare call operation=%s status=%s duration_ms=%s",
            operation,
            status,
            elapsed_ms,
        )
        errors = _errors(data)
        codes = tuple(int(e["code"]) for e in errors if isinstance(e.get("code"), int))
        message = _describe(operation, status, errors)
        if status in (408, 429) or status >= 500:
            raise CloudflareTransientError(
                message,
                status_code=status,
                codes=codes,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise CloudflarePermanentError(message, status_code=status, codes=codes)
        if not isinstance(data, dict):
            # A proxy page or a cut-off body: the call may not have happened.
            raise CloudflareTransientError(
                f"Cloudflare {operation} answered HTTP {status} without a JSON "
                "envelope",
                status_code=status,
            )
        if data.get("success") is False:
            raise CloudflarePermanentError(message, status_code=status, codes=codes)
        return data

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
