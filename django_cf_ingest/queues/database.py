"""The embedded queue: messages are rows of ``QueueMessage`` in the site's database.

Receiving claims rows under a lease with one conditional UPDATE. On PostgreSQL
the candidate rows are first picked with ``SELECT ... FOR UPDATE SKIP LOCKED``,
so concurrent consumers never wait on each other; on SQLite, where writers are
serialised, the conditional UPDATE alone keeps two consumers off one message.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db import connections, router, transaction
from django.db.models import F, Q
from django.utils import timezone

from ..models import QueueMessage
from .base import QueueBackend, ReceivedMessage, Retry


class DatabaseBackend(QueueBackend):
    max_batch_size = 500
    shares_database = True

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.queue = str(self.options.get("QUEUE", "default"))
        self.db = router.db_for_write(QueueMessage)

    def _messages(self) -> Any:
        return QueueMessage.objects.using(self.db).filter(queue=self.queue)

    def enqueue_batch(
        self, bodies: Sequence[dict[str, Any]], *, delay_seconds: float = 0
    ) -> None:
        available_at = timezone.now() + timedelta(seconds=delay_seconds)
        QueueMessage.objects.using(self.db).bulk_create(
            [
                QueueMessage(queue=self.queue, body=body, available_at=available_at)
                for body in bodies
            ],
            batch_size=self.max_batch_size,
        )

    def _ready(self, now: Any) -> Any:
        free = Q(leased_until__isnull=True) | Q(leased_until__lt=now)
        return self._messages().filter(
            free, dead_at__isnull=True, available_at__lte=now
        )

    def receive(
        self, max_messages: int, *, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        if max_messages <= 0:
            return []
        lease_id = uuid.uuid4().hex
        now = timezone.now()
        with transaction.atomic(using=self.db):
            candidates = self._ready(now).order_by("available_at", "id")
            if connections[self.db].features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            ids = list(candidates.values_list("id", flat=True)[:max_messages])
            if not ids:
                return []
            # Re-check the lease in the UPDATE itself: a row another consumer
            # claimed since the SELECT is left alone.
            self._ready(now).filter(id__in=ids).update(
                lease_id=lease_id,
                leased_until=now + timedelta(seconds=visibility_timeout),
                attempts=F("attempts") + 1,
            )
            rows = list(
                self._messages().filter(lease_id=lease_id, id__in=ids).order_by("id")
            )
        return [
            ReceivedMessage(
                id=str(row.pk),
                body=row.body,
                attempts=row.attempts,
                lease_id=lease_id,
                extra={"created_at": row.created_at},
            )
            for row in rows
        ]

    def _held(self, message: ReceivedMessage) -> Any:
        return self._messages().filter(pk=int(message.id), lease_id=message.lease_id)

    def settle(self, acks: Sequence[ReceivedMessage], retries: Sequence[Retry]) -> None:
        with transaction.atomic(using=self.db):
            if acks:
                held = Q()
                for message in acks:
                    held |= Q(pk=int(message.id), lease_id=message.lease_id)
                self._messages().filter(held).delete()
            now = timezone.now()
            for retry in retries:
                self._held(retry.message).update(
                    lease_id="",
                    leased_until=None,
                    available_at=now + timedelta(seconds=retry.delay_seconds),
                )

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        # Not started, so this delivery does not count as an attempt.
        with transaction.atomic(using=self.db):
            for message in messages:
                self._held(message).update(
                    lease_id="", leased_until=None, attempts=F("attempts") - 1
                )

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        self._messages().filter(pk=int(message.id)).update(
            dead_at=timezone.now(),
            lease_id="",
            leased_until=None,
            last_error=reason[:2000],
        )

    def backlog(self) -> int:
        return self._messages().filter(dead_at__isnull=True).count()

    def dead_count(self) -> int:
        return self._messages().filter(dead_at__isnull=False).count()
