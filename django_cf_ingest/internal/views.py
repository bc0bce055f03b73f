"""Internal endpoints called by consumers (``cf_ingest_consume`` or the Worker).

The status code tells the caller what to do with its queue message:

========  ==============================================  ===================
Status    Meaning                                          Consumer
========  ==============================================  ===================
2xx       done, or already done                            ack
404       unknown upload                                   ack and drop
409       another delivery holds this upload               retry later
422       permanent failure; the upload is ``failed``      ack
429/503   transient failure (``Retry-After`` given)        retry after delay
401/403   bad credentials                                  log loudly, retry
========  ==============================================  ===================
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.csrf import csrf_exempt

from ..conf import get_settings
from ..models import Stage, Upload
from ..pipeline import Outcome, Result, mark_dead, process_upload
from .auth import authenticate

logger = logging.getLogger("django_cf_ingest.internal")

View = Callable[..., HttpResponse]


def error(status: int, code: str, message: str, /, **extra: Any) -> JsonResponse:
    """A JSON error ``{"error": {"code", "message"}}``; ``retryAfter`` in
    ``extra`` also becomes the ``Retry-After`` header (whole seconds)."""
    body = {"error": {"code": code, "message": message}, **extra}
    response = JsonResponse(body, status=status)
    retry_after = extra.get("retryAfter")
    if retry_after is not None:
        response["Retry-After"] = str(max(1, math.ceil(float(retry_after))))
    return response


def _read_body(request: HttpRequest, limit: int) -> bytes | JsonResponse:
    too_large = error(413, "body_too_large", f"The body exceeds {limit} bytes.")
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return error(400, "bad_length", "Content-Length is not a number.")
    if declared > limit:
        return too_large
    body = request.read(limit + 1)
    if len(body) > limit:
        return too_large
    return body


def internal_endpoint(*methods: str) -> Callable[[View], View]:
    """Secret-checked, CSRF-exempt, session-free, size-limited, method-limited.

    The view gets the raw body after the credentials were checked against it,
    and never the session or the user: nothing here reads them.
    """
    allowed = [method.upper() for method in methods]

    def decorator(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response = _guarded(view, allowed, request, *args, **kwargs)
            add_never_cache_headers(response)
            return response

        return wrapper

    return decorator


def _guarded(
    view: View, allowed: list[str], request: HttpRequest, *args: Any, **kwargs: Any
) -> HttpResponse:
    if request.method not in allowed:
        response = error(
            405, "method_not_allowed", f"Use {', '.join(allowed)} on this endpoint."
        )
        response["Allow"] = ", ".join(allowed)
        return response

    body = _read_body(request, get_settings().INTERNAL_MAX_BODY_SIZE)
    if isinstance(body, JsonResponse):
        return body

    failure = authenticate(request, body)
    if failure is not None:
        logger.warning(
            "internal call refused path=%s status=%s code=%s",
            request.path,
            failure.status,
            failure.code,
        )
        extra = (
            {} if failure.retry_after is None else {"retryAfter": failure.retry_after}
        )
        return error(failure.status, failure.code, failure.message, **extra)

    try:
        return view(request, body, *args, **kwargs)
    except Exception:
        # Our own failure: a 500 tells the caller to retry.
        logger.exception("internal endpoint failed path=%s", request.path)
        return error(500, "internal_error", "The server failed; try again later.")


def parse_upload_id(raw: str) -> int | None:
    # isdigit() alone also accepts non-ASCII digits, such as Arabic-Indic ones.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return None
    value = int(raw)
    return value if value > 0 else None


def parse_json(body: bytes) -> dict[str, Any] | JsonResponse:
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return error(400, "malformed_body", "The body is not valid JSON.")
    if not isinstance(data, dict):
        return error(400, "malformed_body", "The body must be a JSON object.")
    return data


def outcome_response(outcome: Outcome, **extra: Any) -> JsonResponse:
    """The response for a run's outcome; ``extra`` keys join the body."""
    payload = {**outcome.as_dict(), **extra}
    if outcome.result not in (Result.DONE, Result.ALREADY_DONE):
        # These two travel in the error object.
        payload.pop("error", None)
        payload.pop("code", None)
    match outcome.result:
        case Result.DONE | Result.ALREADY_DONE:
            return JsonResponse(payload, status=200)
        case Result.NOT_FOUND:
            return error(404, "unknown_upload", "No such upload.", **payload)
        case Result.BUSY:
            message = outcome.error or "Another delivery holds this upload."
            return error(409, outcome.error_code or "busy", message, **payload)
        case Result.FAILED:
            message = outcome.error or "The upload cannot be processed."
            return error(422, outcome.error_code or "failed", message, **payload)
        case Result.RETRY:
            status = 429 if outcome.error_code == "rate_limited" else 503
            payload.setdefault("retryAfter", 30)
            message = outcome.error or "Try again later."
            return error(status, outcome.error_code or "retry", message, **payload)


def _body_upload_id(body: bytes) -> object:
    """The ``uploadId`` of a JSON body, if the caller sent one."""
    if not body.strip():
        return None
    data = parse_json(body)
    if isinstance(data, JsonResponse):
        return data
    return data.get("uploadId")


@internal_endpoint("POST")
def ingest(request: HttpRequest, body: bytes, upload_id: str) -> HttpResponse:
    """Stage 1: run the pipeline on the server for one upload.

    The body may be empty. A JSON body may carry ``uploadId``, which must then
    be the id in the path, and anything else (the consumer sends a ``nonce``).
    """
    parsed = parse_upload_id(upload_id)
    if parsed is None:
        return error(400, "bad_upload_id", "The upload id must be a positive integer.")
    in_body = _body_upload_id(body)
    if isinstance(in_body, JsonResponse):
        return in_body
    if in_body is not None and (isinstance(in_body, bool) or in_body != parsed):
        return error(400, "upload_id_mismatch", "uploadId differs from the path.")

    outcome = process_upload(parsed, stage=Stage.STAGE1)
    logger.info("ingest upload=%s outcome=%s", parsed, outcome.result.value)
    return outcome_response(outcome)


@internal_endpoint("POST")
def dead(request: HttpRequest, body: bytes) -> HttpResponse:
    """Called for a message the queue gave up on (the Worker's DLQ handler)."""
    data = parse_json(body)
    if isinstance(data, JsonResponse):
        return data
    upload_id = data.get("uploadId")
    if isinstance(upload_id, bool) or not isinstance(upload_id, int) or upload_id <= 0:
        return error(400, "bad_upload_id", "uploadId must be a positive integer.")
    attempts = data.get("attempts")
    if attempts is not None and (
        isinstance(attempts, bool) or not isinstance(attempts, int)
    ):
        return error(400, "bad_attempts", "attempts must be an integer.")
    reason = str(
        data.get("reason") or data.get("error") or "dead-lettered by the queue"
    )
    # The queue does not know why the deliveries failed; the upload does.
    previous = (
        Upload.objects.filter(pk=upload_id).values_list("last_error", flat=True).first()
    )
    if previous:
        reason = f"{reason} Last error: {previous}"
    marked = mark_dead(upload_id, reason[:2000], attempts)
    return JsonResponse({"uploadId": upload_id, "marked": marked})
