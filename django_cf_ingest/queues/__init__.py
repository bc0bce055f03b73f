from __future__ import annotations

from functools import cache

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..conf import get_settings
from .base import QueueBackend, ReceivedMessage, Retry

__all__ = ["QueueBackend", "ReceivedMessage", "Retry", "get_backend", "load_backend"]


def load_backend(config: dict[str, object]) -> QueueBackend:
    path = config.get("BACKEND")
    if not isinstance(path, str):
        raise ImproperlyConfigured(
            'CF_INGEST["QUEUE"]["BACKEND"] must be a dotted path.'
        )
    unknown = sorted(set(config) - {"BACKEND", "OPTIONS"})
    if unknown:
        raise ImproperlyConfigured(
            f'CF_INGEST["QUEUE"] has unknown key(s): {", ".join(unknown)}.'
        )
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"Cannot import queue backend {path!r}: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, QueueBackend)):
        raise ImproperlyConfigured(f"{path!r} is not a QueueBackend subclass.")
    options = config.get("OPTIONS") or {}
    if not isinstance(options, dict):
        raise ImproperlyConfigured('CF_INGEST["QUEUE"]["OPTIONS"] must be a dict.')
    return cls(options)


@cache
def get_backend() -> QueueBackend:
    return load_backend(get_settings().QUEUE)
