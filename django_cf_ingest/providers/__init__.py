from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..conf import BUILTIN_PROVIDERS, get_settings
from .base import ExtractionRequest, Provider, ProviderResult, Usage

__all__ = [
    "ExtractionRequest",
    "Provider",
    "ProviderResult",
    "Usage",
    "get_provider",
    "load_provider",
]

_lock = threading.Lock()
_cache: dict[tuple[str, int], Provider] = {}


def load_provider(name: str, options: dict[str, Any] | None = None) -> Provider:
    options = dict(options or {})
    path = options.pop("BACKEND", None) or BUILTIN_PROVIDERS.get(name)
    if not path:
        raise ImproperlyConfigured(
            f'Unknown provider {name!r}: set CF_INGEST["PROVIDERS"][{name!r}]'
            '["BACKEND"] to a dotted path, or use one of '
            f"{', '.join(sorted(BUILTIN_PROVIDERS))}."
        )
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"Cannot import provider {path!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ImproperlyConfigured(f"{path!r} is not a Provider subclass.")
    provider: Provider = cls(name, options)
    return provider


def get_provider(name: str) -> Provider:
    """The configured provider of that name, shared by the threads of a process.

    Instances are cached per settings object, so ``override_settings`` in
    tests gives fresh providers.
    """
    config = get_settings()
    key = (name, id(config))
    with _lock:
        provider = _cache.get(key)
        if provider is None:
            provider = load_provider(name, config.provider_options(name))
            _cache[key] = provider
    return provider


def reset_providers() -> None:
    with _lock:
        for provider in _cache.values():
            provider.close()
        _cache.clear()
