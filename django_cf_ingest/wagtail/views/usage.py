"""The usage report: provider calls, tokens and cost per day, document type
and provider, with CSV and XLSX export."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.utils.functional import cached_property
from wagtail.admin.ui.tables import Column, NumberColumn
from wagtail.admin.views.reports import ReportView

from ...models import ProviderCall, Upload
from ...reporting import usage_by_day
from ..filters import UsageFilterSet
from ..links import USAGE
from ..permissions import VIEW, UploadPermissionMixin


class CostColumn(Column):
    def get_cell_context_data(
        self, instance: Any, parent_context: dict[str, Any]
    ) -> dict[str, Any]:
        context: dict[str, Any] = super().get_cell_context_data(
            instance, parent_context
        )
        cost = context["raw_value"] or Decimal(0)
        context["value"] = f"${cost:,.4f}"
        return context


class UsageReportView(UploadPermissionMixin, ReportView):
    model = Upload  # Permissions are those of uploads.
    required_actions = (VIEW,)
    any_permission_required = [VIEW]
    page_title = "Usage"
    page_subtitle = "Provider calls per day, document type and provider"
    verbose_name = "row"
    verbose_name_plural = "rows"
    header_icon = "table"
    results_template_name = "cf_ingest/wagtail/usage/results.html"
    index_url_name = f"{USAGE}:index"
    index_results_url_name = f"{USAGE}:index_results"
    filterset_class = UsageFilterSet
    default_ordering = "-day"
    paginate_by = 50
    list_export = [
        "day",
        "document_type",
        "provider",
        "calls",
        "tokens_in",
        "tokens_out",
        "cost",
    ]
    export_headings = {
        "day": "Day",
        "document_type": "Document type",
        "provider": "Provider",
        "calls": "Calls",
        "tokens_in": "Tokens in",
        "tokens_out": "Tokens out",
        "cost": "Cost (USD)",
    }

    def get_filename(self) -> str:
        return f"cf-ingest-usage-{datetime.date.today():%Y-%m-%d}"

    @cached_property
    def columns(self) -> list[Column]:
        return [
            Column("day", label="Day", sort_key="day"),
            Column("document_type", label="Document type", sort_key="document_type"),
            Column("provider", label="Provider", sort_key="provider"),
            NumberColumn("calls", label="Calls", sort_key="calls"),
            NumberColumn("tokens_in", label="Tokens in", sort_key="tokens_in"),
            NumberColumn("tokens_out", label="Tokens out", sort_key="tokens_out"),
            CostColumn("cost", label="Cost", sort_key="cost"),
        ]

    def get_queryset(self) -> QuerySet[Any]:
        return ProviderCall.objects.all()

    @cached_property
    def filtered_calls(self) -> QuerySet[ProviderCall]:
        return self.filter_queryset(ProviderCall.objects.all())

    def get_filtered_queryset(self) -> QuerySet[Any]:
        rows = usage_by_day(self.filtered_calls)
        ordering = self.ordering or self.default_ordering
        tiebreak = [
            key for key in ("-day", "document_type", "provider") if key != ordering
        ]
        return rows.order_by(ordering, *tiebreak)

    def get_context_data(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(*args, **kwargs)
        context["totals"] = self.filtered_calls.aggregate(
            calls=Count("id"),
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            cost=Sum("cost"),
        )
        return context
