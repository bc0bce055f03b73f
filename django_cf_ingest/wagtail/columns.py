"""Table columns of the admin listings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wagtail.admin.ui.tables import Column

from ..models import Upload, UploadStatus
from ..preview import PDF

#: CSS modifier of the status badge, by status.
STATUS_TONES = {
    UploadStatus.UPLOADED: "waiting",
    UploadStatus.QUEUED: "waiting",
    UploadStatus.PROCESSING: "working",
    UploadStatus.NEEDS_REVIEW: "review",
    UploadStatus.APPROVED: "approved",
    UploadStatus.REJECTED: "rejected",
    UploadStatus.FAILED: "failed",
    UploadStatus.DEAD: "failed",
}


def status_tone(status: str) -> str:
    return STATUS_TONES.get(UploadStatus(status), "waiting") if status else "waiting"


class ThumbnailColumn(Column):
    """A small picture of the document's first page, or an icon for it."""

    cell_template_name = "cf_ingest/wagtail/columns/thumbnail.html"

    def __init__(self, name: str, *, get_url: Callable[[Upload], str], **kwargs: Any):
        kwargs.setdefault("label", "")
        kwargs.setdefault("width", "64px")
        super().__init__(name, **kwargs)
        self.get_url = get_url

    def get_cell_context_data(
        self, instance: Upload, parent_context: dict[str, Any]
    ) -> dict[str, Any]:
        context: dict[str, Any] = super().get_cell_context_data(
            instance, parent_context
        )
        context["thumbnail_url"] = self.get_url(instance)
        context["icon_name"] = "doc-full" if instance.content_type == PDF else "image"
        return context


class StatusBadgeColumn(Column):
    """The upload's status as a coloured badge."""

    cell_template_name = "cf_ingest/wagtail/columns/status.html"

    def get_cell_context_data(
        self, instance: Upload, parent_context: dict[str, Any]
    ) -> dict[str, Any]:
        context: dict[str, Any] = super().get_cell_context_data(
            instance, parent_context
        )
        context["label"] = instance.get_status_display()
        context["tone"] = status_tone(instance.status)
        context["discarded"] = bool(getattr(instance, "discarded_at", None))
        return context


class ConfidenceColumn(Column):
    """The latest run's confidence as a percentage, flagged when invalid."""

    cell_template_name = "cf_ingest/wagtail/columns/confidence.html"

    def get_cell_context_data(
        self, instance: Upload, parent_context: dict[str, Any]
    ) -> dict[str, Any]:
        context: dict[str, Any] = super().get_cell_context_data(
            instance, parent_context
        )
        value = context["raw_value"]
        context["percent"] = None if value is None else round(value * 100)
        context["valid"] = getattr(instance, "latest_valid", None)
        low = value is not None and value < instance.document_type.threshold()
        context["low"] = low
        return context


class ProviderColumn(Column):
    """Provider of the latest run, with its model underneath."""

    cell_template_name = "cf_ingest/wagtail/columns/provider.html"


class TextColumn(Column):
    """Long text cut to one line, the whole of it in the title attribute."""

    cell_template_name = "cf_ingest/wagtail/columns/text.html"
