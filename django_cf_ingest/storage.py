"""The Django storage that holds uploaded files."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, cast

from django.core.files.storage import Storage, storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty

from .conf import SETTING_NAME, get_settings

if TYPE_CHECKING:
    from .models import Upload


@cache
def get_upload_storage() -> Storage:
    return storages[get_settings().STORAGE]


class UploadStorage(LazyObject):
    """The upload storage, looked up again after ``STORAGES`` or ``CF_INGEST``
    change, so the ``FileField`` bound to it follows the settings (in tests
    too) instead of keeping the storage it found at import time."""

    _wrapped: Any

    def _setup(self) -> None:
        self._wrapped = get_upload_storage()

    def forget(self) -> None:
        self._wrapped = empty


_upload_storage = UploadStorage()


@receiver(setting_changed)
def _forget_storage(*, setting: str, **kwargs: Any) -> None:
    if setting in (SETTING_NAME, "STORAGES"):
        _upload_storage.forget()


def upload_storage() -> Storage:
    """Callable for ``FileField(storage=...)``, so migrations stay storage-free."""
    return cast(Storage, _upload_storage)


#: How long a signed preview URL stays valid, in seconds.
PREVIEW_URL_EXPIRY = 300


def preview_url(upload: Upload) -> str | None:
    """A short-lived signed URL of the upload's file, for showing it inline.

    Only storages that sign their URLs (S3 and R2 through django-storages with
    ``querystring_auth``) give one; for any other storage this is None and the
    file is served through a view that checks the viewer's permission, since
    the storage's own URL may be public.
    """
    storage: Any = upload.file.storage
    if not upload.file.name or not getattr(storage, "querystring_auth", False):
        return None
    parameters = {"ResponseContentDisposition": "inline"}
    if upload.content_type:
        parameters["ResponseContentType"] = upload.content_type
    url: str = storage.url(
        upload.file.name, parameters=parameters, expire=PREVIEW_URL_EXPIRY
    )
    return url
