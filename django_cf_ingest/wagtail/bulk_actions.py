"""Bulk actions of the uploads listing: approve, reject and re-run.

They use Wagtail's bulk action framework: the listing's checkboxes lead to a
confirmation page, and its POST does the work.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import classproperty
from wagtail.admin.views.bulk_action import BulkAction

from ..models import DONE_STATUSES, Upload, UploadStatus
from ..reporting import with_latest_extraction
from ..services import rerun_uploads, review
from .columns import status_tone
from .forms import RejectForm, RerunForm
from .links import upload_url
from .permissions import REPLAY, REVIEW, VIEW, forbidden, user_can
from .views.uploads import filtered_uploads

logger = logging.getLogger("django_cf_ingest.admin")


class UploadBulkAction(BulkAction):
    """Shared by the upload bulk actions: permissions and texts."""

    template_name = "cf_ingest/wagtail/bulk/confirm.html"
    required_actions: tuple[str, ...] = (VIEW,)
    #: Texts of the confirmation page.
    question = ""
    confirm_label = ""
    skipped_text = ""
    button_class = ""
    done_verb = ""

    @classproperty
    def models(cls) -> list[type[Upload]]:
        return [Upload]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if not user_can(request.user, *self.required_actions):
            return forbidden(request)
        return super().dispatch(request, *args, **kwargs)

    def get_all_objects_in_listing_query(self, parent_id: Any) -> QuerySet[Any]:
        # "All in the listing" means all that match the listing's filters.
        queryset = with_latest_extraction(Upload.objects.all())
        return filtered_uploads(self.request, queryset).values_list("pk", flat=True)

    def object_context(self, upload: Upload) -> dict[str, Any]:
        return {
            "item": upload,
            "review_url": upload_url("review", upload.pk),
            "tone": status_tone(upload.status),
        }

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["header_icon"] = "doc-full-inverse"
        return context

    def get_execution_context(self) -> dict[str, Any]:
        return {"user": self.request.user}

    def get_success_message(
        self, num_parent_objects: int, num_child_objects: int
    ) -> str:
        noun = "upload" if num_parent_objects == 1 else "uploads"
        return f"{num_parent_objects} {noun} {self.done_verb}."


class ApproveBulkAction(UploadBulkAction):
    display_name = "Approve"
    action_type = "approve"
    aria_label = "Approve the selected uploads"
    action_priority = 10
    required_actions = (VIEW, REVIEW)
    question = "Approve these results as they stand, with their corrections?"
    confirm_label = "Yes, approve"
    skipped_text = "These have no finished run to approve and are left as they are:"
    done_verb = "approved"

    def check_perm(self, upload: Upload) -> bool:
        return upload.status in DONE_STATUSES

    @classmethod
    def execute_action(
        cls, objects: list[Upload], user: Any = None, **kwargs: Any
    ) -> tuple[int, int]:
        for upload in objects:
            review(upload, approve=True, user=user)
        logger.info("uploads approved in bulk count=%s", len(objects))
        return len(objects), 0


class RejectBulkAction(UploadBulkAction):
    display_name = "Reject"
    action_type = "reject"
    aria_label = "Reject the selected uploads"
    action_priority = 20
    required_actions = (VIEW, REVIEW)
    form_class: type[forms.Form] = RejectForm
    question = "Reject these results?"
    confirm_label = "Reject"
    button_class = "serious"
    skipped_text = "These have no finished run to reject and are left as they are:"
    done_verb = "rejected"

    def check_perm(self, upload: Upload) -> bool:
        return upload.status in DONE_STATUSES

    def get_execution_context(self) -> dict[str, Any]:
        assert self.cleaned_form is not None
        return {
            **super().get_execution_context(),
            "note": self.cleaned_form.cleaned_data["reason"],
        }

    @classmethod
    def execute_action(
        cls, objects: list[Upload], user: Any = None, note: str = "", **kwargs: Any
    ) -> tuple[int, int]:
        for upload in objects:
            review(upload, approve=False, user=user, note=note)
        logger.info("uploads rejected in bulk count=%s", len(objects))
        return len(objects), 0


class RerunBulkAction(UploadBulkAction):
    display_name = "Re-run"
    action_type = "rerun"
    aria_label = "Run the selected uploads again"
    action_priority = 30
    required_actions = (VIEW, REPLAY)
    form_class: type[forms.Form] = RerunForm
    question = (
        "Run extraction again for these uploads? Their corrections are kept and "
        "laid over the new results."
    )
    confirm_label = "Re-run"
    skipped_text = "These are being processed right now and are left as they are:"
    done_verb = "queued to run again"

    def check_perm(self, upload: Upload) -> bool:
        return upload.status != UploadStatus.PROCESSING

    def get_execution_context(self) -> dict[str, Any]:
        assert isinstance(self.cleaned_form, RerunForm)
        return {**super().get_execution_context(), "chain": self.cleaned_form.chain()}

    @classmethod
    def execute_action(
        cls,
        objects: list[Upload],
        chain: list[str] | None = None,
        **kwargs: Any,
    ) -> tuple[int, int]:
        return rerun_uploads(objects, chain=chain), 0


BULK_ACTIONS: list[type[UploadBulkAction]] = [
    ApproveBulkAction,
    RejectBulkAction,
    RerunBulkAction,
]
