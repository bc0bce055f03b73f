"""Enqueue an upload when it is created, through the transactional outbox."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import Upload
from .outbox import enqueue_uploads


@receiver(post_save, sender=Upload, dispatch_uid="cf_ingest_enqueue_upload")
def enqueue_new_upload(
    sender: type[Upload], instance: Upload, created: bool, raw: bool = False, **kw: Any
) -> None:
    if created and not raw:
        enqueue_uploads([instance], using=kw.get("using"))
