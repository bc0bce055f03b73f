"""The transactional outbox.

Creating an upload writes an ``OutboxMessage`` row in the same transaction, so
a rolled-back upload leaves no message and a committed one cannot lose its
message. After commit the relay hands the rows to the queue backend and marks
them sent; a row that fails to go out stays pending, with a backoff, and is
picked up by a later relay pass, which ``cf_ingest_consume`` (and
``cf_ingest_relay --loop``) run on a timer. A message that reached the queue
but was not marked sent (a crash, or a lost response) is sent again: delivery
is at least once, and the pipeline is idempotent.

A backend that publishes over the network (``shares_database`` off) has its
rows claimed for the send instead of locked in a transaction, so no database
lock is held while the network call waits. Such a backend may also set a
``relay_interval``: the first commit in an interval relays at once, and the
commits that follow are relayed together when the interval ends, so a burst
of uploads costs one request per batch rather than one per upload.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction
from django.utils import timezone

from .conf import get_settings
from .exceptions import QueueError, TransientQueueError

if TYPE_CHECKING:
    from .models import Upload
    from .queues import QueueBackend

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


#: How long a relay holds the rows it is sending over the network; rows of a
#: relay that died mid-send are sent again after this.
SEND_CLAIM_SECONDS = 120.0
#: Longest backoff of a failed row (unless the queue asks for more with
#: Retry-After), so dispatch resumes within a minute of the queue coming back.
MAX_RETRY_DELAY = 60.0


def _relay_after_commit(ids: list[int], using: str) -> None:
    _after_commit.request(ids, using)


def _relay_safely(ids: list[int] | None, using: str) -> None:
    try:
        relay(ids=ids, using=using)
    except Exception:
        # The rows stay pending; the next relay pass sends them.
        logger.exception("outbox relay after commit failed; rows stay pending")


class _AfterCommitRelay:
    """Relays after commits, at most once per the backend's ``relay_interval``
    in this process; the commits within an interval are relayed together by
    a timer thread when it ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._timer: threading.Timer | None = None

    def request(self, ids: list[int], using: str) -> None:
        from .queues import get_backend

        try:
            interval = get_backend().relay_interval
        except Exception:
            logger.exception("outbox relay after commit failed; rows stay pending")
            return
        if interval > 0:
            with self._lock:
                now = time.monotonic()
                wait = self._last + interval - now
                if wait > 0 or self._timer is not None:
                    if self._timer is None:
                        self._timer = threading.Timer(wait, self._fire, args=(using,))
                        self._timer.daemon = True
                        self._timer.start()
                    return
                self._last = now
        _relay_safely(ids or None, using)

    def _fire(self, using: str) -> None:
        with self._lock:
            self._timer = None
            self._last = time.monotonic()
        try:
            _relay_safely(None, using)
        finally:
            connections.close_all()


_after_commit = _AfterCommitRelay()


def relay(
    *,
    ids: Sequence[int] | None = None,
    limit: int | None = None,
    using: str | None = None,
) -> int:
    """Send pending outbox rows to the queue backend. Returns how many were sent."""
    from .models import OutboxMessage
    from .queues import get_backend

    db = using or router.db_for_write(OutboxMessage)
    batch_size = max(
        1, min(get_settings().OUTBOX_BATCH_SIZE, get_backend().max_batch_size)
    )
    if ids is not None:
        # Rows of one transaction: one batch of ids per query, not all of them.
        return _relay_ids(db, sorted(set(ids)), batch_size, limit)
    sent = 0
    while limit is None or sent < limit:
        size = batch_size if limit is None else min(batch_size, limit - sent)
        count = _relay_batch(db, size, None)
        if count <= 0:
            break
        sent += count
        if count < size:
            # All that was due has gone; rows committed since wait for the next
            # pass rather than keep this one sending a message at a time.
            break
    return sent


def _relay_ids(db: str, ids: list[int], batch_size: int, limit: int | None) -> int:
    sent = 0
    for start in range(0, len(ids), batch_size):
        if limit is not None and sent >= limit:
            break
        count = _relay_batch(db, batch_size, ids[start : start + batch_size])
        if count < 0:
            break
        sent += count
    return sent


def _pending_rows(db: str, size: int, ids: Sequence[int] | None) -> list[Any]:
    from .models import OutboxMessage

    pending = OutboxMessage.objects.using(db).filter(
        sent_at__isnull=True, next_attempt_at__lte=timezone.now()
    )
    if ids is not None:
        pending = pending.filter(pk__in=ids)
    if connections[db].features.has_select_for_update_skip_locked:
        pending = pending.select_for_update(skip_locked=True)
    return list(pending.order_by("id")[:size])


def _mark_sent(db: str, rows: list[Any]) -> None:
    from .models import OutboxMessage, Upload, UploadStatus

    now = timezone.now()
    OutboxMessage.objects.using(db).filter(pk__in=[row.pk for row in rows]).update(
        sent_at=now
    )
    upload_ids = [row.upload_id for row in rows if row.upload_id]
    Upload.objects.using(db).filter(
        pk__in=upload_ids, status=UploadStatus.UPLOADED
    ).update(status=UploadStatus.QUEUED, updated_at=now)


def _relay_batch(db: str, size: int, ids: Sequence[int] | None) -> int:
    from .models import OutboxMessage
    from .queues import get_backend

    backend = get_backend()
    size = min(size, backend.max_batch_size)
    with transaction.atomic(using=db):
        rows = _pending_rows(db, size, ids)
        if not rows:
            return 0
        if backend.shares_database:
            # Queue rows and the sent mark commit together.
            if not _send(db, rows, backend):
                return -1
            _mark_sent(db, rows)
        else:
            # Hold the rows for the send, and let go of the transaction (on
            # SQLite, of the database's write lock) while the network call
            # waits.
            OutboxMessage.objects.using(db).filter(
                pk__in=[row.pk for row in rows]
            ).update(
                next_attempt_at=timezone.now() + timedelta(seconds=SEND_CLAIM_SECONDS)
            )
    if not backend.shares_database:
        if not _send(db, rows, backend):
            return -1
        with transaction.atomic(using=db):
            _mark_sent(db, rows)
    logger.info("outbox relayed count=%s", len(rows))
    return len(rows)


def _send(db: str, rows: list[Any], backend: QueueBackend) -> bool:
    try:
        backend.enqueue_batch([row.body for row in rows])
    except QueueError as exc:
        _postpone(db, rows, exc)
        logger.warning(
            "outbox relay failed count=%s error=%s", len(rows), type(exc).__name__
        )
        return False
    return True


def _postpone(db: str, rows: list[Any], exc: QueueError) -> None:
    from django.db.models import F

    from .models import OutboxMessage

    config = get_settings()
    attempts = max(row.attempts for row in rows) + 1
    delay = min(
        config.RETRY_MAX_DELAY,
        MAX_RETRY_DELAY,
        config.RETRY_BASE_DELAY * 2 ** (attempts - 1),
    )
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
