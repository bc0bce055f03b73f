"""The review screen: the document beside an editable form of its fields,
the runs behind them, and the review actions."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import Prefetch
from django.forms import BoundField
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.functional import cached_property
from django.views import View
from django.views.generic import TemplateView
from wagtail.admin import messages
from wagtail.admin.views.generic import WagtailAdminTemplateMixin
from wagtail.admin.widgets.button import HeaderButton

from ...models import (
    DONE_STATUSES,
    Correction,
    Extraction,
    ProviderCall,
    Upload,
    UploadStatus,
)
from ...preview import PDF, PreviewUnavailable, can_render_pdf, page_count
from ...schema_forms import SchemaForm, display_value
from ...services import DEAD_LETTER_STATUSES, correct, rerun_uploads, review
from ...storage import preview_url
from ..columns import status_tone
from ..forms import RejectForm, RerunForm
from ..links import upload_url
from ..permissions import REPLAY, REVIEW, VIEW, UploadPermissionMixin, user_can

logger = logging.getLogger("django_cf_ingest.admin")


@dataclass
class FieldRow:
    """One schema field on the review screen."""

    field: BoundField
    machine_value: str
    has_machine_value: bool
    correction: Correction | None
    #: Takes the form's full width (lists, JSON and long text).
    wide: bool = False

    @property
    def corrected(self) -> bool:
        return self.correction is not None


@dataclass
class Run:
    """One extraction with the provider calls behind it."""

    extraction: Extraction
    calls: list[ProviderCall]

    @property
    def tokens(self) -> int:
        return sum(call.tokens_in + call.tokens_out for call in self.calls)

    @property
    def cost(self) -> Decimal:
        return sum((call.cost for call in self.calls), Decimal(0))

    @property
    def latency_ms(self) -> int:
        return sum(call.latency_ms for call in self.calls)


def get_upload(pk: int) -> Upload:
    return get_object_or_404(
        Upload.objects.select_related(
            "document_type", "uploaded_by", "reviewed_by", "discarded_by"
        ),
        pk=pk,
    )


class UploadObjectMixin:
    request: HttpRequest
    kwargs: dict[str, Any]

    @cached_property
    def upload(self) -> Upload:
        return get_upload(int(self.kwargs["pk"]))


class ReviewView(
    UploadPermissionMixin, UploadObjectMixin, WagtailAdminTemplateMixin, TemplateView
):
    """GET shows the screen; POST saves corrections, and with
    ``action=approve`` approves the upload as corrected."""

    required_actions = (VIEW,)
    post_actions = (REVIEW,)
    template_name = "cf_ingest/wagtail/uploads/review.html"
    header_icon = "doc-full-inverse"

    def get_page_title(self) -> str:
        return "Review"

    def get_page_subtitle(self) -> str:
        return str(self.upload)

    def get_breadcrumbs_items(self) -> list[dict[str, Any]]:
        return [
            *self.breadcrumbs_items,
            {"url": upload_url("index"), "label": "Uploads"},
            {"url": "", "label": str(self.upload)},
        ]

    @cached_property
    def next_to_review(self) -> Upload | None:
        return (
            Upload.objects.filter(status=UploadStatus.NEEDS_REVIEW)
            .exclude(pk=self.upload.pk)
            .order_by("created_at", "id")
            .first()
        )

    @cached_property
    def header_buttons(self) -> list[Any]:
        buttons: list[Any] = [
            HeaderButton(
                "Open the original",
                url=upload_url("file", self.upload.pk),
                icon_name="doc-full",
                attrs={"target": "_blank", "rel": "noopener"},
                priority=10,
            )
        ]
        if self.next_to_review is not None:
            buttons.append(
                HeaderButton(
                    "Next to review",
                    url=upload_url("review", self.next_to_review.pk),
                    icon_name="arrow-right",
                    priority=20,
                )
            )
        return buttons

    def get_form(self, data: Any = None) -> SchemaForm | None:
        spec = self.upload.document_type.spec
        if spec is None:
            return None
        form = SchemaForm(spec, data=data, initial=self.upload.corrected_data())
        if not user_can(self.request.user, REVIEW):
            for field in form.fields.values():
                field.disabled = True
        return form

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        upload = self.upload
        form = self.get_form(request.POST)
        if form is None:
            messages.error(request, "This document type has no registered schema.")
            return redirect(upload_url("review", upload.pk))
        approve = request.POST.get("action") == "approve"
        if approve and upload.status not in DONE_STATUSES:
            messages.error(
                request,
                f"Only a finished run can be approved; this upload is "
                f"{upload.get_status_display().lower()}.",
            )
            return redirect(upload_url("review", upload.pk))
        if not form.is_valid():
            messages.error(
                request, "The corrections were not saved: see the errors below."
            )
            return self.render_to_response(self.get_context_data(form=form))

        created = correct(upload, form.values, user=request.user)
        if approve:
            review(upload, approve=True, user=request.user)
            logger.info(
                "upload approved upload=%s corrections=%s", upload.pk, len(created)
            )
            messages.success(request, f"“{upload}” approved.")
            if self.next_to_review is not None:
                return redirect(upload_url("review", self.next_to_review.pk))
        elif created:
            count = len(created)
            messages.success(
                request, f"{count} correction{'s' if count != 1 else ''} saved."
            )
        else:
            messages.warning(request, "Nothing changed: no correction was saved.")
        return redirect(upload_url("review", upload.pk))

    def runs(self) -> tuple[list[Run], list[ProviderCall]]:
        """Every run, newest first, and the calls of runs that kept no result."""
        extractions = list(
            self.upload.extractions.order_by("-created_at", "-id").prefetch_related(
                Prefetch(
                    "provider_calls",
                    queryset=ProviderCall.objects.order_by("created_at", "id"),
                )
            )
        )
        runs = [Run(e, list(e.provider_calls.all())) for e in extractions]
        orphans = list(
            self.upload.provider_calls.filter(extraction__isnull=True).order_by(
                "-created_at", "-id"
            )
        )
        return runs, orphans

    def field_rows(
        self, form: SchemaForm, extraction: Extraction | None
    ) -> list[FieldRow]:
        machine = extraction.data if extraction and extraction.data else {}
        latest: dict[str, Correction] = {}
        for row in self.upload.corrections.select_related("editor").order_by(
            "created_at", "id"
        ):
            latest[row.field] = row
        current = self.upload.corrected_data()
        rows = []
        for spec_field in form.schema_fields:
            name = spec_field.name
            correction: Correction | None = latest.get(name)
            # A correction back to the machine value is no longer a difference.
            if name in machine and machine[name] == current.get(name):
                correction = None
            rows.append(
                FieldRow(
                    field=form[name],
                    machine_value=display_value(machine.get(name)),
                    has_machine_value=name in machine,
                    correction=correction,
                    wide=spec_field.kind in ("lines", "json")
                    or isinstance(form.fields[name].widget, forms.Textarea),
                )
            )
        return rows

    def document_pages(self) -> dict[str, Any]:
        """How the document is shown: page images, or the PDF itself."""
        upload = self.upload
        signed = preview_url(upload)
        if upload.content_type == PDF and not can_render_pdf():
            return {"embed_url": signed or upload_url("file", upload.pk), "pages": []}
        if upload.content_type != PDF and signed:
            return {"embed_url": "", "pages": [signed], "signed": True}
        try:
            count = page_count(upload)
        except PreviewUnavailable:
            return {"embed_url": "", "pages": [], "error": "The file cannot be read."}
        return {
            "embed_url": "",
            "pages": [upload_url("page", upload.pk, n) for n in range(1, count + 1)],
        }

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        upload = self.upload
        user = self.request.user
        form = kwargs.get("form") or self.get_form()
        runs, orphan_calls = self.runs()
        extraction = runs[0].extraction if runs else None
        can_review = user_can(user, REVIEW)
        can_replay = user_can(user, REPLAY)
        corrections = list(
            upload.corrections.select_related("editor").order_by("-created_at", "-id")
        )
        calls_by_purpose: dict[str, int] = defaultdict(int)
        for call in runs[0].calls if runs else []:
            calls_by_purpose[call.purpose] += 1
        context.update(
            upload=upload,
            document_type=upload.document_type,
            status_tone=status_tone(upload.status),
            threshold=upload.document_type.threshold(),
            extraction=extraction,
            latest_run=runs[0] if runs else None,
            runs=runs,
            orphan_calls=orphan_calls,
            form=form,
            field_rows=self.field_rows(form, extraction) if form else [],
            corrections=corrections,
            document=self.document_pages(),
            can_review=can_review,
            can_replay=can_replay,
            can_approve=can_review and upload.status in DONE_STATUSES,
            is_dead_letter=upload.status in DEAD_LETTER_STATUSES,
            reject_form=RejectForm(),
            rerun_form=RerunForm(),
            is_processing=upload.status == UploadStatus.PROCESSING,
        )
        return context


class RejectView(UploadPermissionMixin, UploadObjectMixin, View):
    required_actions = (VIEW, REVIEW)
    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        upload = self.upload
        form = RejectForm(request.POST)
        if upload.status not in DONE_STATUSES:
            messages.error(request, "Only a finished run can be rejected.")
        elif not form.is_valid():
            messages.error(request, "Give a reason to reject the result.")
        else:
            review(
                upload,
                approve=False,
                user=request.user,
                note=form.cleaned_data["reason"],
            )
            logger.info("upload rejected upload=%s", upload.pk)
            messages.success(request, f"“{upload}” rejected.")
        return redirect(upload_url("review", upload.pk))


class RerunView(UploadPermissionMixin, UploadObjectMixin, View):
    required_actions = (VIEW, REPLAY)
    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        upload = self.upload
        form = RerunForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose one of the configured providers.")
            return redirect(upload_url("review", upload.pk))
        chain = form.chain()
        if rerun_uploads([upload.pk], chain=chain):
            using = f" with {chain[0]}" if chain else ""
            messages.success(
                request,
                f"“{upload}” queued to run again{using}. Corrections are kept.",
            )
        else:
            messages.warning(
                request, "The upload is being processed right now; try again later."
            )
        return redirect(upload_url("review", upload.pk))
