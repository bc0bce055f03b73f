"""System checks: ``cf_ingest.E0xx`` errors and ``cf_ingest.W0xx`` warnings."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from .conf import SETTING_NAME, get_settings


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        config = get_settings()
    except (ImproperlyConfigured, TypeError) as exc:
        return [
            Error(
                str(exc),
                hint=f"Fix the {SETTING_NAME} setting.",
                id="cf_ingest.E010",
            )
        ]
    messages: list[CheckMessage] = []
    if not config.INTERNAL_SECRETS:
        messages.append(
            Warning(
                "No internal secret is configured, so the internal ingest "
                "endpoints refuse every call.",
                hint=f'Set {SETTING_NAME}["INTERNAL_SECRETS"] (for example from '
                "the INTERNAL_API_SECRET environment variable).",
                id="cf_ingest.W001",
            )
        )
    elif any(len(secret) < 16 for secret in config.INTERNAL_SECRETS):
        messages.append(
            Warning(
                "An internal secret is shorter than 16 characters.",
                hint="Use a long random value, e.g. `openssl rand -hex 32`.",
                id="cf_ingest.W002",
            )
        )
    if not config.PROVIDER_CHAIN:
        messages.append(
            Error(
                "PROVIDER_CHAIN is empty.",
                hint=f'Set {SETTING_NAME}["PROVIDER_CHAIN"] to e.g. ["ocr"].',
                id="cf_ingest.E011",
            )
        )
    messages += _backend_checks()
    messages += _provider_checks(config.PROVIDER_CHAIN)
    return messages


def _backend_checks() -> list[CheckMessage]:
    from .queues import get_backend

    try:
        return get_backend().check()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint=f'Fix {SETTING_NAME}["QUEUE"].',
                id="cf_ingest.E012",
            )
        ]


def _provider_checks(chain: tuple[str, ...]) -> list[CheckMessage]:
    from .providers import get_provider

    messages: list[CheckMessage] = []
    for name in chain:
        try:
            messages += get_provider(name).check()
        except ImproperlyConfigured as exc:
            messages.append(
                Error(
                    str(exc),
                    hint=f'Fix {SETTING_NAME}["PROVIDERS"][{name!r}].',
                    id="cf_ingest.E013",
                )
            )
    return messages


@register()
def check_document_types(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from .models import DocumentType
    from .registry import get_spec

    try:
        rows = list(DocumentType.objects.values_list("slug", "schema", "is_active"))
    except (DatabaseError, RuntimeError):
        return []  # Not migrated yet, or no database access here.
    return [
        Error(
            f"Document type {slug!r} refers to schema {schema!r}, "
            "which is not registered.",
            hint="Register a pydantic model with "
            f'@django_cf_ingest.registry.register("{schema}") in a '
            "cf_ingest_types module, or deactivate the document type.",
            obj=f"DocumentType {slug}",
            id="cf_ingest.E001",
        )
        for slug, schema, active in rows
        if active and get_spec(schema) is None
    ]
