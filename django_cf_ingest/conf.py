"""The app's one settings dict, ``CF_INGEST``, read through a typed accessor.

Every key has a default, so an empty dict (or no setting at all) gives the
embedded default: the database queue and the offline ``ocr`` provider. A key
that is not known here is an error that names the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

SETTING_NAME = "CF_INGEST"

DEFAULT_CONTENT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/gif",
    "image/tiff",
    "application/pdf",
)

BUILTIN_PROVIDERS = {
    "ocr": "django_cf_ingest.providers.ocr.OcrProvider",
    "google": "django_cf_ingest.providers.google.GoogleProvider",
    "workers_ai": "django_cf_ingest.providers.workers_ai.WorkersAIProvider",
    "openai": "django_cf_ingest.providers.openai.OpenAIProvider",
}


def _default_queue() -> dict[str, Any]:
    return {"BACKEND": "django_cf_ingest.queues.database.DatabaseBackend"}


@dataclass(frozen=True)
class IngestSettings:
    # Queue backend: {"BACKEND": dotted path, "OPTIONS": {...}}.
    QUEUE: dict[str, Any] = field(default_factory=_default_queue)
    # Provider settings by name: {"google": {"API_KEY": ..., "MODEL": ...}}.
    # A name outside BUILTIN_PROVIDERS needs a "BACKEND" dotted path.
    PROVIDERS: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Providers tried in order while confidence stays under the threshold.
    PROVIDER_CHAIN: tuple[str, ...] = ("ocr",)
    CONFIDENCE_THRESHOLD: float = 0.7
    # Answer 503 + Retry-After on low confidence instead of keeping the result.
    REQUEUE_ON_LOW_CONFIDENCE: bool = False
    LOW_CONFIDENCE_RETRY_DELAY: int = 300
    # Re-ask a model once, with the validation errors, when its output is invalid.
    REASK_ON_INVALID: bool = True

    # Uploads.
    STORAGE: str = "default"
    UPLOAD_TO: str = "cf_ingest/%Y/%m/"
    MAX_UPLOAD_SIZE: int = 20 * 1024 * 1024
    ALLOWED_CONTENT_TYPES: tuple[str, ...] = DEFAULT_CONTENT_TYPES
    MAX_PDF_PAGES: int = 20

    # Delivery and retries.
    MAX_ATTEMPTS: int = 5
    RETRY_BASE_DELAY: float = 2.0
    RETRY_MAX_DELAY: float = 3600.0
    # How long a delivery may hold an upload before another may take it over.
    PROCESSING_TIMEOUT: int = 300
    OUTBOX_BATCH_SIZE: int = 100

    # Internal endpoints.
    INTERNAL_SECRETS: tuple[str, ...] = ()
    REQUIRE_SIGNATURE: bool = False
    SIGNATURE_MAX_AGE: int = 300
    # Cache alias that remembers seen signatures, so a signed request is
    # accepted once. Share it between server processes (Redis, Memcached, DB).
    REPLAY_CACHE: str = "default"
    INTERNAL_MAX_BODY_SIZE: int = 1024 * 1024
    INTERNAL_INGEST_BASE_URL: str = "http://127.0.0.1:8000"
    INTERNAL_URL_PREFIX: str = "internal/ingest/"
    HTTP_TIMEOUT: float = 120.0

    # Stage 2 (edge extraction).
    USE_EDGE_INGEST: bool = False
    WORKERS_AI_MODEL: str = "@cf/meta/llama-3.2-11b-vision-instruct"
    MAX_TOKENS: int = 2048
    RETRY_INVALID_COMPLETE: bool = False

    # Cost: {"provider": {"model": {"input": usd_per_million, "output": ...}}}.
    PRICES: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    # Slack-compatible webhook called when an upload goes dead.
    FAILURE_WEBHOOK_URL: str = ""

    def provider_options(self, name: str) -> dict[str, Any]:
        return dict(self.PROVIDERS.get(name, {}))


_TUPLE_KEYS = {
    f.name for f in dataclasses.fields(IngestSettings) if f.type.startswith("tuple")
}


def build_settings(raw: dict[str, Any] | None) -> IngestSettings:
    raw = dict(raw or {})
    known = {f.name for f in dataclasses.fields(IngestSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ImproperlyConfigured(
            f"{SETTING_NAME} has unknown key(s): {', '.join(unknown)}. "
            f"Known keys: {', '.join(sorted(known))}."
        )
    for key in _TUPLE_KEYS & set(raw):
        value = raw[key]
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        raw[key] = tuple(value)
    return IngestSettings(**raw)


@cache
def get_settings() -> IngestSettings:
    return build_settings(getattr(django_settings, SETTING_NAME, None))


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in (SETTING_NAME, "STORAGES"):
        get_settings.cache_clear()
        from . import queues, storage

        queues.get_backend.cache_clear()
        storage.get_upload_storage.cache_clear()
