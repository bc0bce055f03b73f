from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Iterable
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .conf import get_settings
from .exceptions import UploadRejected
from .files import inspect_file
from .registry import DocumentTypeSpec, get_spec
from .storage import upload_storage


def upload_to(instance: Upload, filename: str) -> str:
    prefix = timezone.now().strftime(get_settings().UPLOAD_TO)
    return f"{prefix}{uuid.uuid4().hex}/{filename}"


class DocumentType(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    instructions = models.TextField(
        blank=True, help_text=_("Prompt text given to the model with the schema.")
    )
    schema = models.CharField(
        max_length=64, help_text=_("Key of the pydantic model registered in code.")
    )
    confidence_threshold = models.FloatField(
        null=True,
        blank=True,
        help_text=_("Below this, the next provider is tried. Empty: the default."),
    )
    provider_chain = models.JSONField(
        default=list,
        blank=True,
        help_text=_("Provider names to try in order. Empty: the default chain."),
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("document type")

    def __str__(self) -> str:
        return self.name

    @property
    def spec(self) -> DocumentTypeSpec | None:
        return get_spec(self.schema)

    def threshold(self) -> float:
        if self.confidence_threshold is not None:
            return self.confidence_threshold
        spec = self.spec
        if spec is not None and spec.confidence_threshold is not None:
            return spec.confidence_threshold
        return get_settings().CONFIDENCE_THRESHOLD

    def chain(self) -> tuple[str, ...]:
        if self.provider_chain:
            return tuple(self.provider_chain)
        spec = self.spec
        if spec is not None and spec.provider_chain:
            return spec.provider_chain
        return get_settings().PROVIDER_CHAIN


class UploadStatus(models.TextChoices):
    UPLOADED = "uploaded", _("Uploaded")
    QUEUED = "queued", _("Queued")
    PROCESSING = "processing", _("Processing")
    NEEDS_REVIEW = "needs_review", _("Needs review")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    FAILED = "failed", _("Failed")
    DEAD = "dead", _("Dead")


#: Statuses in which a run has completed and a delivery has nothing to do.
DONE_STATUSES = frozenset(
    {UploadStatus.NEEDS_REVIEW, UploadStatus.APPROVED, UploadStatus.REJECTED}
)
#: Statuses from which a delivery may start a run.
RUNNABLE_STATUSES = frozenset(
    {UploadStatus.UPLOADED, UploadStatus.QUEUED, UploadStatus.FAILED}
)


class UploadQuerySet(models.QuerySet["Upload", "Upload"]):
    def bulk_create(  # type: ignore[override]  # same signature, bound model
        self,
        objs: Iterable[Upload],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Collection[str] | None = None,
        unique_fields: Collection[str] | None = None,
    ) -> list[Upload]:
        """Create uploads and their outbox rows: two queries, not two per upload."""
        from .outbox import enqueue_uploads

        uploads = list(objs)
        for upload in uploads:
            if not upload.sha256:
                upload.inspect()
        # django-stubs leaves the model type of super() unbound here.
        created = cast(
            "list[Upload]",
            super().bulk_create(
                cast("Any", uploads),
                batch_size=batch_size,
                ignore_conflicts=ignore_conflicts,
                update_conflicts=update_conflicts,
                update_fields=update_fields,
                unique_fields=unique_fields,
            ),
        )
        enqueue_uploads(created, using=self.db)
        return created


class Upload(models.Model):
    file = models.FileField(upload_to=upload_to, storage=upload_storage, max_length=500)
    original_name = models.CharField(max_length=255, blank=True)
    document_type = models.ForeignKey(
        DocumentType, on_delete=models.PROTECT, related_name="uploads"
    )
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    status = models.CharField(
        max_length=20,
        choices=UploadStatus.choices,
        default=UploadStatus.UPLOADED,
        db_index=True,
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # The delivery that currently holds the upload, and since when.
    delivery_token = models.CharField(max_length=32, blank=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    # Provider names an editor asked for on a re-run; empty means the default.
    requested_chain = models.JSONField(default=list, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    # A dead or failed upload an editor chose not to replay keeps its status;
    # these say who set it aside, when and why.
    discarded_at = models.DateTimeField(null=True, blank=True)
    discarded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    discard_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UploadQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("upload")
        permissions = [
            ("review_upload", "Can review, correct, approve and reject extractions"),
            ("replay_upload", "Can re-run and replay uploads"),
        ]

    def __str__(self) -> str:
        return self.original_name or self.file.name or f"Upload {self.pk}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            super().save(*args, **kwargs)
            return
        if not self.sha256:
            self.inspect()
        # The row and its outbox message (written by post_save) commit together.
        with transaction.atomic(
            using=kwargs.get("using") or router.db_for_write(Upload)
        ):
            super().save(*args, **kwargs)

    def inspect(self) -> None:
        """Sniff, size and hash the file, or raise ``ValidationError`` saying why.

        Runs on first save, so every path that creates an upload (forms, the
        admin, ``objects.create``, ``bulk_create``) refuses a bad file before
        anything is queued.
        """
        if not self.file:
            raise ValidationError(
                {"file": ValidationError("A file is required.", code="required")}
            )
        try:
            if getattr(self.file, "_committed", True):
                with self.file.open("rb") as stream:
                    info = inspect_file(stream)
            else:
                # A form's upload, not in storage yet: it must stay open for
                # the save that stores it.
                info = inspect_file(self.file.file)
        except UploadRejected as exc:
            raise ValidationError(
                {"file": ValidationError(str(exc), code=exc.code)}
            ) from exc
        self.content_type = info.content_type
        self.size = info.size
        self.sha256 = info.sha256
        if not self.original_name:
            self.original_name = os.path.basename(self.file.name or "")[:255]

    @property
    def latest_extraction(self) -> Extraction | None:
        return self.extractions.order_by("-created_at", "-id").first()

    def corrected_data(self) -> dict[str, Any]:
        """The latest machine output with the editors' corrections laid over it."""
        extraction = self.latest_extraction
        data = dict(extraction.data) if extraction and extraction.data else {}
        data.update(self.current_corrections())
        return data

    def current_corrections(self) -> dict[str, Any]:
        latest: dict[str, Any] = {}
        for correction in self.corrections.order_by("created_at", "id"):
            latest[correction.field] = correction.value
        return latest


class Stage(models.TextChoices):
    IN_PROCESS = "in_process", _("In process")
    STAGE1 = "stage1", _("Stage 1 (server)")
    STAGE2 = "stage2", _("Stage 2 (edge)")


class Extraction(models.Model):
    """The machine output of one completed run. Never edited by people."""

    upload = models.ForeignKey(
        Upload, on_delete=models.CASCADE, related_name="extractions"
    )
    data = models.JSONField(default=dict, blank=True)
    is_valid = models.BooleanField(default=False)
    validation_errors = models.JSONField(default=list, blank=True)
    schema_version = models.CharField(max_length=32)
    confidence = models.FloatField(default=0.0)
    provider = models.CharField(max_length=50)
    model = models.CharField(max_length=200, blank=True)
    stage = models.CharField(max_length=20, choices=Stage.choices)
    # Kept for debugging; never logged.
    raw_response = models.JSONField(default=dict, blank=True)
    delivery_token = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["upload", "delivery_token"],
                condition=~models.Q(delivery_token=""),
                name="cf_ingest_one_extraction_per_delivery",
            )
        ]

    def __str__(self) -> str:
        return f"Extraction {self.pk} of upload {self.upload_id}"


class Correction(models.Model):
    """An editor's value for one field, kept apart from the machine output."""

    upload = models.ForeignKey(
        Upload, on_delete=models.CASCADE, related_name="corrections"
    )
    field = models.CharField(max_length=200)
    value = models.JSONField(null=True)
    editor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.field} of upload {self.upload_id}"


class ProviderCall(models.Model):
    """Usage ledger: one row per call to an AI provider, failed ones included."""

    class Status(models.TextChoices):
        OK = "ok", _("OK")
        INVALID = "invalid", _("Invalid output")
        ERROR = "error", _("Error")

    upload = models.ForeignKey(
        Upload, on_delete=models.CASCADE, related_name="provider_calls"
    )
    extraction = models.ForeignKey(
        Extraction,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="provider_calls",
    )
    provider = models.CharField(max_length=50)
    model = models.CharField(max_length=200, blank=True)
    stage = models.CharField(max_length=20, choices=Stage.choices)
    # "primary", "reask" or "fallback".
    purpose = models.CharField(max_length=20, default="primary")
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices)
    error_class = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} call for upload {self.upload_id}"


class OutboxMessage(models.Model):
    """A message written in the upload's transaction, dispatched after commit."""

    upload = models.ForeignKey(
        Upload, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(sent_at__isnull=True),
                name="cf_ingest_outbox_pending",
            )
        ]

    def __str__(self) -> str:
        return f"Outbox {self.pk}"


class QueueMessage(models.Model):
    """A message of the embedded database queue."""

    queue = models.CharField(max_length=100, default="default")
    body = models.JSONField()
    attempts = models.PositiveIntegerField(default=0)
    available_at = models.DateTimeField(default=timezone.now)
    lease_id = models.CharField(max_length=32, blank=True, db_index=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["queue", "available_at"],
                condition=models.Q(dead_at__isnull=True),
                name="cf_ingest_queue_ready",
            )
        ]

    def __str__(self) -> str:
        return f"Queue message {self.pk}"
