"""Django admin registrations. Nothing here needs Wagtail.

Records written by machines (extractions, provider calls, outbox and queue
rows) are read-only. Corrections are added from the upload's page, attributed
to the editor, and never changed afterwards. Re-run, replay, approve and
discard are admin actions, each behind its permission.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from .exceptions import UploadRejected
from .files import inspect_file
from .models import (
    DONE_STATUSES,
    Correction,
    DocumentType,
    Extraction,
    OutboxMessage,
    ProviderCall,
    QueueMessage,
    Upload,
)
from .preview import original_response
from .reporting import with_latest_extraction
from .services import DEAD_LETTER_STATUSES, rerun_uploads, review


class ReadOnlyAdmin(admin.ModelAdmin):
    """For rows that only the pipeline writes."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DocumentType)
class DocumentTypeAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_active", "confidence_threshold", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    readonly_fields = ["slug", "schema", "created_at", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Document types come from schemas registered in code.
        return False


class ExtractionInline(ReadOnlyInline):
    model = Extraction
    readonly_fields = (
        "created_at",
        "provider",
        "model",
        "stage",
        "confidence",
        "is_valid",
    )
    fields = readonly_fields
    ordering = ["-created_at", "-id"]


class ProviderCallInline(ReadOnlyInline):
    model = ProviderCall
    readonly_fields = (
        "created_at",
        "provider",
        "model",
        "purpose",
        "status",
        "tokens_in",
        "tokens_out",
        "cost",
        "latency_ms",
    )
    fields = readonly_fields
    ordering = ["-created_at", "-id"]


class CorrectionInline(admin.TabularInline):
    """Earlier corrections as they were made; new ones may be added."""

    model = Correction
    extra = 0
    can_delete = False
    fields = ["field", "value", "editor", "created_at"]
    readonly_fields = ["editor", "created_at"]
    ordering = ["-created_at", "-id"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("cf_ingest.review_upload")


class UploadAddForm(forms.ModelForm):
    """Checks the file as ``create_upload`` does, so a bad file is a form
    error rather than a failed save."""

    class Meta:
        model = Upload
        fields = ["document_type", "file"]

    def clean_file(self) -> Any:
        file = self.cleaned_data["file"]
        try:
            inspect_file(file)
        except UploadRejected as exc:
            raise forms.ValidationError(str(exc), code=exc.code) from exc
        return file


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "document_type",
        "status",
        "confidence",
        "attempts",
        "uploaded_by",
        "created_at",
    ]
    list_filter = ["status", "document_type", "created_at"]
    search_fields = [
        "original_name",
        "uploaded_by__username",
        "uploaded_by__email",
        "last_error",
    ]
    date_hierarchy = "created_at"
    list_select_related = ["document_type", "uploaded_by"]
    inlines = [CorrectionInline, ExtractionInline, ProviderCallInline]
    actions = ["rerun", "replay", "approve"]
    readonly_fields = [
        "file_link",
        "original_name",
        "document_type",
        "content_type",
        "size",
        "sha256",
        "uploaded_by",
        "status",
        "attempts",
        "last_error",
        "requested_chain",
        "reviewed_by",
        "reviewed_at",
        "review_note",
        "discarded_by",
        "discarded_at",
        "discard_reason",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["file_link", "document_type", "status", "attempts"]}),
        (
            "File",
            {"fields": ["original_name", "content_type", "size", "sha256"]},
        ),
        (
            "Processing",
            {"fields": ["requested_chain", "last_error", "created_at", "updated_at"]},
        ),
        (
            "Review",
            {
                "fields": [
                    "uploaded_by",
                    "reviewed_by",
                    "reviewed_at",
                    "review_note",
                    "discarded_by",
                    "discarded_at",
                    "discard_reason",
                ]
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Upload]:
        return with_latest_extraction(super().get_queryset(request))

    def get_form(
        self,
        request: HttpRequest,
        obj: Upload | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> Any:
        if obj is None:
            kwargs["form"] = UploadAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Upload | None = None) -> Any:
        if obj is None:
            return [(None, {"fields": ["document_type", "file"]})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(
        self, request: HttpRequest, obj: Upload | None = None
    ) -> Any:
        return [] if obj is None else self.readonly_fields

    def get_inlines(self, request: HttpRequest, obj: Upload | None) -> Any:
        return [] if obj is None else self.inlines

    def save_model(
        self, request: HttpRequest, obj: Upload, form: Any, change: bool
    ) -> None:
        if not change:
            obj.uploaded_by = request.user  # type: ignore[assignment]
            obj.original_name = (obj.file.name or "").rsplit("/", 1)[-1][:255]
        super().save_model(request, obj, form, change)

    def save_formset(
        self, request: HttpRequest, form: Any, formset: Any, change: bool
    ) -> None:
        for correction in formset.save(commit=False):
            correction.editor = request.user
            correction.save()
        formset.save_m2m()

    @admin.display(description="Confidence", ordering="latest_confidence")
    def confidence(self, upload: Upload) -> str:
        value = getattr(upload, "latest_confidence", None)
        return "—" if value is None else f"{value:.0%}"

    @admin.display(description="File")
    def file_link(self, upload: Upload) -> str:
        url = reverse("admin:cf_ingest_upload_file", args=[upload.pk])
        return format_html('<a href="{}" target="_blank">{}</a>', url, upload)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.file_view)
        return [
            path("<int:pk>/file/", view, name="cf_ingest_upload_file"),
            *super().get_urls(),
        ]

    def file_view(self, request: HttpRequest, pk: int) -> HttpResponseBase:
        """The original file, for users who may see uploads; never the
        storage's own URL, which may be public."""
        upload = get_object_or_404(Upload, pk=pk)
        if not self.has_view_permission(request, upload):
            raise PermissionDenied
        return original_response(upload)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("cf_ingest.replay_upload")

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("cf_ingest.review_upload")

    @admin.action(
        description="Re-run the selected uploads (corrections are kept)",
        permissions=["replay"],
    )
    def rerun(self, request: HttpRequest, queryset: QuerySet[Upload]) -> None:
        count = rerun_uploads(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} upload(s) queued to run again.")

    @admin.action(
        description="Replay the selected dead or failed uploads",
        permissions=["replay"],
    )
    def replay(self, request: HttpRequest, queryset: QuerySet[Upload]) -> None:
        dead = queryset.filter(status__in=DEAD_LETTER_STATUSES)
        count = rerun_uploads(list(dead.values_list("pk", flat=True)))
        skipped = queryset.count() - count
        self.message_user(request, f"{count} upload(s) queued to run again.")
        if skipped:
            self.message_user(
                request,
                f"{skipped} upload(s) were not dead or failed and were left alone.",
                messages.WARNING,
            )

    @admin.action(description="Approve the selected results", permissions=["review"])
    def approve(self, request: HttpRequest, queryset: QuerySet[Upload]) -> None:
        count = 0
        for upload in queryset.filter(status__in=DONE_STATUSES):
            review(upload, approve=True, user=request.user)
            count += 1
        self.message_user(request, f"{count} upload(s) approved.")


@admin.register(Extraction)
class ExtractionAdmin(ReadOnlyAdmin):
    list_display = [
        "__str__",
        "provider",
        "model",
        "stage",
        "confidence",
        "is_valid",
        "created_at",
    ]
    list_filter = ["provider", "stage", "is_valid"]
    search_fields = ["upload__original_name", "model"]
    list_select_related = ["upload"]


@admin.register(Correction)
class CorrectionAdmin(ReadOnlyAdmin):
    list_display = ["field", "upload", "value", "editor", "created_at"]
    search_fields = ["field", "upload__original_name", "editor__username"]
    list_select_related = ["upload", "editor"]


@admin.register(ProviderCall)
class ProviderCallAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "upload",
        "provider",
        "model",
        "purpose",
        "status",
        "tokens_in",
        "tokens_out",
        "cost",
        "latency_ms",
    ]
    list_filter = ["provider", "status", "stage", "purpose"]
    search_fields = ["upload__original_name", "model", "error_class"]
    date_hierarchy = "created_at"
    list_select_related = ["upload"]


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "upload", "created_at", "sent_at", "attempts", "last_error"]
    list_filter = [("sent_at", admin.EmptyFieldListFilter)]


@admin.register(QueueMessage)
class QueueMessageAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "queue",
        "attempts",
        "available_at",
        "leased_until",
        "dead_at",
        "last_error",
    ]
    list_filter = ["queue", ("dead_at", admin.EmptyFieldListFilter)]
