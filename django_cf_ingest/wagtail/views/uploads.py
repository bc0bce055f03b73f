"""The uploads listing and the upload form."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.admin.utils import quote
from django.core.exceptions import ValidationError
from django.db.models import F, QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils.functional import cached_property
from django.views.generic.edit import FormView
from wagtail.admin import messages
from wagtail.admin.ui.menus import MenuItem
from wagtail.admin.ui.tables import (
    BulkActionsCheckboxColumn,
    Column,
    DateColumn,
    TitleColumn,
    UserColumn,
)
from wagtail.admin.views.generic import IndexView, WagtailAdminTemplateMixin
from wagtail.admin.widgets.button import HeaderButton

from ...models import Upload
from ...preview import PDF, can_render_pdf
from ...reporting import with_latest_extraction
from ...services import create_upload
from ..columns import (
    ConfidenceColumn,
    ProviderColumn,
    StatusBadgeColumn,
    ThumbnailColumn,
)
from ..filters import UploadFilterSet
from ..forms import UploadDocumentsForm
from ..links import dead_letters_url, upload_url
from ..permissions import ADD, REPLAY, VIEW, UploadPermissionMixin, user_can

logger = logging.getLogger("django_cf_ingest.admin")


def thumbnail_url(upload: Upload) -> str:
    """Where the listing gets an upload's thumbnail; empty for an icon."""
    if upload.content_type == PDF and not can_render_pdf():
        return ""
    return upload_url("thumbnail", upload.pk)


def filtered_uploads(request: Any, queryset: QuerySet[Upload]) -> QuerySet[Upload]:
    """The uploads a listing shows for the request's filters and search."""
    filters = UploadFilterSet(request.GET, queryset=queryset, request=request)
    if filters.is_valid():
        queryset = filters.qs
    query = request.GET.get("q", "").strip()
    if query:
        queryset = search_uploads(queryset, query)
    return queryset


SEARCH_FIELDS = [
    "original_name",
    "uploaded_by__username",
    "uploaded_by__first_name",
    "uploaded_by__last_name",
    "uploaded_by__email",
]


def search_uploads(queryset: QuerySet[Upload], query: str) -> QuerySet[Upload]:
    from django.db.models import Q

    condition = Q()
    for field in SEARCH_FIELDS:
        condition |= Q(**{f"{field}__icontains": query})
    return queryset.filter(condition)


class UploadIndexView(UploadPermissionMixin, IndexView):
    """Every upload, newest first, with filters, search and bulk actions."""

    model = Upload
    required_actions = (VIEW,)
    any_permission_required = [VIEW]
    template_name = "cf_ingest/wagtail/uploads/index.html"
    page_title = "Uploads"
    header_icon = "doc-full-inverse"
    filterset_class = UploadFilterSet
    search_fields = SEARCH_FIELDS
    search_backend_name = None
    default_ordering = "-created_at"
    paginate_by = 25
    list_export = [
        "pk",
        "original_name",
        "document_type.name",
        "status",
        "latest_provider",
        "latest_model",
        "latest_confidence",
        "uploaded_by",
        "created_at",
    ]
    export_headings = {
        "pk": "ID",
        "original_name": "File",
        "document_type.name": "Document type",
        "latest_provider": "Provider",
        "latest_model": "Model",
        "latest_confidence": "Confidence",
    }
    export_filename = "uploads"

    def get_base_queryset(self) -> QuerySet[Upload]:
        queryset = Upload.objects.select_related("document_type", "uploaded_by")
        return with_latest_extraction(queryset)

    def order_queryset(self, queryset: QuerySet[Upload]) -> QuerySet[Upload]:
        ordering = self.ordering
        if isinstance(ordering, str) and ordering.lstrip("-").startswith("latest_"):
            # Uploads without a run sort last either way, on every database.
            field = F(ordering.lstrip("-"))
            order = field.desc if ordering.startswith("-") else field.asc
            return queryset.order_by(order(nulls_last=True), "-created_at", "-id")
        ordered: QuerySet[Upload] = super().order_queryset(queryset)
        return ordered

    @cached_property
    def columns(self) -> list[Column]:
        return [
            BulkActionsCheckboxColumn("bulk_actions", obj_type="upload"),
            ThumbnailColumn("thumbnail", get_url=thumbnail_url),
            self._get_title_column(
                "original_name",
                label="File",
                sort_key="original_name",
                get_title_id=lambda upload: f"upload_{quote(upload.pk)}_title",
            ),
            Column(
                "document_type",
                label="Document type",
                accessor="document_type.name",
                sort_key="document_type__name",
            ),
            StatusBadgeColumn("status", label="Status", sort_key="status"),
            ProviderColumn(
                "latest_provider", label="Provider / model", sort_key="latest_provider"
            ),
            ConfidenceColumn(
                "latest_confidence", label="Confidence", sort_key="latest_confidence"
            ),
            UserColumn("uploaded_by", label="Uploaded by", sort_key="uploaded_by"),
            DateColumn("created_at", label="Uploaded", sort_key="created_at"),
        ]

    def _get_title_column(self, field_name: str, **kwargs: Any) -> TitleColumn:
        label = kwargs.pop("label")
        sort_key = kwargs.pop("sort_key")
        column_class = self._get_title_column_class(TitleColumn)
        column: TitleColumn = column_class(
            field_name,
            label=label,
            sort_key=sort_key,
            get_url=lambda upload: upload_url("review", upload.pk),
            **kwargs,
        )
        return column

    def get_edit_url(self, instance: Upload) -> str:
        return upload_url("review", instance.pk)

    def get_add_url(self) -> str | None:
        if user_can(self.request.user, ADD):
            return upload_url("add")
        return None

    @cached_property
    def add_item_label(self) -> str:
        return "Upload documents"

    @cached_property
    def header_buttons(self) -> list[Any]:
        buttons: list[Any] = []
        if self.add_url:
            buttons.append(
                HeaderButton(self.add_item_label, url=self.add_url, icon_name="upload")
            )
        if user_can(self.request.user, REPLAY):
            buttons.append(
                HeaderButton(
                    "Dead letters",
                    url=dead_letters_url(),
                    icon_name="warning",
                    priority=20,
                )
            )
        return buttons

    def get_list_more_buttons(self, instance: Upload) -> list[Any]:
        buttons: list[Any] = [
            MenuItem(
                "Review",
                url=upload_url("review", instance.pk),
                icon_name="edit",
                priority=10,
            ),
            MenuItem(
                "Open the original",
                url=upload_url("file", instance.pk),
                icon_name="doc-full",
                priority=20,
            ),
        ]
        return buttons

    def get_context_data(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(*args, **kwargs)
        context["select_all_text"] = "Select all uploads in the listing"
        return context


class UploadCreateView(UploadPermissionMixin, WagtailAdminTemplateMixin, FormView):
    """Upload one or many documents of one type, through ``create_upload``:
    the same checks and the same enqueue as a host site's own uploads."""

    required_actions = (VIEW, ADD)
    template_name = "cf_ingest/wagtail/uploads/create.html"
    form_class = UploadDocumentsForm
    page_title = "Upload documents"
    header_icon = "upload"

    def get_breadcrumbs_items(self) -> list[dict[str, Any]]:
        return [
            *self.breadcrumbs_items,
            {"url": upload_url("index"), "label": "Uploads"},
            {"url": "", "label": self.page_title},
        ]

    def form_valid(self, form: UploadDocumentsForm) -> HttpResponse:
        document_type = form.cleaned_data["document_type"]
        created: list[Upload] = []
        for file in form.cleaned_data["documents"]:
            try:
                created.append(
                    create_upload(
                        file,
                        document_type,
                        name=file.name,
                        uploaded_by=self.request.user,
                    )
                )
            except ValidationError as exc:
                form.add_error("documents", f"{file.name}: {' '.join(exc.messages)}")
        logger.info(
            "admin upload document_type=%s created=%s refused=%s",
            document_type.slug,
            len(created),
            len(form.errors.get("documents", [])),
        )
        if created:
            count = len(created)
            noun = "document" if count == 1 else "documents"
            messages.success(
                self.request, f"{count} {noun} uploaded and queued for extraction."
            )
        if form.errors:
            return self.form_invalid(form)
        if len(created) == 1:
            return redirect(upload_url("review", created[0].pk))
        return redirect(upload_url("index"))
