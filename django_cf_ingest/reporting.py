"""Figures about uploads and provider usage, for the admin screens."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import (
    Count,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import TruncDate
from django.utils import timezone

from .conf import get_settings
from .models import Extraction, ProviderCall, Upload, UploadStatus

logger = logging.getLogger("django_cf_ingest.reporting")

FAILED_STATUSES = (UploadStatus.FAILED, UploadStatus.DEAD)


def with_latest_extraction(queryset: QuerySet[Upload]) -> QuerySet[Upload]:
    """Annotate each upload with its latest run: ``latest_provider``,
    ``latest_model``, ``latest_confidence`` and ``latest_valid``."""
    latest = Extraction.objects.filter(upload=OuterRef("pk")).order_by(
        "-created_at", "-id"
    )
    return queryset.annotate(
        latest_provider=Subquery(latest.values("provider")[:1]),
        latest_model=Subquery(latest.values("model")[:1]),
        latest_confidence=Subquery(latest.values("confidence")[:1]),
        latest_valid=Subquery(latest.values("is_valid")[:1]),
    )


def provider_names() -> list[str]:
    """Providers an editor may pick for a re-run: the default chain first,
    then every other configured provider."""
    config = get_settings()
    names = list(dict.fromkeys([*config.PROVIDER_CHAIN, *config.PROVIDERS]))
    return names


def extraction_choices(field: str) -> list[tuple[str, str]]:
    """Distinct non-empty values of an extraction field, for a filter."""
    values = (
        Extraction.objects.exclude(**{field: ""})
        .order_by(field)
        .values_list(field, flat=True)
        .distinct()
    )
    return [(value, value) for value in values]


@dataclass(frozen=True)
class StatusCount:
    status: str
    label: str
    count: int


@dataclass(frozen=True)
class Summary:
    statuses: list[StatusCount]
    total: int
    failures_last_24h: int
    #: Messages waiting in the queue; None where the backend cannot tell.
    backlog: int | None
    month_start: datetime
    tokens_in: int
    tokens_out: int
    cost: Decimal
    calls: int

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


def queue_backlog() -> int | None:
    from .queues import get_backend

    try:
        return get_backend().backlog()
    except Exception:
        # The dashboard still shows everything else when the queue is unreachable.
        logger.exception("queue backlog unavailable")
        return None


def summary(now: datetime | None = None) -> Summary:
    now = now or timezone.now()
    counts = dict(
        Upload.objects.order_by()
        .values_list("status")
        .annotate(count=Count("id"))
        .values_list("status", "count")
    )
    statuses = [
        StatusCount(status=value, label=str(label), count=counts.get(value, 0))
        for value, label in UploadStatus.choices
    ]
    failures = Upload.objects.filter(
        status__in=FAILED_STATUSES, updated_at__gte=now - timedelta(hours=24)
    ).count()
    local_now = timezone.localtime(now)
    month_start = local_now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    usage = ProviderCall.objects.filter(created_at__gte=month_start).aggregate(
        tokens_in=Sum("tokens_in"),
        tokens_out=Sum("tokens_out"),
        cost=Sum("cost"),
        calls=Count("id"),
    )
    return Summary(
        statuses=statuses,
        total=sum(counts.values()),
        failures_last_24h=failures,
        backlog=queue_backlog(),
        month_start=month_start,
        tokens_in=usage["tokens_in"] or 0,
        tokens_out=usage["tokens_out"] or 0,
        cost=usage["cost"] or Decimal(0),
        calls=usage["calls"] or 0,
    )


def usage_by_day(calls: QuerySet[ProviderCall]) -> QuerySet[Any]:
    """Provider calls summed per day, document type and provider: dicts with
    ``day``, ``document_type``, ``provider``, ``calls``, ``tokens_in``,
    ``tokens_out`` and ``cost``."""
    return (
        calls.order_by()
        .annotate(
            day=TruncDate("created_at"),
            document_type=F("upload__document_type__name"),
        )
        .values("day", "document_type", "provider")
        .annotate(
            calls=Count("id"),
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            cost=Sum("cost"),
        )
    )
