"""Authentication of the internal endpoints.

Callers send one of the configured secrets in ``X-Internal-Secret``. Every
configured secret is accepted, so a new secret can be rolled out to the callers
before the old one is removed. The presented value is compared with each
secret in constant time, and with all of them, so the response time tells
neither how much of a guess was right nor which secret matched.

When ``REQUIRE_SIGNATURE`` is on, callers also sign every request:

- ``X-Timestamp`` is the Unix time in whole seconds;
- ``X-Signature`` is the hex HMAC-SHA256, keyed with the secret, of
  ``"<timestamp>.<METHOD>.<path>.<body>"``, where the path is the request's
  path followed by ``?`` and the query string when there is one.

A signed request is refused when its timestamp is more than
``SIGNATURE_MAX_AGE`` seconds away from the server's clock, and when its
signature was already seen within that window. Seen signatures are kept in the
cache named by ``REPLAY_CACHE``. For a replay to be caught whichever server
process it reaches, that cache must be shared by all of them (Redis, Memcached
or the database cache); Django's default local-memory cache only catches a
replay that reaches the same process, and the dummy cache catches none. Two
requests that are identical within one second have the same signature, so a
caller that may send the same request twice puts something unique in it: the
consumers send a random ``nonce``, in the JSON body of a POST and in the query
string of a GET.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass

from django.core.cache import caches
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

from ..conf import get_settings

SECRET_HEADER = "X-Internal-Secret"  # noqa: S105 - a header name
SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"

REPLAY_KEY_PREFIX = "cf_ingest:signature:"

logger = logging.getLogger("django_cf_ingest.internal")


@dataclass(frozen=True)
class AuthFailure:
    status: int
    code: str
    message: str
    retry_after: float | None = None


def sign(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    message = f"{timestamp}.{method.upper()}.{path}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_path(request: HttpRequest) -> str:
    """The path a signature covers: the path, and the query string if any."""
    query = request.META.get("QUERY_STRING", "")
    return f"{request.path}?{query}" if query else request.path


def signed_headers(
    secret: str, method: str, path: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The headers that authenticate one request, signed."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        SECRET_HEADER: secret,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, method, path, body),
    }


def configured_secrets() -> tuple[str, ...]:
    return tuple(secret for secret in get_settings().INTERNAL_SECRETS if secret)


def _matching_secret(presented: str, secrets: tuple[str, ...]) -> str | None:
    match = None
    # Compare against every secret, so timing does not tell which one matched.
    for secret in secrets:
        if constant_time_compare(presented, secret) and match is None:
            match = secret
    return match


def authenticate(request: HttpRequest, body: bytes) -> AuthFailure | None:
    """Check the request's credentials; ``None`` means it may proceed."""
    secrets = configured_secrets()
    if not secrets:
        return AuthFailure(
            503,
            "not_configured",
            "The internal endpoints have no secret configured.",
            retry_after=300,
        )
    presented = request.headers.get(SECRET_HEADER, "")
    if not presented:
        return AuthFailure(401, "missing_secret", f"{SECRET_HEADER} is required.")
    secret = _matching_secret(presented, secrets)
    if secret is None:
        return AuthFailure(403, "bad_secret", f"{SECRET_HEADER} is not accepted.")
    if not get_settings().REQUIRE_SIGNATURE:
        return None
    return _check_signature(request, body, secret)


def _check_signature(
    request: HttpRequest, body: bytes, secret: str
) -> AuthFailure | None:
    max_age = get_settings().SIGNATURE_MAX_AGE
    timestamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
    signature = request.headers.get(SIGNATURE_HEADER, "").strip().lower()
    if not timestamp or not signature:
        return AuthFailure(
            401, "missing_signature", "This endpoint requires a signed request."
        )
    if not timestamp.isdigit() or len(timestamp) > 12:
        return AuthFailure(401, "bad_timestamp", f"{TIMESTAMP_HEADER} is not a number.")
    if abs(time.time() - int(timestamp)) > max_age:
        return AuthFailure(
            401, "stale_signature", "The request's timestamp is outside the window."
        )
    expected = sign(secret, timestamp, request.method or "", signed_path(request), body)
    if not constant_time_compare(signature, expected):
        return AuthFailure(403, "bad_signature", "The request signature is wrong.")
    return _remember(expected, max_age)


def _remember(signature: str, max_age: int) -> AuthFailure | None:
    """Accept a signature once within the window in which it is valid."""
    cache = caches[get_settings().REPLAY_CACHE]
    # A timestamp is accepted up to max_age either side of now.
    timeout = 2 * max_age + 1
    try:
        first = cache.add(REPLAY_KEY_PREFIX + signature, 1, timeout=timeout)
    except Exception as exc:
        # Without the cache a replay cannot be told apart: refuse, and let the
        # caller come back. The error's text may name the cache's address.
        logger.error("replay cache failed error=%s", type(exc).__name__)
        return AuthFailure(
            503,
            "replay_check_unavailable",
            "The replay check is unavailable.",
            retry_after=30,
        )
    if not first:
        return AuthFailure(401, "replayed", "This signed request was already used.")
    return None
