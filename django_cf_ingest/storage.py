"""The Django storage that holds uploaded files."""

from __future__ import annotations

from functools import cache

from django.core.files.storage import Storage, storages

from .conf import get_settings


@cache
def get_upload_storage() -> Storage:
    return storages[get_settings().STORAGE]


def upload_storage() -> Storage:
    """Callable for ``FileField(storage=...)``, so migrations stay storage-free."""
    return get_upload_storage()
