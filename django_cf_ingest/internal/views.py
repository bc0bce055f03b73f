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
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from ..conf import get_settings
from ..models import Stage
from ..pipeline import Outcome, Result, mark_dead, process_upload
from .auth import authenticate

logger = logging.getLogger("django_cf_ingest.internal")

View = Callable[..., HttpResponse]


def error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message}, **extra}, status=status)
    retry_after = extra.get("retryAfter")
    if retry_after is not None:
        response["Retry-After"] = str(max(1, math.ceil(float(retry_after))))
    return response


def internal_endpoint(*methods: str) -> Callable[[View], View]:
    """Secret-checked, CSRF-exempt, session-free, size-limited, method-limited."""

    def decorator(view: View) -> View:
        @csrf_exempt
        @require_http_methods(list(methods))
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            limit = get_settings().INTERNAL_MAX_BODY_SIZE
            try:
                declared = int(request.headers.get("Content-Length") or 0)
            except ValueError:
                return error(400, "bad_length", "Content-Length is not a number.")
            if declared > limit:
                return error(413, "body_too_large", f"The body exceeds {limit} bytes.")
            body = request.read(limit + 1)
            if len(body) > limit:
                return error(413, "body_too_large", f"The body exceeds {limit} bytes.")
            failure = authenticate(request, body)
            if failure is not None:
                logger.warning(
                    "internal call refused path=%s code=%s", request.path, failure.code
                )
                return error(failure.status, failure.code, failure.message)
            return view(request, body, *args, **kwargs)

        return wrapper

    return decorator


def parse_upload_id(raw: str) -> int | None:
    if not raw.isdigit() or len(raw) > 18:
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


def outcome_response(outcome: Outcome) -> JsonResponse:
    payload = outcome.as_dict()
    match outcome.result:
        case Result.DONE:
            return JsonResponse(payload, status=200)
        case Result.ALREADY_DONE:
            return JsonResponse(payload, status=200)
        case Result.NOT_FOUND:
            return error(404, "unknown_upload", "No such upload.", **payload)
        case Result.BUSY:
            return error(409, "busy", outcome.error or "Upload is busy.", **payload)
        case Result.FAILED:
            return error(422, outcome.error_code or "failed", outcome.error, **payload)
        case Result.RETRY:
            status = 429 if outcome.error_code == "rate_limited" else 503
            payload.setdefault("retryAfter", 30)
            return error(status, outcome.error_code or "retry", outcome.error, **payload)


@internal_endpoint("POST")
def ingest(request: HttpRequest, body: bytes, upload_id: str) -> HttpResponse:
    """Stage 1: run the pipeline on the server for one upload."""
    parsed = parse_upload_id(upload_id)
    if parsed is None:
        return error(400, "bad_upload_id", "The upload id must be a positive integer.")
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
    if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int)):
        return error(400, "bad_attempts", "attempts must be an integer.")
    reason = str(data.get("reason") or data.get("error") or "dead-lettered by the queue")
    marked = mark_dead(upload_id, reason[:2000], attempts)
    return JsonResponse({"uploadId": upload_id, "marked": marked})
