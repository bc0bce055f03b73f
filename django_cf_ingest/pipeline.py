"""``process_upload``: read the file, run the providers, validate, persist.

A run first claims the upload with one conditional UPDATE, which only one
delivery can win; a second delivery of a finished upload finds it done and
calls no provider. The claim carries a delivery token, and the results are
written only while that token is still the upload's, so a delivery whose
claim was taken over (after ``PROCESSING_TIMEOUT``) cannot write a second
extraction.
"""

from __future__ import annotations

import enum
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from .conf import get_settings
from .exceptions import PermanentProviderError, ProviderError, TransientProviderError
from .models import (
    DONE_STATUSES,
    RUNNABLE_STATUSES,
    Extraction,
    ProviderCall,
    Stage,
    Upload,
    UploadStatus,
)
from .providers.base import ExtractionRequest
from .providers.chain import Attempt, CallRecord, ChainFailed, run_chain

logger = logging.getLogger("django_cf_ingest.pipeline")


class Result(enum.StrEnum):
    DONE = "done"
    ALREADY_DONE = "already_done"
    BUSY = "busy"
    NOT_FOUND = "not_found"
    FAILED = "failed"  # permanent: do not retry
    RETRY = "retry"  # transient: retry after ``retry_after``


@dataclass
class Outcome:
    result: Result
    upload_id: int
    extraction_id: int | None = None
    confidence: float | None = None
    provider: str = ""
    model: str = ""
    is_valid: bool | None = None
    retry_after: float | None = None
    error_code: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.result.value, "uploadId": self.upload_id}
        for key, value in (
            ("extractionId", self.extraction_id),
            ("confidence", self.confidence),
            ("provider", self.provider),
            ("model", self.model),
            ("valid", self.is_valid),
            ("retryAfter", self.retry_after),
            ("code", self.error_code),
            ("error", self.error),
        ):
            if value not in (None, ""):
                data[key] = value
        return data


@dataclass
class Claim:
    upload: Upload
    token: str


def _done_outcome(upload: Upload) -> Outcome:
    extraction = upload.latest_extraction
    return Outcome(
        result=Result.ALREADY_DONE,
        upload_id=upload.pk,
        extraction_id=extraction.pk if extraction else None,
        confidence=extraction.confidence if extraction else None,
        provider=extraction.provider if extraction else "",
        model=extraction.model if extraction else "",
        is_valid=extraction.is_valid if extraction else None,
    )


def _load(upload_id: int) -> Upload | None:
    return Upload.objects.select_related("document_type").filter(pk=upload_id).first()


def _ended(upload: Upload) -> Outcome | None:
    """The outcome for a delivery of an upload whose runs are over, or None."""
    if upload.status in DONE_STATUSES:
        return _done_outcome(upload)
    if upload.status == UploadStatus.DEAD:
        return Outcome(Result.ALREADY_DONE, upload.pk, error_code="dead")
    return None


def claim(upload_id: int) -> Claim | Outcome:
    """Take the upload for this delivery, or say why not."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=get_settings().PROCESSING_TIMEOUT)
    token = uuid.uuid4().hex
    claimable = Q(status__in=RUNNABLE_STATUSES) | Q(
        status=UploadStatus.PROCESSING, processing_started_at__lt=cutoff
    )
    won = (
        Upload.objects.filter(claimable, pk=upload_id).update(
            status=UploadStatus.PROCESSING,
            delivery_token=token,
            processing_started_at=now,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
        == 1
    )
    upload = _load(upload_id)
    if upload is None:
        return Outcome(Result.NOT_FOUND, upload_id, error_code="unknown_upload")
    if won:
        return Claim(upload=upload, token=token)
    return _ended(upload) or Outcome(
        Result.BUSY,
        upload_id,
        error_code="busy",
        error="another delivery holds this upload",
        retry_after=float(get_settings().PROCESSING_TIMEOUT) / 4,
    )


def resume(upload_id: int, token: str) -> Claim | Outcome:
    """The claim a delivery took earlier, when it reports its result back.

    The claim is still the delivery's while the upload is processing under its
    token. A report that arrives again after the first one was saved finds the
    upload done and changes nothing; a delivery whose claim was taken over is
    stale.
    """
    upload = _load(upload_id)
    if upload is None:
        return Outcome(Result.NOT_FOUND, upload_id, error_code="unknown_upload")
    if not token or not constant_time_compare(upload.delivery_token, token):
        return Outcome(
            Result.BUSY,
            upload_id,
            error_code="stale_delivery",
            error="another delivery has claimed this upload since",
        )
    if upload.status == UploadStatus.PROCESSING:
        return Claim(upload=upload, token=token)
    return _ended(upload) or Outcome(
        Result.BUSY,
        upload_id,
        error_code="not_held",
        error="this delivery's run already ended; deliver the upload again",
    )


def release(claim: Claim, reason: str) -> None:
    """Give up a claim without a result, so the next delivery may run at once."""
    Upload.objects.filter(
        pk=claim.upload.pk, delivery_token=claim.token, status=UploadStatus.PROCESSING
    ).update(
        status=UploadStatus.QUEUED,
        last_error=reason[:2000],
        processing_started_at=None,
        updated_at=timezone.now(),
    )


def build_request(upload: Upload) -> ExtractionRequest:
    spec = upload.document_type.spec
    if spec is None:
        raise PermanentProviderError(
            f"Document type {upload.document_type.slug!r} has no registered schema."
        )
    try:
        with upload.file.open("rb") as stream:
            content = stream.read()
    except FileNotFoundError as exc:
        raise PermanentProviderError("The upload's file is missing.") from exc
    except OSError as exc:
        raise TransientProviderError(f"Could not read the file: {exc}") from exc
    return ExtractionRequest(
        spec=spec,
        instructions=upload.document_type.instructions or spec.instructions,
        content=content,
        content_type=upload.content_type,
        filename=upload.original_name,
    )


def _ledger_rows(
    upload_id: int, calls: list[CallRecord], stage: str, extraction: Extraction | None
) -> list[ProviderCall]:
    return [
        ProviderCall(
            upload_id=upload_id,
            extraction=extraction,
            provider=call.provider,
            model=call.model,
            stage=stage,
            purpose=call.purpose,
            tokens_in=call.usage.tokens_in,
            tokens_out=call.usage.tokens_out,
            cost=call.cost,
            latency_ms=call.latency_ms,
            status=call.status,
            error_class=call.error_class,
            error_message=call.error_message,
        )
        for call in calls
    ]


def record_calls(upload_id: int, calls: list[CallRecord], stage: str) -> None:
    ProviderCall.objects.bulk_create(_ledger_rows(upload_id, calls, stage, None))


def finish(
    claim: Claim, attempt: Attempt, calls: list[CallRecord], stage: str
) -> Outcome:
    """Persist a run's best answer, if this delivery still holds the upload."""
    upload = claim.upload
    spec = upload.document_type.spec
    assert spec is not None
    now = timezone.now()
    with transaction.atomic():
        held = Upload.objects.filter(
            pk=upload.pk, delivery_token=claim.token, status=UploadStatus.PROCESSING
        ).update(
            status=UploadStatus.NEEDS_REVIEW,
            last_error="" if attempt.validated.is_valid else "invalid output",
            processing_started_at=None,
            updated_at=now,
        )
        if not held:
            if Extraction.objects.filter(
                upload_id=upload.pk, delivery_token=claim.token
            ).exists():
                # This delivery's result was saved by an earlier report of it.
                return _done_outcome(upload)
            # Another delivery took the upload over; keep the ledger, not the data.
            record_calls(upload.pk, calls, stage)
            logger.warning("delivery lost its claim upload=%s", upload.pk)
            return (
                _done_outcome(upload)
                if _is_done(upload.pk)
                else Outcome(Result.BUSY, upload.pk, error_code="busy")
            )
        extraction = Extraction.objects.create(
            upload=upload,
            data=attempt.validated.data,
            is_valid=attempt.validated.is_valid,
            validation_errors=attempt.validated.errors,
            schema_version=spec.schema_version,
            confidence=attempt.confidence,
            provider=attempt.provider,
            model=attempt.model,
            stage=stage,
            raw_response=_jsonable(
                attempt.result.raw_response, attempt.result.raw_text
            ),
            delivery_token=claim.token,
        )
        ProviderCall.objects.bulk_create(
            _ledger_rows(upload.pk, calls, stage, extraction)
        )
    return Outcome(
        Result.DONE,
        upload.pk,
        extraction_id=extraction.pk,
        confidence=attempt.confidence,
        provider=attempt.provider,
        model=attempt.model,
        is_valid=attempt.validated.is_valid,
    )


def _is_done(upload_id: int) -> bool:
    status = (
        Upload.objects.filter(pk=upload_id).values_list("status", flat=True).first()
    )
    return status in DONE_STATUSES


def _jsonable(raw: Any, text: str) -> Any:
    if raw is None:
        return {"text": text} if text else {}
    if isinstance(raw, dict | list | str | int | float | bool):
        return raw
    return {"repr": repr(raw)[:10000]}


def fail(
    claim: Claim, error: ProviderError, calls: list[CallRecord], stage: str
) -> Outcome:
    """Record a failed run. Transient errors leave the upload to be retried."""
    transient = isinstance(error, TransientProviderError)
    message = f"{type(error).__name__}: {error}"[:2000]
    with transaction.atomic():
        record_calls(claim.upload.pk, calls, stage)
        Upload.objects.filter(pk=claim.upload.pk, delivery_token=claim.token).update(
            status=UploadStatus.FAILED,
            last_error=message,
            processing_started_at=None,
            updated_at=timezone.now(),
        )
    if transient:
        assert isinstance(error, TransientProviderError)
        return Outcome(
            Result.RETRY,
            claim.upload.pk,
            retry_after=error.retry_after,
            error_code=error.code,
            error=str(error),
        )
    return Outcome(
        Result.FAILED, claim.upload.pk, error_code=error.code, error=str(error)
    )


def requeue_low_confidence(
    claim: Claim,
    attempt: Attempt,
    calls: list[CallRecord],
    stage: str,
    *,
    code: str = "low_confidence",
) -> Outcome:
    """Give the upload back to the queue instead of keeping a weak result.

    ``code`` is ``low_confidence``, or ``invalid_output`` when the answer did
    not match the schema."""
    if code == "invalid_output":
        last_error, message = "invalid output", "the output does not match the schema"
    else:
        last_error = f"low confidence {attempt.confidence:.2f}"
        message = "confidence under the threshold"
    with transaction.atomic():
        record_calls(claim.upload.pk, calls, stage)
        Upload.objects.filter(pk=claim.upload.pk, delivery_token=claim.token).update(
            status=UploadStatus.QUEUED,
            last_error=last_error,
            processing_started_at=None,
            updated_at=timezone.now(),
        )
    return Outcome(
        Result.RETRY,
        claim.upload.pk,
        confidence=attempt.confidence,
        is_valid=attempt.validated.is_valid,
        retry_after=float(get_settings().LOW_CONFIDENCE_RETRY_DELAY),
        error_code=code,
        error=message,
    )


def conclude(
    claim: Claim,
    best: Attempt,
    calls: list[CallRecord],
    stage: str,
    *,
    retry_invalid: bool = False,
) -> Outcome:
    """End a run that produced an answer: keep it, or give the upload back to
    the queue when the answer is weak and the settings ask for another try.

    The one ending of every stage, so the same answer leaves the same rows.
    """
    config = get_settings()
    upload = claim.upload
    invalid = not best.validated.is_valid
    low = invalid or best.confidence < upload.document_type.threshold()
    again = (low and config.REQUEUE_ON_LOW_CONFIDENCE) or (invalid and retry_invalid)
    if again and upload.attempts < config.MAX_ATTEMPTS:
        code = "invalid_output" if invalid and retry_invalid else "low_confidence"
        return requeue_low_confidence(claim, best, calls, stage, code=code)
    return finish(claim, best, calls, stage)


def process_upload(upload_id: int, *, stage: str = Stage.IN_PROCESS) -> Outcome:
    """Run one delivery of an upload. Safe to call twice, and concurrently."""
    claimed = claim(upload_id)
    if isinstance(claimed, Outcome):
        return claimed
    upload = claimed.upload

    try:
        request = build_request(upload)
        chain = tuple(upload.requested_chain) or upload.document_type.chain()
        result = run_chain(request, chain, upload.document_type.threshold())
    except ChainFailed as exc:
        return fail(claimed, exc.error, exc.calls, stage)
    except ProviderError as exc:
        return fail(claimed, exc, [], stage)
    return conclude(claimed, result.best, result.calls, stage)


def mark_dead(upload_id: int, reason: str, attempts: int | None = None) -> bool:
    """Record that the queue gave up on an upload. Finished uploads stay as
    they are. Returns whether the upload was marked."""
    updates: dict[str, Any] = {
        "status": UploadStatus.DEAD,
        "last_error": reason[:2000],
        "processing_started_at": None,
        "updated_at": timezone.now(),
    }
    if attempts is not None:
        updates["attempts"] = attempts
    marked = (
        Upload.objects.filter(pk=upload_id)
        .exclude(status__in=DONE_STATUSES)
        .update(**updates)
    )
    if marked:
        logger.warning("upload dead upload=%s attempts=%s", upload_id, attempts)
        from .notify import notify_dead

        notify_dead(upload_id, reason, attempts)
    return bool(marked)
