"""System checks: ``cf_ingest.E0xx`` errors and ``cf_ingest.W0xx`` warnings."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from .conf import SETTING_NAME, IngestSettings, get_settings


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
    secrets = [secret for secret in config.INTERNAL_SECRETS if secret]
    if not secrets:
        messages.append(
            Warning(
                "No internal secret is configured, so the internal ingest "
                "endpoints refuse every call.",
                hint=f'Set {SETTING_NAME}["INTERNAL_SECRETS"] (for example from '
                "the INTERNAL_API_SECRET environment variable).",
                id="cf_ingest.W001",
            )
        )
    elif any(len(secret) < 16 for secret in secrets):
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
    messages += _internal_checks(config)
    messages += _backend_checks()
    checked = config.PROVIDER_CHAIN
    if config.USE_EDGE_INGEST and "workers_ai" not in checked:
        # Edge extraction calls Workers AI from the consumer.
        checked = (*checked, "workers_ai")
    messages += _provider_checks(checked)
    return messages


_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def _internal_checks(config: IngestSettings) -> list[CheckMessage]:
    """The Stage 1 base URL and the replay cache of signed requests."""
    from urllib.parse import urlsplit

    from .consumer.stage1 import base_url_problem

    messages: list[CheckMessage] = []
    url = config.INTERNAL_INGEST_BASE_URL
    problem = base_url_problem(url)
    if problem and not url.strip():
        if not config.USE_EDGE_INGEST:
            messages.append(
                Warning(
                    f"{problem} `cf_ingest_consume --stage 1` has nowhere to post "
                    "uploads.",
                    hint=f'Set {SETTING_NAME}["INTERNAL_INGEST_BASE_URL"] to the '
                    "site's origin (the INTERNAL_INGEST_BASE_URL environment "
                    "variable), e.g. https://example.com.",
                    id="cf_ingest.W020",
                )
            )
    elif problem:
        messages.append(
            Warning(
                problem,
                hint="Use the site's origin, e.g. https://example.com, optionally "
                "with the path the site is mounted under.",
                id="cf_ingest.W021",
            )
        )
    else:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme == "http" and host not in _LOOPBACK_HOSTS:
            messages.append(
                Warning(
                    "INTERNAL_INGEST_BASE_URL is plain http to another host, so "
                    "the internal secret crosses the network unencrypted.",
                    hint="Use https, or a loopback address on the same host.",
                    id="cf_ingest.W022",
                )
            )
    if config.REQUIRE_SIGNATURE:
        messages += _replay_cache_checks(config.REPLAY_CACHE)
    return messages


def _replay_cache_checks(alias: str) -> list[CheckMessage]:
    from django.conf import settings

    caches = getattr(settings, "CACHES", {}) or {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    }
    if alias not in caches:
        return [
            Error(
                f"REPLAY_CACHE names the cache {alias!r}, which is not in CACHES.",
                hint=f'Set {SETTING_NAME}["REPLAY_CACHE"] to a CACHES alias.',
                id="cf_ingest.E020",
            )
        ]
    backend = str(caches[alias].get("BACKEND", ""))
    if backend.endswith(("DummyCache", "LocMemCache")):
        return [
            Warning(
                f"Signed requests are checked for replays in the {alias!r} cache "
                f"({backend.rsplit('.', 1)[-1]}), which is not shared between "
                "processes, so a replay that reaches another process (or any, "
                "with the dummy cache) is not caught.",
                hint="Point REPLAY_CACHE at a shared cache: Redis, Memcached or "
                "the database cache.",
                id="cf_ingest.W023",
            )
        ]
    return []


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
