"""Endpoints of edge extraction: the consumer reads the file and calls the
model itself, and the site stays the one place that validates and persists.

``GET <prefix>meta/<id>``
    Claims the upload for the calling delivery, as a Stage 1 run would, and
    answers what a consumer needs to build the model request without knowing
    the site's code::

        {"uploadId": 12, "done": false,
         "storageKey": "cf_ingest/2026/05/<hex>/sheet.png",
         "mime": "image/png", "size": 48213, "sha256": "...",
         "typeId": 3, "typeSlug": "big-five",
         "instructions": "...", "schema": {...}, "schemaVersion": "...",
         "model": "@cf/meta/llama-3.2-11b-vision-instruct", "maxTokens": 2048,
         "jsonMode": true, "deliveryToken": "<32 hex>", "attempt": 1}

    ``storageKey`` is the name of this upload's file in the upload storage,
    and nothing else. An upload whose run already ended answers 200 with
    ``{"uploadId": 12, "done": true, ...}``: ack the message, call nothing.
    404: no such upload (ack and drop). 409 + ``Retry-After``: another
    delivery holds it (retry later). 422: it cannot be run (ack).

``POST <prefix>complete``
    Reports the run. The body::

        {"uploadId": 12, "typeId": 3, "typeSlug": "big-five",
         "deliveryToken": "<from meta>", "status": "ok",
         "rawText": "<the model's text>"  or  "resultsJson": {...},
         "usage": {"tokensIn": 1620, "tokensOut": 48},
         "provider": "workers_ai", "model": "@cf/meta/...", "latencyMs": 5400}

    ``rawText`` may hold the JSON in a code fence or with prose around it.
    The answer is validated with the document type's pydantic model and saved
    exactly as a Stage 1 run saves it: one extraction (invalid ones too, with
    their errors), one ledger row, the upload in ``needs_review``. 200 says
    ``valid`` and ``retry: false``. With ``RETRY_INVALID_COMPLETE`` (or
    ``REQUEUE_ON_LOW_CONFIDENCE`` for a weak answer) and attempts left, an
    invalid answer is recorded in the ledger only and the answer is 503
    ``invalid_output`` with ``retry: true`` and ``Retry-After``.

    A failed model call is reported with ``"status": "error"`` and
    ``"error": {"code", "message", "retryAfter"?, "transient"?, "source"?}``:
    ``code`` is one of the error codes of the app's exceptions
    (``rate_limited``, ``transient``, ``permanent``, ``licence_not_accepted``,
    ``invalid_output``), ``source`` is ``model`` (the default; a ledger row is
    written) or ``file`` (the file could not be read; no model was called).
    The answer is 429/503 + ``Retry-After`` for a transient failure and 422
    for a permanent one, as for Stage 1.

    Reporting the same delivery again after it was saved changes nothing and
    answers 200 ``already_done``. A token other than the upload's current one
    is stale: 409 ``stale_delivery``. A ``typeSlug`` or ``typeId`` that is not
    the upload's is refused with 409 ``type_mismatch``, and the claim is given
    up so that the next delivery starts afresh. A malformed body is 400 with a
    code naming the field.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse

from ..conf import get_settings
from ..exceptions import (
    InvalidOutputError,
    LicenceNotAccepted,
    PermanentProviderError,
    ProviderError,
    RateLimited,
    TransientProviderError,
)
from ..models import Stage, Upload
from ..pipeline import (
    Claim,
    Outcome,
    Result,
    claim,
    conclude,
    fail,
    release,
    resume,
)
from ..providers import get_provider
from ..providers.base import ProviderResult, Usage
from ..providers.chain import CallRecord, evaluate
from ..providers.http import with_usage
from ..providers.workers_ai import (
    RunOutput,
    WorkersAIProvider,
    result_from_output,
    supports_json_mode,
)
from .views import error, internal_endpoint, outcome_response, parse_json
from .views import parse_upload_id as _parse_path_id

logger = logging.getLogger("django_cf_ingest.internal")

PROVIDER = "workers_ai"
_TOKEN = re.compile(r"^[0-9a-f]{1,64}$")
#: Error codes a consumer may report, and the exception each stands for.
ERROR_CLASSES: dict[str, type[ProviderError]] = {
    cls.code: cls
    for cls in (
        RateLimited,
        TransientProviderError,
        PermanentProviderError,
        LicenceNotAccepted,
        InvalidOutputError,
    )
}


def _json_mode(model: str) -> bool:
    """Whether the request for ``model`` uses JSON Mode, as the site's own
    Workers AI provider would decide."""
    if PROVIDER in get_settings().PROVIDERS:
        try:
            provider = get_provider(PROVIDER)
        except ImproperlyConfigured:
            provider = None
        if isinstance(provider, WorkersAIProvider):
            return provider.json_mode(model)
    return supports_json_mode(model)


def _meta_body(claimed: Claim) -> dict[str, Any]:
    upload = claimed.upload
    document_type = upload.document_type
    spec = document_type.spec
    assert spec is not None
    config = get_settings()
    model = config.WORKERS_AI_MODEL
    return {
        "uploadId": upload.pk,
        "done": False,
        "storageKey": upload.file.name,
        "mime": upload.content_type,
        "size": upload.size,
        "sha256": upload.sha256,
        "typeId": document_type.pk,
        "typeSlug": document_type.slug,
        "instructions": document_type.instructions or spec.instructions,
        "schema": spec.json_schema,
        "schemaVersion": spec.schema_version,
        "model": model,
        "maxTokens": config.MAX_TOKENS,
        "jsonMode": _json_mode(model),
        "deliveryToken": claimed.token,
        "attempt": upload.attempts,
    }


@internal_endpoint("GET")
def meta(request: HttpRequest, body: bytes, upload_id: str) -> HttpResponse:
    """Claim an upload for an edge run and describe it."""
    parsed = _parse_path_id(upload_id)
    if parsed is None:
        return error(400, "bad_upload_id", "The upload id must be a positive integer.")
    claimed = claim(parsed)
    if isinstance(claimed, Outcome):
        logger.info("meta upload=%s outcome=%s", parsed, claimed.result.value)
        if claimed.result is Result.ALREADY_DONE:
            return outcome_response(claimed, done=True)
        return outcome_response(claimed)
    if claimed.upload.document_type.spec is None:
        slug = claimed.upload.document_type.slug
        problem = PermanentProviderError(
            f"Document type {slug!r} has no registered schema."
        )
        return outcome_response(fail(claimed, problem, [], Stage.STAGE2))
    logger.info("meta upload=%s claimed attempt=%s", parsed, claimed.upload.attempts)
    return JsonResponse(_meta_body(claimed))


class BadBody(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ReportedError:
    code: str
    message: str
    retry_after: float | None
    transient: bool | None
    source: str


@dataclass(frozen=True)
class Completion:
    """A parsed ``complete`` body."""

    upload_id: int
    token: str
    type_id: int | None
    type_slug: str
    provider: str
    model: str
    usage: Usage
    latency_ms: int | None
    raw_text: str | None
    results: Any
    failure: ReportedError | None


def _positive_int(data: dict[str, Any], key: str, *, required: bool) -> int | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        code = "bad_upload_id" if key == "uploadId" else "bad_type_id"
        raise BadBody(code, f"{key} must be a positive integer.")
    return value


def _count(data: dict[str, Any], key: str, code: str) -> int:
    value = data.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadBody(code, f"{key} must be a whole number, zero or more.")
    return value


def _short_text(
    data: dict[str, Any], key: str, code: str, default: str, size: int
) -> str:
    value = data.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str) or len(value) > size:
        raise BadBody(code, f"{key} must be a string of at most {size} characters.")
    return value


def _reported_error(data: dict[str, Any]) -> ReportedError:
    failure = data.get("error")
    if not isinstance(failure, dict):
        raise BadBody("bad_error", 'A "status": "error" report needs an error object.')
    code = failure.get("code")
    if not isinstance(code, str) or not code or len(code) > 100:
        raise BadBody("bad_error", "error.code must be a short string.")
    message = failure.get("message", "")
    if not isinstance(message, str):
        raise BadBody("bad_error", "error.message must be a string.")
    delay = failure.get("retryAfter")
    if delay is not None and (
        isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0
    ):
        raise BadBody("bad_error", "error.retryAfter must be a number of seconds.")
    transient = failure.get("transient")
    if transient is not None and not isinstance(transient, bool):
        raise BadBody("bad_error", "error.transient must be true or false.")
    source = failure.get("source", "model")
    if source not in ("model", "file"):
        raise BadBody("bad_error", 'error.source must be "model" or "file".')
    return ReportedError(
        code=code,
        message=message[:2000] or code,
        retry_after=None if delay is None else float(delay),
        transient=transient,
        source=source,
    )


def parse_completion(data: dict[str, Any]) -> Completion:
    """The body of a ``complete`` call, or ``BadBody`` naming what is wrong."""
    upload_id = _positive_int(data, "uploadId", required=True)
    assert upload_id is not None
    token = data.get("deliveryToken")
    if token is None or token == "":
        raise BadBody(
            "missing_delivery_token", "deliveryToken (from meta) is required."
        )
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise BadBody("bad_delivery_token", "deliveryToken is not a token from meta.")
    type_id = _positive_int(data, "typeId", required=False)
    type_slug = data.get("typeSlug")
    if not isinstance(type_slug, str) or not type_slug:
        raise BadBody("bad_type_slug", "typeSlug is required and must be a string.")

    status = data.get("status", "ok")
    if status not in ("ok", "error"):
        raise BadBody("bad_status", 'status must be "ok" or "error".')
    usage = data.get("usage") or {}
    if not isinstance(usage, dict):
        raise BadBody("bad_usage", "usage must be an object {tokensIn, tokensOut}.")
    latency = data.get("latencyMs")
    if latency is not None:
        latency = _count(data, "latencyMs", "bad_latency")

    raw_text, results, failure = None, None, None
    if status == "error":
        failure = _reported_error(data)
    elif data.get("resultsJson") is not None:
        results = data["resultsJson"]
        if not isinstance(results, dict | str):
            raise BadBody("bad_output", "resultsJson must be an object or a string.")
    elif data.get("rawText") is not None:
        raw_text = data["rawText"]
        if not isinstance(raw_text, str):
            raise BadBody("bad_output", "rawText must be a string.")
    else:
        raise BadBody("missing_output", "A report needs rawText or resultsJson.")

    return Completion(
        upload_id=upload_id,
        token=token,
        type_id=type_id,
        type_slug=type_slug,
        provider=_short_text(data, "provider", "bad_provider", PROVIDER, 50),
        model=_short_text(
            data, "model", "bad_model", get_settings().WORKERS_AI_MODEL, 200
        ),
        usage=Usage(
            _count(usage, "tokensIn", "bad_usage"),
            _count(usage, "tokensOut", "bad_usage"),
        ),
        latency_ms=latency,
        raw_text=raw_text,
        results=results,
        failure=failure,
    )


def _output(completion: Completion) -> RunOutput:
    if isinstance(completion.results, dict):
        text = json.dumps(completion.results, ensure_ascii=False)
        return RunOutput(text=text, data=completion.results, usage=completion.usage)
    answer = (
        completion.results if completion.results is not None else completion.raw_text
    )
    return RunOutput(text=str(answer or ""), data=None, usage=completion.usage)


def _error(reported: ReportedError, usage: Usage) -> ProviderError:
    cls = ERROR_CLASSES.get(reported.code)
    if cls is None:
        cls = TransientProviderError if reported.transient else PermanentProviderError
    error: ProviderError
    if issubclass(cls, TransientProviderError):
        error = cls(reported.message, retry_after=reported.retry_after)
    else:
        error = cls(reported.message)
    return with_usage(error, usage.tokens_in, usage.tokens_out)


def _type_matches(upload: Upload, completion: Completion) -> bool:
    document_type = upload.document_type
    if completion.type_slug != document_type.slug:
        return False
    return completion.type_id is None or completion.type_id == document_type.pk


def record_completion(claimed: Claim, completion: Completion) -> Outcome:
    """Persist a reported run the way a Stage 1 run of the same answer would be."""
    spec = claimed.upload.document_type.spec
    if spec is None:
        slug = claimed.upload.document_type.slug
        problem = PermanentProviderError(
            f"Document type {slug!r} has no registered schema."
        )
        return fail(claimed, problem, [], Stage.STAGE2)
    calls: list[CallRecord] = []
    failure = completion.failure
    if failure is not None and failure.source == "file":
        return fail(claimed, _error(failure, completion.usage), [], Stage.STAGE2)

    def produce() -> ProviderResult:
        if failure is not None:
            raise _error(failure, completion.usage)
        return result_from_output(
            _output(completion),
            completion.model,
            max_tokens=get_settings().MAX_TOKENS,
        )

    try:
        attempt = evaluate(
            completion.provider,
            completion.model,
            spec,
            "primary",
            calls,
            produce,
            latency_ms=completion.latency_ms or 0,
        )
    except ProviderError as exc:
        return fail(claimed, exc, calls, Stage.STAGE2)
    return conclude(
        claimed,
        attempt,
        calls,
        Stage.STAGE2,
        retry_invalid=get_settings().RETRY_INVALID_COMPLETE,
    )


@internal_endpoint("POST")
def complete(request: HttpRequest, body: bytes) -> HttpResponse:
    """Validate and persist the answer of an edge run."""
    data = parse_json(body)
    if isinstance(data, JsonResponse):
        return data
    try:
        completion = parse_completion(data)
    except BadBody as exc:
        return error(400, exc.code, str(exc))

    resumed = resume(completion.upload_id, completion.token)
    if isinstance(resumed, Outcome):
        logger.info(
            "complete upload=%s outcome=%s code=%s",
            completion.upload_id,
            resumed.result.value,
            resumed.error_code or "-",
        )
        return outcome_response(resumed, retry=resumed.result is Result.BUSY)
    if not _type_matches(resumed.upload, completion):
        release(resumed, "the reported document type is not the upload's")
        logger.warning(
            "complete refused upload=%s code=type_mismatch", resumed.upload.pk
        )
        return error(
            409,
            "type_mismatch",
            "typeSlug/typeId are not the upload's document type; deliver it again.",
            uploadId=resumed.upload.pk,
            retry=True,
        )

    outcome = record_completion(resumed, completion)
    logger.info(
        "complete upload=%s outcome=%s valid=%s",
        completion.upload_id,
        outcome.result.value,
        outcome.is_valid,
    )
    return outcome_response(
        outcome, retry=outcome.result in (Result.RETRY, Result.BUSY)
    )
