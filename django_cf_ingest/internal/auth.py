"""Authentication of the internal endpoints.

Callers send one of the configured secrets in ``X-Internal-Secret``; every
configured secret is accepted, so a new one can be rolled out before the old
one is removed. When ``REQUIRE_SIGNATURE`` is on, they must also sign the
request: ``X-Signature`` is the hex HMAC-SHA256, keyed with the secret, of
``"<timestamp>.<method>.<path>.<body>"``, and ``X-Timestamp`` (Unix seconds)
must be within ``SIGNATURE_MAX_AGE`` of the server's clock.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

from ..conf import get_settings

SECRET_HEADER = "X-Internal-Secret"
SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"


@dataclass(frozen=True)
class AuthFailure:
    status: int
    code: str
    message: str


def sign(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    message = f"{timestamp}.{method.upper()}.{path}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _matching_secret(presented: str, secrets: tuple[str, ...]) -> str | None:
    match = None
    # Compare against every secret, so timing does not tell which one matched.
    for secret in secrets:
        if constant_time_compare(presented, secret) and match is None:
            match = secret
    return match


def authenticate(request: HttpRequest, body: bytes) -> AuthFailure | None:
    config = get_settings()
    if not config.INTERNAL_SECRETS:
        return AuthFailure(
            503, "not_configured", "The internal endpoints have no secret configured."
        )
    presented = request.headers.get(SECRET_HEADER, "")
    if not presented:
        return AuthFailure(401, "missing_secret", f"{SECRET_HEADER} is required.")
    secret = _matching_secret(presented, config.INTERNAL_SECRETS)
    if secret is None:
        return AuthFailure(403, "bad_secret", f"{SECRET_HEADER} is not accepted.")
    if not config.REQUIRE_SIGNATURE:
        return None

    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not timestamp or not signature:
        return AuthFailure(
            401, "missing_signature", "This endpoint requires a signed request."
        )
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return AuthFailure(401, "bad_timestamp", f"{TIMESTAMP_HEADER} is not a number.")
    if age > config.SIGNATURE_MAX_AGE:
        return AuthFailure(401, "stale_signature", "The signed request is too old.")
    expected = sign(secret, timestamp, request.method or "", request.path, body)
    if not constant_time_compare(signature, expected):
        return AuthFailure(403, "bad_signature", "The request signature is wrong.")
    return None
