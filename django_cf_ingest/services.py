"""What host sites, the admin and the internal views do to uploads."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from django.core.files import File
from django.db import transaction
from django.utils import timezone

from .models import Correction, DocumentType, Upload, UploadStatus
from .outbox import enqueue_uploads

logger = logging.getLogger("django_cf_ingest.services")


def create_upload(
    file: IO[bytes] | File[Any],
    document_type: DocumentType | str,
    *,
    name: str | None = None,
    uploaded_by: Any = None,
) -> Upload:
    """Store a file as an upload and enqueue it. Raises ``ValidationError``
    for an empty, corrupt, oversized or unsupported file."""
    if isinstance(document_type, str):
        document_type = DocumentType.objects.get(slug=document_type)
    django_file = file if isinstance(file, File) else File(file, name=name)
    filename = name or getattr(django_file, "name", None) or "upload"
    upload = Upload(
        document_type=document_type,
        original_name=str(filename).rsplit("/", 1)[-1][:255],
        uploaded_by=uploaded_by if getattr(uploaded_by, "pk", None) else None,
    )
    upload.file.save(upload.original_name, django_file, save=False)
    try:
        upload.save()
    except Exception:
        # Nothing refers to the stored file once the row is refused.
        upload.file.delete(save=False)
        raise
    return upload


def rerun_uploads(
    uploads: Iterable[Upload] | Sequence[int],
    *,
    chain: Sequence[str] | None = None,
) -> int:
    """Queue uploads to run again, optionally with other providers.

    Corrections stay: they are kept apart from machine output and laid over
    whatever the new run extracts. Returns how many uploads were queued.
    """
    ids = [u if isinstance(u, int) else u.pk for u in uploads]
    count = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        with transaction.atomic():
            queryset = Upload.objects.filter(pk__in=chunk).exclude(
                status=UploadStatus.PROCESSING
            )
            selected = list(queryset.only("pk"))
            queryset.update(
                status=UploadStatus.QUEUED,
                attempts=0,
                last_error="",
                delivery_token="",
                processing_started_at=None,
                requested_chain=list(chain or []),
                reviewed_by=None,
                reviewed_at=None,
                discarded_at=None,
                discarded_by=None,
                discard_reason="",
                updated_at=timezone.now(),
            )
            enqueue_uploads(selected)
            count += len(selected)
    logger.info("uploads queued to run again count=%s", count)
    return count


def review(
    upload: Upload, *, approve: bool, user: Any = None, note: str = ""
) -> Upload:
    upload.status = UploadStatus.APPROVED if approve else UploadStatus.REJECTED
    upload.reviewed_by = user if getattr(user, "pk", None) else None
    upload.reviewed_at = timezone.now()
    upload.review_note = note
    upload.save(
        update_fields=[
            "status",
            "reviewed_by",
            "reviewed_at",
            "review_note",
            "updated_at",
        ]
    )
    return upload


#: Statuses of the uploads the queue gave up on: the dead letters.
DEAD_LETTER_STATUSES = (UploadStatus.DEAD, UploadStatus.FAILED)


def discard_uploads(
    uploads: Iterable[Upload] | Sequence[int], *, reason: str, user: Any = None
) -> int:
    """Set dead or failed uploads aside instead of replaying them.

    They keep their status; the reason, the editor and the time are recorded,
    and a later replay clears them. Returns how many uploads were discarded.
    """
    reason = reason.strip()
    if not reason:
        raise ValueError("A reason is required to discard uploads.")
    ids = [u if isinstance(u, int) else u.pk for u in uploads]
    now = timezone.now()
    count = Upload.objects.filter(
        pk__in=ids, status__in=DEAD_LETTER_STATUSES, discarded_at__isnull=True
    ).update(
        discarded_at=now,
        discarded_by=user if getattr(user, "pk", None) else None,
        discard_reason=reason,
        updated_at=now,
    )
    logger.info("uploads discarded count=%s", count)
    return count


def _is_blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def correct(
    upload: Upload, values: Mapping[str, Any], *, user: Any = None
) -> list[Correction]:
    """Record an editor's values for the fields that differ from what the
    upload shows now: the latest machine output with earlier corrections laid
    over it. The machine output itself is never changed, so a later run keeps
    these corrections. Returns the new corrections."""
    current = upload.corrected_data()
    editor = user if getattr(user, "pk", None) else None
    now = timezone.now()
    rows = [
        Correction(
            upload=upload, field=name, value=value, editor=editor, created_at=now
        )
        for name, value in values.items()
        if (current[name] != value if name in current else not _is_blank(value))
    ]
    if rows:
        with transaction.atomic():
            Correction.objects.bulk_create(rows)
            upload.save(update_fields=["updated_at"])
    logger.info("corrections saved upload=%s fields=%s", upload.pk, len(rows))
    return rows
