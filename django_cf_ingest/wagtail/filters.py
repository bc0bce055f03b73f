"""Filters of the admin listings, as django-filter filter sets."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.widgets import SuffixedMultiWidget
from wagtail.admin.filters import DateRangePickerWidget, WagtailFilterSet

from ..models import DocumentType, ProviderCall, Upload, UploadStatus
from ..reporting import extraction_choices
from ..services import DEAD_LETTER_STATUSES


class ConfidenceRangeWidget(SuffixedMultiWidget):
    """Two number inputs, from 0 to 1, for a confidence range."""

    template_name = "wagtailadmin/widgets/range_input.html"
    suffixes = ["min", "max"]

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        bounds = {"min": "0", "max": "1", "step": "0.05"}
        widgets = (
            forms.NumberInput(attrs={"placeholder": "From", **bounds}),
            forms.NumberInput(attrs={"placeholder": "To", **bounds}),
        )
        super().__init__(widgets, attrs)

    def decompress(self, value: Any) -> list[Any]:
        if value:
            return [value.start, value.stop]
        return [None, None]


def _document_types(request: Any) -> QuerySet[DocumentType]:
    return DocumentType.objects.order_by("name")


class UploadFilterSet(WagtailFilterSet):
    """Filters of the uploads listing. Provider, model and confidence are
    those of each upload's latest run (see ``with_latest_extraction``)."""

    status = django_filters.MultipleChoiceFilter(
        label="Status",
        choices=UploadStatus.choices,
        widget=forms.CheckboxSelectMultiple,
    )
    document_type = django_filters.ModelMultipleChoiceFilter(
        label="Document type",
        queryset=_document_types,
        widget=forms.CheckboxSelectMultiple,
    )
    provider = django_filters.ChoiceFilter(
        label="Provider",
        field_name="latest_provider",
        choices=lambda: extraction_choices("provider"),
        empty_label="Any",
    )
    model = django_filters.ChoiceFilter(
        label="Model",
        field_name="latest_model",
        choices=lambda: extraction_choices("model"),
        empty_label="Any",
    )
    confidence = django_filters.RangeFilter(
        label="Confidence",
        field_name="latest_confidence",
        widget=ConfidenceRangeWidget,
    )
    created_at = django_filters.DateFromToRangeFilter(
        label="Uploaded",
        widget=DateRangePickerWidget,
    )

    class Meta:
        model = Upload
        fields: list[str] = []


class DeadLetterFilterSet(WagtailFilterSet):
    status = django_filters.MultipleChoiceFilter(
        label="Status",
        choices=[(s.value, s.label) for s in DEAD_LETTER_STATUSES],
        widget=forms.CheckboxSelectMultiple,
    )
    document_type = django_filters.ModelMultipleChoiceFilter(
        label="Document type",
        queryset=_document_types,
        widget=forms.CheckboxSelectMultiple,
    )
    discarded = django_filters.ChoiceFilter(
        label="Discarded",
        choices=[("no", "Waiting for a decision"), ("yes", "Discarded")],
        empty_label="All",
        initial="no",
        method="filter_discarded",
        widget=forms.RadioSelect,
    )
    updated_at = django_filters.DateFromToRangeFilter(
        label="Failed",
        widget=DateRangePickerWidget,
    )

    class Meta:
        model = Upload
        fields: list[str] = []

    def filter_discarded(
        self, queryset: QuerySet[Upload], name: str, value: str
    ) -> QuerySet[Upload]:
        if value == "no":
            return queryset.filter(discarded_at__isnull=True)
        if value == "yes":
            return queryset.filter(discarded_at__isnull=False)
        return queryset


class UsageFilterSet(WagtailFilterSet):
    created_at = django_filters.DateFromToRangeFilter(
        label="Day",
        widget=DateRangePickerWidget,
    )
    document_type = django_filters.ModelMultipleChoiceFilter(
        label="Document type",
        field_name="upload__document_type",
        queryset=_document_types,
        widget=forms.CheckboxSelectMultiple,
    )
    provider = django_filters.ChoiceFilter(
        label="Provider",
        choices=lambda: [
            (name, name)
            for name in ProviderCall.objects.order_by("provider")
            .values_list("provider", flat=True)
            .distinct()
        ],
        empty_label="Any",
    )

    class Meta:
        model = ProviderCall
        fields: list[str] = []
