"""Dead letters: uploads the queue gave up on (``dead``) or whose last run
failed (``failed``), to replay or to discard with a reason."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib.admin.utils import quote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.functional import cached_property
from django.utils.http import urlencode
from django.views.generic.edit import FormView
from wagtail.admin import messages
from wagtail.admin.ui.menus import MenuItem
from wagtail.admin.ui.tables import (
    BulkActionsCheckboxColumn,
    Column,
    DateColumn,
    TitleColumn,
)
from wagtail.admin.utils import get_valid_next_url_from_request
from wagtail.admin.views.generic import IndexView, WagtailAdminTemplateMixin
from wagtail.admin.widgets.button import HeaderButton

from ...models import Upload
from ...services import DEAD_LETTER_STATUSES, discard_uploads, rerun_uploads
from ..columns import StatusBadgeColumn, TextColumn, status_tone
from ..filters import DeadLetterFilterSet
from ..forms import DiscardForm
from ..links import dead_letters_url, upload_url
from ..permissions import REPLAY, VIEW, UploadPermissionMixin

logger = logging.getLogger("django_cf_ingest.admin")


def dead_letters() -> QuerySet[Upload]:
    return Upload.objects.filter(status__in=DEAD_LETTER_STATUSES).select_related(
        "document_type", "discarded_by"
    )


def filter_dead_letters(request: HttpRequest, queryset: QuerySet[Upload]) -> Any:
    data = request.GET.copy()
    # Discarded uploads are out of the way unless asked for.
    data.setdefault("discarded", "no")
    filters = DeadLetterFilterSet(data, queryset=queryset, request=request)
    return filters


class DeadLetterIndexView(UploadPermissionMixin, IndexView):
    model = Upload
    required_actions = (VIEW, REPLAY)
    any_permission_required = [VIEW]
    template_name = "cf_ingest/wagtail/dead_letters/index.html"
    page_title = "Dead letters"
    header_icon = "warning"
    filterset_class = DeadLetterFilterSet
    search_fields = ["original_name", "last_error", "discard_reason"]
    search_backend_name = None
    default_ordering = "-updated_at"
    paginate_by = 50

    def get_base_queryset(self) -> QuerySet[Upload]:
        return dead_letters()

    @cached_property
    def no_results_message(self) -> str:
        if self.is_searching or self.is_filtering:
            return "No dead letters match these filters."
        return "No dead letters: no upload is dead or failed, or all were discarded."

    def get_filterset_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = super().get_filterset_kwargs()
        data = kwargs["data"].copy()
        data.setdefault("discarded", "no")
        kwargs["data"] = data
        return kwargs

    @cached_property
    def columns(self) -> list[Column]:
        title_class = self._get_title_column_class(TitleColumn)
        columns: list[Column] = [
            BulkActionsCheckboxColumn("bulk_actions", obj_type="upload"),
            title_class(
                "original_name",
                label="File",
                sort_key="original_name",
                get_url=lambda upload: upload_url("review", upload.pk),
                get_title_id=lambda upload: f"upload_{quote(upload.pk)}_title",
            ),
            Column(
                "document_type",
                label="Document type",
                accessor="document_type.name",
                sort_key="document_type__name",
            ),
            StatusBadgeColumn("status", label="Status", sort_key="status"),
            Column("attempts", label="Attempts", sort_key="attempts", width="90px"),
            TextColumn("last_error", label="Last error"),
            DateColumn("updated_at", label="Failed", sort_key="updated_at"),
        ]
        if self.request.GET.get("discarded", "no") != "no":
            columns.insert(-1, TextColumn("discard_reason", label="Discard reason"))
        return columns

    def get_edit_url(self, instance: Upload) -> str:
        return upload_url("review", instance.pk)

    def get_add_url(self) -> None:
        return None

    def get_list_more_buttons(self, instance: Upload) -> list[Any]:
        query = "?" + urlencode(
            {"id": instance.pk, "next": self.request.get_full_path()}
        )
        return [
            MenuItem(
                "Replay",
                url=dead_letters_url("replay") + query,
                icon_name="rotate",
                priority=10,
            ),
            MenuItem(
                "Discard",
                url=dead_letters_url("discard") + query,
                icon_name="bin",
                priority=20,
            ),
            MenuItem(
                "Review",
                url=upload_url("review", instance.pk),
                icon_name="edit",
                priority=30,
            ),
        ]

    @cached_property
    def header_buttons(self) -> list[Any]:
        return [
            HeaderButton("All uploads", url=upload_url("index"), icon_name="list-ul")
        ]

    def get_context_data(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(*args, **kwargs)
        context["replay_url"] = dead_letters_url("replay")
        context["discard_url"] = dead_letters_url("discard")
        return context


class DeadLetterActionView(UploadPermissionMixin, WagtailAdminTemplateMixin, FormView):
    """GET confirms the uploads chosen by ``id`` (or ``id=all`` with the
    listing's filters); POST acts on them."""

    required_actions = (VIEW, REPLAY)
    template_name = "cf_ingest/wagtail/dead_letters/confirm.html"
    header_icon = "warning"
    form_class: type[forms.Form] = forms.Form
    question = ""
    confirm_label = ""
    none_text = ""
    button_class = ""

    def get_breadcrumbs_items(self) -> list[dict[str, Any]]:
        return [
            *self.breadcrumbs_items,
            {"url": dead_letters_url(), "label": "Dead letters"},
            {"url": "", "label": self.get_page_title()},
        ]

    @cached_property
    def next_url(self) -> str:
        return get_valid_next_url_from_request(self.request) or dead_letters_url()

    @cached_property
    def chosen(self) -> list[Upload]:
        ids = self.request.GET.getlist("id")
        queryset = dead_letters()
        if "all" in ids:
            return list(filter_dead_letters(self.request, queryset).qs)
        numbers = [int(i) for i in ids if i.isdigit()]
        return list(queryset.filter(pk__in=numbers).order_by("-updated_at", "-id"))

    def items(self) -> list[Upload]:
        return self.chosen

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context.update(
            items=[
                {
                    "item": upload,
                    "review_url": upload_url("review", upload.pk),
                    "tone": status_tone(upload.status),
                }
                for upload in self.items()
            ],
            next=self.next_url,
            submit_url=self.request.get_full_path(),
        )
        return context

    def perform(self, uploads: list[Upload], form: forms.Form) -> int:
        raise NotImplementedError

    def success_message(self, count: int) -> str:
        raise NotImplementedError

    def form_valid(self, form: forms.Form) -> HttpResponse:
        uploads = self.items()
        if not uploads:
            messages.warning(self.request, "No dead letters were chosen.")
            return redirect(self.next_url)
        count = self.perform(uploads, form)
        messages.success(self.request, self.success_message(count))
        return redirect(self.next_url)


class ReplayView(DeadLetterActionView):
    page_title = "Replay"
    question = "Queue these uploads to run again, from their first attempt?"
    confirm_label = "Replay"
    none_text = "None of the chosen uploads is dead or failed: nothing to replay."

    def items(self) -> list[Upload]:
        return [u for u in self.chosen if u.status in DEAD_LETTER_STATUSES]

    def perform(self, uploads: list[Upload], form: forms.Form) -> int:
        count = rerun_uploads(uploads)
        logger.info("dead letters replayed count=%s", count)
        return count

    def success_message(self, count: int) -> str:
        noun = "upload" if count == 1 else "uploads"
        return f"{count} {noun} queued to run again."


class DiscardView(DeadLetterActionView):
    page_title = "Discard"
    question = (
        "Discard these uploads? They stay as they are, out of the dead letters, "
        "with your reason; a replay brings them back."
    )
    confirm_label = "Discard"
    none_text = (
        "None of the chosen uploads can be discarded: they are not dead or "
        "failed, or are discarded already."
    )
    button_class = "serious"
    form_class = DiscardForm

    def items(self) -> list[Upload]:
        return [u for u in self.chosen if u.discarded_at is None]

    def perform(self, uploads: list[Upload], form: forms.Form) -> int:
        return discard_uploads(
            uploads, reason=form.cleaned_data["reason"], user=self.request.user
        )

    def success_message(self, count: int) -> str:
        noun = "upload" if count == 1 else "uploads"
        return f"{count} {noun} discarded."
