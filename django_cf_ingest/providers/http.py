"""HTTP plumbing for providers that call a vendor's REST API.

``HttpProvider`` is the base class of such providers. It checks the option
keys, reads ``BASE_URL`` and ``TIMEOUT``, and owns one ``ProviderHttp``: a
thread-safe ``httpx.Client`` created on first use and closed with the
provider. A subclass names its options and its defaults, gives its auth
headers, and calls ``self.http.post_json(path, payload)``::

    class MyProvider(HttpProvider):
        default_base_url = "https://api.example.com"
        option_keys = HttpProvider.option_keys | {"API_KEY", "MODEL"}

        def auth_headers(self) -> dict[str, str]:
            return {"Authorization": f"Bearer {self.options['API_KEY']}"}

        def extract(self, request):
            answer = self.http.post_json("/v1/run", {...})

``post_json`` returns the decoded JSON of a 2xx answer, or raises:

    timeouts, connection failures, 408, 425, 5xx   TransientProviderError
    429                                            RateLimited, with retry_after
                                                   from Retry-After(-Ms)
    other statuses                                 PermanentProviderError
    a 2xx body that is empty or not JSON           InvalidOutputError

A vendor whose errors need more than the status code passes ``classify``,
which sees the failed response first and may return its own error.

Error messages hold the vendor's short explanation, cut to a few hundred
characters and scrubbed of the client's header values. They reach the usage
ledger, so they never contain a request or response body. Logging is at
DEBUG and holds statuses, sizes and times only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import httpx
from django.core.exceptions import ImproperlyConfigured

from ..exceptions import (
    InvalidOutputError,
    PermanentProviderError,
    ProviderError,
    RateLimited,
    TransientProviderError,
)
from ..retry_after import parse_retry_after
from ..validation import parse_json_text
from .base import Provider, ProviderResult, Usage

logger = logging.getLogger("django_cf_ingest.providers.http")

#: Longest vendor explanation kept in an error message.
MAX_DETAIL = 300
#: Statuses under 500 that still mean "try again later".
TRANSIENT_STATUSES = frozenset({408, 425})

Classifier = Callable[[httpx.Response], ProviderError | None]


def retry_after(response: httpx.Response) -> float | None:
    """The delay a response asks for, from ``Retry-After-Ms`` or ``Retry-After``."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    return parse_retry_after(response.headers.get("retry-after"))


def error_detail(response: httpx.Response) -> str:
    """The vendor's own short explanation of a failed response.

    Understands the common JSON error bodies: ``{"error": {"message",
    "status"}}`` (Google, OpenAI), ``{"errors": [{"code", "message"}]}``
    (Cloudflare), ``{"error": "..."}`` and ``{"message": "..."}``. Anything
    else is described by its size, never quoted.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    parts: list[str] = []
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            label = error.get("status") or error.get("type") or error.get("code")
            parts += [str(label or ""), str(error.get("message") or "")]
        elif isinstance(error, str):
            parts.append(error)
        errors = body.get("errors")
        if isinstance(errors, list):
            for item in errors[:3]:
                if isinstance(item, dict):
                    parts.append(f"{item.get('code', '')} {item.get('message', '')}")
        if not any(parts) and isinstance(body.get("message"), str):
            parts.append(body["message"])
    detail = " ".join(part.strip() for part in parts if part and part.strip())
    if not detail:
        kind = response.headers.get("content-type", "").split(";")[0] or "no type"
        detail = f"({len(response.content)} bytes of {kind})"
    return detail[:MAX_DETAIL]


def error_for_response(response: httpx.Response, provider: str) -> ProviderError:
    """The error class for a response that is not a 2xx."""
    status = response.status_code
    message = f"{provider} answered HTTP {status}: {error_detail(response)}"
    if status == 429:
        return RateLimited(
            message, status_code=status, retry_after=retry_after(response)
        )
    if status >= 500 or status in TRANSIENT_STATUSES:
        return TransientProviderError(
            message, status_code=status, retry_after=retry_after(response)
        )
    return PermanentProviderError(message, status_code=status)


def error_for_exception(exc: httpx.HTTPError, provider: str) -> ProviderError:
    """The error class for a request that got no usable response."""
    if isinstance(exc, httpx.TimeoutException):
        return TransientProviderError(f"{provider} timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.DecodingError):
        return InvalidOutputError(f"{provider} sent an undecodable body")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return PermanentProviderError(
            f"{provider} cannot be called: {type(exc).__name__}. Check BASE_URL."
        )
    return TransientProviderError(
        f"{provider} could not be reached ({type(exc).__name__})"
    )


def decode_json(response: httpx.Response, provider: str) -> Any:
    """The JSON body of a successful response, or ``InvalidOutputError``."""
    text = response.text
    if not text.strip():
        raise InvalidOutputError(f"{provider} answered with an empty body")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidOutputError(
            f"{provider} answered with a body that is not JSON", raw_text=text
        ) from exc


class ProviderHttp:
    """One ``httpx.Client`` for one provider, safe to share between threads."""

    def __init__(
        self,
        provider: str,
        *,
        base_url: str,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self.base_url,
                    headers=self.headers,
                    timeout=httpx.Timeout(
                        self.timeout, connect=min(10.0, self.timeout)
                    ),
                    follow_redirects=False,
                )
            return self._client

    def post_json(
        self,
        path: str,
        payload: Any,
        *,
        classify: Classifier | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """POST ``payload`` as JSON to ``base_url + path``; return the JSON answer."""
        response = self.post(path, payload, headers=headers)
        if not response.is_success:
            error = classify(response) if classify else None
            raise self.scrub(error or error_for_response(response, self.provider))
        return decode_json(response, self.provider)

    def post(
        self, path: str, payload: Any, *, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """POST without judging the status; transport failures still raise."""
        started = time.monotonic()
        try:
            response = self.client.post(path, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            logger.debug(
                "provider request failed provider=%s error=%s ms=%d",
                self.provider,
                type(exc).__name__,
                (time.monotonic() - started) * 1000,
            )
            raise self.scrub(error_for_exception(exc, self.provider)) from exc
        logger.debug(
            "provider response provider=%s status=%s bytes=%s ms=%d",
            self.provider,
            response.status_code,
            len(response.content),
            (time.monotonic() - started) * 1000,
        )
        return response

    def scrub(self, error: ProviderError) -> ProviderError:
        """Remove header values (keys, tokens) from an error's message."""
        message = str(error)
        cleaned = redact(message, self._secrets())
        if cleaned != message:
            error.args = (cleaned, *error.args[1:])
        return error

    def _secrets(self) -> Iterable[str]:
        for value in self.headers.values():
            yield value
            if " " in value:
                # "Bearer <token>": the token alone may be echoed back.
                yield value.split(" ", 1)[1]

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def with_usage(error: ProviderError, tokens_in: int, tokens_out: int) -> ProviderError:
    """Attach the tokens a failed call consumed, for the usage ledger."""
    error.tokens_in = tokens_in
    error.tokens_out = tokens_out
    return error


def result_from_text(
    text: str, *, model: str, usage: Usage, raw_response: Any, unreadable: str
) -> ProviderResult:
    """The result of an answer whose text should hold a JSON object.

    Raises ``InvalidOutputError`` saying ``unreadable`` when it holds none,
    carrying the tokens the call still consumed.
    """
    try:
        data = parse_json_text(text)
    except ValueError:
        raise with_usage(
            InvalidOutputError(unreadable, raw_text=text),
            usage.tokens_in,
            usage.tokens_out,
        ) from None
    return ProviderResult(
        data=data if isinstance(data, dict) else None,
        model=model,
        usage=usage,
        raw_response=raw_response,
        raw_text=text,
    )


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
    return text


class HttpProvider(Provider):
    """Base class of providers that call a REST API through ``ProviderHttp``."""

    default_base_url: ClassVar[str] = ""
    default_timeout: ClassVar[float] = 120.0
    #: Accepted option keys; any other key is a configuration error.
    option_keys: ClassVar[frozenset[str]] = frozenset({"BASE_URL", "TIMEOUT"})

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(name, options)
        unknown = sorted(set(self.options) - self.option_keys)
        if unknown:
            raise ImproperlyConfigured(
                f"Provider {name!r} has unknown option(s): {', '.join(unknown)}. "
                f"Known options: {', '.join(sorted(self.option_keys))}."
            )
        self._http: ProviderHttp | None = None
        self._http_lock = threading.Lock()
        self.number_option("TIMEOUT")

    def number_option(self, key: str, *, integer: bool = False) -> float | None:
        """A positive number option, None when unset; ImproperlyConfigured
        when set to anything else."""
        value = self.options.get(key)
        if value is None or value == "":
            return None
        try:
            number = int(value) if integer else float(value)
        except (TypeError, ValueError):
            number = 0
        if number <= 0:
            raise ImproperlyConfigured(
                f"Provider {self.name!r} option {key} must be a positive "
                f"{'integer' if integer else 'number'}, not {value!r}."
            )
        return number

    @property
    def base_url(self) -> str:
        return str(self.options.get("BASE_URL") or self.default_base_url).rstrip("/")

    @property
    def timeout(self) -> float:
        return self.number_option("TIMEOUT") or self.default_timeout

    def auth_headers(self) -> dict[str, str]:
        """Headers sent with every request, typically the credentials."""
        return {}

    @property
    def http(self) -> ProviderHttp:
        with self._http_lock:
            if self._http is None:
                self._http = ProviderHttp(
                    self.name,
                    base_url=self.base_url,
                    timeout=self.timeout,
                    headers=self.auth_headers(),
                )
            return self._http

    def close(self) -> None:
        with self._http_lock:
            if self._http is not None:
                self._http.close()
                self._http = None
