"""The transactional outbox.

Creating an upload writes an ``OutboxMessage`` row in the same transaction, so
a rolled-back upload leaves no message and a committed one cannot lose its
message. After commit the relay hands the rows to the queue backend and marks
them sent; a row that fails to go out stays pending and is picked up by the
next relay pass, which ``cf_ingest_consume`` (and ``cf_ingest_relay``) run on
a timer. A message that reached the queue but was not marked sent (a crash,
or a lost response) is sent again: delivery is at least once, and the
pipeline is idempotent.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction
from django.utils import timezone

from .conf import get_settings
from .exceptions import QueueError, TransientQueueError

if TYPE_CHECKING:
    from .models import Upload

logger = logging.getLogger("django_cf_ingest.outbox")


def message_body(upload_id: int) -> dict[str, Any]:
    return {"uploadId": upload_id}


def enqueue_uploads(uploads: Iterable[Upload], *, using: str | None = None) -> None:
    """Write one outbox row per upload in the current transaction, and relay
    them once it commits."""
    from .models import OutboxMessage

    uploads = list(uploads)
    if not uploads:
        return
    db = using or router.db_for_write(OutboxMessage)
    rows = OutboxMessage.objects.using(db).bulk_create(
        [OutboxMessage(upload_id=u.pk, body=message_body(u.pk)) for u in uploads],
        batch_size=500,
    )
    ids = [row.pk for row in rows if row.pk is not None]
    if len(ids) != len(rows):
        ids = []  # The database did not return keys; relay everything pending.
    transaction.on_commit(lambda: _relay_after_commit(ids, db), using=db)


def _relay_after_commit(ids: list[int], using: str) -> None:
    try:
        relay(ids=ids or None, using=using)
    except Exception:
        # The rows stay pending; the next relay pass sends them.
        logger.exception("outbox relay after commit failed; rows stay pending")


def relay(
    *,
    ids: Sequence[int] | None = None,
    limit: int | None = None,
    using: str | None = None,
) -> int:
    """Send pending outbox rows to the queue backend. Returns how many were sent."""
    from .models import OutboxMessage

    db = using or router.db_for_write(OutboxMessage)
    batch_size = get_settings().OUTBOX_BATCH_SIZE
    sent = 0
    while limit is None or sent < limit:
        size = batch_size if limit is None else min(batch_size, limit - sent)
        count = _relay_batch(db, size, ids)
        if count <= 0:
            break
        sent += count
    return sent


def _relay_batch(db: str, size: int, ids: Sequence[int] | None) -> int:
    from .models import OutboxMessage, Upload, UploadStatus
    from .queues import get_backend

    backend = get_backend()
    size = min(size, backend.max_batch_size)
    now = timezone.now()
    with transaction.atomic(using=db):
        pending = OutboxMessage.objects.using(db).filter(
            sent_at__isnull=True, next_attempt_at__lte=now
        )
        if ids is not None:
            pending = pending.filter(pk__in=ids)
        if connections[db].features.has_select_for_update_skip_locked:
            pending = pending.select_for_update(skip_locked=True)
        rows = list(pending.order_by("id")[:size])
        if not rows:
            return 0
        row_ids = [row.pk for row in rows]
        try:
            backend.enqueue_batch([row.body for row in rows])
        except QueueError as exc:
            _postpone(db, rows, exc)
            logger.warning(
                "outbox relay failed count=%s error=%s", len(rows), type(exc).__name__
            )
            return -1
        OutboxMessage.objects.using(db).filter(pk__in=row_ids).update(sent_at=now)
        upload_ids = [row.upload_id for row in rows if row.upload_id]
        Upload.objects.using(db).filter(
            pk__in=upload_ids, status=UploadStatus.UPLOADED
        ).update(status=UploadStatus.QUEUED, updated_at=now)
    logger.info("outbox relayed count=%s", len(rows))
    return len(rows)


def _postpone(db: str, rows: list[Any], exc: QueueError) -> None:
    from django.db.models import F

    from .models import OutboxMessage

    config = get_settings()
    attempts = max(row.attempts for row in rows) + 1
    delay = min(config.RETRY_MAX_DELAY, config.RETRY_BASE_DELAY * 2 ** (attempts - 1))
    if isinstance(exc, TransientQueueError) and exc.retry_after:
        delay = max(delay, exc.retry_after)
    delay *= random.uniform(1.0, 1.25)
    OutboxMessage.objects.using(db).filter(pk__in=[r.pk for r in rows]).update(
        attempts=F("attempts") + 1,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
        last_error=f"{type(exc).__name__}: {exc}"[:2000],
    )


def pending_count(using: str | None = None) -> int:
    from .models import OutboxMessage

    db = using or router.db_for_write(OutboxMessage)
    return OutboxMessage.objects.using(db).filter(sent_at__isnull=True).count()
