"""A queue backend for sites that already run Celery.

The outbox relay sends one ``process_upload`` task per message; Celery workers
run it. Delivery guarantees come from Celery's settings, which this backend
asks for on the task itself: ``acks_late`` with ``reject_on_worker_lost``, so a
task whose worker died is delivered again, and retries with backoff up to
``MAX_ATTEMPTS``, after which the upload is marked ``dead``.

Messages are pushed to Celery workers, so ``cf_ingest_consume`` does not
receive from this backend (``can_receive`` is False).

    CF_INGEST = {"QUEUE": {
        "BACKEND": "django_cf_ingest.queues.celery.CeleryBackend",
        "OPTIONS": {"QUEUE": "ingest"},          # Celery queue name, optional
    }}
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..exceptions import MissingExtra, TransientQueueError
from .base import QueueBackend, ReceivedMessage, Retry

try:
    from celery import shared_task
    from kombu.exceptions import OperationalError
except ImportError:  # pragma: no cover - exercised only without the extra
    shared_task = None

logger = logging.getLogger("django_cf_ingest.queues")

TASK_NAME = "django_cf_ingest.process_upload"


def _run(task: Any, upload_id: int) -> str:
    from ..conf import get_settings
    from ..consumer.backoff import retry_delay
    from ..consumer.handlers import Decision
    from ..models import Stage
    from ..pipeline import mark_dead, process_upload

    decision = Decision.from_outcome(process_upload(upload_id, stage=Stage.IN_PROCESS))
    attempts = task.request.retries + 1
    if decision.action == "retry":
        if attempts >= get_settings().MAX_ATTEMPTS:
            mark_dead(upload_id, decision.reason or decision.outcome, attempts)
            return "dead"
        raise task.retry(
            countdown=retry_delay(attempts, decision.delay), max_retries=None
        )
    return decision.outcome


if shared_task is not None:
    process_upload_task = shared_task(
        name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True
    )(_run)


class CeleryBackend(QueueBackend):
    can_receive = False

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        if shared_task is None:
            raise MissingExtra("The Celery queue backend", "celery")
        super().__init__(options)
        self.queue = self.options.get("QUEUE")

    def enqueue_batch(
        self, bodies: Sequence[dict[str, Any]], *, delay_seconds: float = 0
    ) -> None:
        try:
            for body in bodies:
                process_upload_task.apply_async(
                    args=[body["uploadId"]],
                    countdown=delay_seconds or None,
                    queue=self.queue,
                )
        except OperationalError as exc:
            raise TransientQueueError(f"Celery broker unavailable: {exc}") from exc

    def receive(
        self, max_messages: int, *, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        return []

    def settle(self, acks: Sequence[ReceivedMessage], retries: Sequence[Retry]) -> None:
        """Celery acks and retries its own tasks."""

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        """Celery tasks give up by marking the upload dead themselves."""
