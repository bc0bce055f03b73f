"""The emulated account's state: queues, their messages, and leases.

Semantics follow Cloudflare Queues' documentation:

- Delivery is at least once. A pulled message is leased for the visibility
  timeout; a lease that runs out makes the message deliverable again, and
  each delivery counts one more attempt (the first delivery is attempt 1).
- A message whose attempts reached the consumer's ``max_retries`` is not
  delivered again: it moves to the dead-letter queue, or is deleted when the
  consumer has none.
- An ack is accepted even with an expired lease, and both holders of a
  redelivered message may ack it. A retry with a lease that was superseded by
  a newer delivery is ignored with a warning, so it cannot disturb the new
  holder.
- Delays come from the message, else the batch, else the queue's
  ``delivery_delay``; retries wait ``delay_seconds``, else the consumer's
  ``retry_delay``.

All state sits behind one lock; a clock offset lets tests move time forward
instead of sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

ConsumerType = Literal["http_pull", "worker"]

#: Message size counts the body plus about this much internal metadata.
MESSAGE_OVERHEAD = 100
MAX_MESSAGE_BYTES = 128_000
MAX_BATCH_BYTES = 256_000
MAX_BATCH_MESSAGES = 100
MAX_DELAY_SECONDS = 86_400
MAX_PULL_BATCH = 100
MAX_VISIBILITY_TIMEOUT_MS = 43_200_000
DEFAULT_PULL_BATCH = 5
DEFAULT_VISIBILITY_TIMEOUT_MS = 30_000
DEFAULT_MAX_RETRIES = 3
DEFAULT_RETENTION_SECONDS = 345_600

# Error codes from the Queues documentation.
QUEUE_NOT_FOUND = 10104
UNAUTHORIZED = 10106
QUEUE_ID_MALFORMED = 10107
BATCH_DELAY_INVALID = 10202
MESSAGE_METADATA_INVALID = 10203
MESSAGE_TOO_LARGE = 10204
BATCH_TOO_LARGE = 10205
BATCH_TOO_MANY_MESSAGES = 10206
BODY_SCHEMA_MISMATCH = 10207
BODY_NOT_JSON = 10208
QUEUE_OVERLOADED = 10250
INTERNAL_ERROR = 15000
# Limitation: the documentation gives no code for pulling from a queue that
# has no HTTP pull consumer; the emulator answers 400 with this one until a
# documented code is known.
PULL_NOT_ENABLED = 10209


class ApiError(Exception):
    """An error the API answers with the failure envelope."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def queue_id_for(account_id: str, name: str) -> str:
    """A stable 32-hex id, so a restarted emulator keeps its queue ids."""
    return hashlib.sha256(f"{account_id}/{name}".encode()).hexdigest()[:32]


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Consumer:
    type: ConsumerType = "http_pull"
    script_name: str = ""
    max_retries: int = DEFAULT_MAX_RETRIES
    dead_letter_queue: str = ""
    retry_delay: float = 0
    visibility_timeout_ms: int = DEFAULT_VISIBILITY_TIMEOUT_MS
    batch_size: int = DEFAULT_PULL_BATCH
    consumer_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_on: float = field(default_factory=time.time)


@dataclass
class StoredMessage:
    id: str
    body: Any
    content_type: str
    size: int
    timestamp_ms: int
    attempts: int = 0
    #: Bumped on every state change; schedule entries of older versions are stale.
    version: int = 0
    lease_id: str = ""


@dataclass(frozen=True)
class Delivery:
    """One pulled message, as the API returns it."""

    id: str
    body: str
    attempts: int
    lease_id: str
    timestamp_ms: int
    content_type: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "body": self.body,
            "attempts": self.attempts,
            "lease_id": self.lease_id,
            "timestamp_ms": self.timestamp_ms,
            "metadata": {
                "CF-Content-Type": self.content_type,
                "CF-sourceMessageSource": "api",
            },
        }


@dataclass
class Queue:
    id: str
    name: str
    consumer: Consumer | None = None
    delivery_delay: float = 0
    created_on: float = field(default_factory=time.time)
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    #: (due time, sequence, message id, version): when a message is next
    #: deliverable, either after its delay or when its lease runs out.
    schedule: list[tuple[float, int, str, int]] = field(default_factory=list)
    backlog_bytes: int = 0
    #: Messages that exhausted their retries (moved or deleted), for tests.
    exhausted: int = 0

    def as_json(self) -> dict[str, Any]:
        consumers = [consumer_json(self)] if self.consumer else []
        return {
            "queue_id": self.id,
            "queue_name": self.name,
            "created_on": _iso(self.created_on),
            "modified_on": _iso(self.created_on),
            "producers": [],
            "producers_total_count": 0,
            "consumers": consumers,
            "consumers_total_count": len(consumers),
            "settings": {
                "delivery_delay": self.delivery_delay,
                "delivery_paused": False,
                "message_retention_period": DEFAULT_RETENTION_SECONDS,
            },
        }

    def metrics(self) -> dict[str, Any]:
        oldest = next(iter(self.messages.values()), None)
        return {
            "backlog_count": len(self.messages),
            "backlog_bytes": self.backlog_bytes,
            "oldest_message_timestamp_ms": oldest.timestamp_ms if oldest else 0,
        }


def consumer_json(queue: Queue) -> dict[str, Any]:
    consumer = queue.consumer
    assert consumer is not None
    data: dict[str, Any] = {
        "consumer_id": consumer.consumer_id,
        "created_on": _iso(consumer.created_on),
        "dead_letter_queue": consumer.dead_letter_queue,
        "queue_name": queue.name,
        "type": consumer.type,
    }
    if consumer.type == "worker":
        data["script_name"] = consumer.script_name
        data["settings"] = {
            "batch_size": consumer.batch_size,
            "max_retries": consumer.max_retries,
            "max_wait_time_ms": 5000,
            "retry_delay": consumer.retry_delay,
        }
    else:
        data["settings"] = {
            "batch_size": consumer.batch_size,
            "max_retries": consumer.max_retries,
            "retry_delay": consumer.retry_delay,
            "visibility_timeout_ms": consumer.visibility_timeout_ms,
        }
    return data


def encoded_body(body: Any, content_type: str) -> bytes:
    if content_type == "text":
        return str(body).encode()
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _delay(value: Any, code: int, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, code, f"{what} must be a number of seconds")
    if not 0 <= value <= MAX_DELAY_SECONDS:
        raise ApiError(
            400, code, f"{what} must be between 0 and {MAX_DELAY_SECONDS} seconds"
        )
    return float(value)


class Broker:
    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.lock = threading.RLock()
        self.queues: dict[str, Queue] = {}
        self.leases: dict[str, tuple[str, str]] = {}
        self._sequence = itertools.count()
        self._offset = 0.0

    # Time ------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward (leases, delays)."""
        with self.lock:
            self._offset += seconds

    # Queues ----------------------------------------------------------------

    def add_queue(
        self,
        name: str,
        *,
        consumer: ConsumerType | None = "http_pull",
        max_retries: int = DEFAULT_MAX_RETRIES,
        dead_letter_queue: str = "",
        retry_delay: float = 0,
        visibility_timeout_ms: int = DEFAULT_VISIBILITY_TIMEOUT_MS,
        script_name: str = "ai-ingest-consumer",
        delivery_delay: float = 0,
    ) -> Queue:
        with self.lock:
            queue = self.queues.get(queue_id_for(self.account_id, name))
            if queue is None:
                queue = Queue(id=queue_id_for(self.account_id, name), name=name)
                self.queues[queue.id] = queue
            queue.delivery_delay = delivery_delay
            queue.consumer = None
            if consumer is not None:
                queue.consumer = Consumer(
                    type=consumer,
                    script_name=script_name if consumer == "worker" else "",
                    max_retries=max_retries,
                    dead_letter_queue=dead_letter_queue,
                    retry_delay=retry_delay,
                    visibility_timeout_ms=visibility_timeout_ms,
                    batch_size=10 if consumer == "worker" else DEFAULT_PULL_BATCH,
                )
            if dead_letter_queue and self.by_name(dead_letter_queue) is None:
                self.add_queue(dead_letter_queue, consumer=None)
            return queue

    def by_name(self, name: str) -> Queue | None:
        with self.lock:
            return next((q for q in self.queues.values() if q.name == name), None)

    def get(self, queue_id: str) -> Queue:
        with self.lock:
            queue = self.queues.get(queue_id)
        if queue is None:
            raise ApiError(404, QUEUE_NOT_FOUND, "Queue not found")
        return queue

    def all_queues(self) -> list[Queue]:
        with self.lock:
            return sorted(self.queues.values(), key=lambda q: q.created_on)

    # Push ------------------------------------------------------------------

    def _prepare(self, item: dict[str, Any], default_delay: float) -> tuple[Any, ...]:
        content_type = item.get("content_type") or "json"
        if content_type not in ("json", "text"):
            raise ApiError(400, MESSAGE_METADATA_INVALID, "Invalid content type")
        body = item.get("body")
        if content_type == "text" and not isinstance(body, str):
            raise ApiError(
                400, MESSAGE_METADATA_INVALID, "A text body must be a string"
            )
        size = len(encoded_body(body, content_type)) + MESSAGE_OVERHEAD
        if size > MAX_MESSAGE_BYTES:
            raise ApiError(
                400, MESSAGE_TOO_LARGE, "Message is larger than the 128 KB limit"
            )
        delay = _delay(item.get("delay_seconds"), MESSAGE_METADATA_INVALID, "delay")
        return body, content_type, size, default_delay if delay is None else delay

    def push(
        self,
        queue: Queue,
        items: list[dict[str, Any]],
        *,
        batch_delay: Any = None,
        batch: bool = True,
    ) -> dict[str, Any]:
        if batch and len(items) > MAX_BATCH_MESSAGES:
            raise ApiError(
                400, BATCH_TOO_MANY_MESSAGES, "Batch has more than 100 messages"
            )
        default = _delay(batch_delay, BATCH_DELAY_INVALID, "batch delay")
        prepared = [
            self._prepare(item, queue.delivery_delay if default is None else default)
            for item in items
        ]
        if batch and sum(p[2] for p in prepared) > MAX_BATCH_BYTES:
            raise ApiError(
                400, BATCH_TOO_LARGE, "Batch is larger than the 256 KB limit"
            )
        with self.lock:
            now = self.now()
            for body, content_type, size, delay in prepared:
                message = StoredMessage(
                    id=uuid.uuid4().hex,
                    body=body,
                    content_type=content_type,
                    size=size,
                    timestamp_ms=int(now * 1000),
                )
                self._store(queue, message, now + delay)
            return queue.metrics()

    def _store(self, queue: Queue, message: StoredMessage, due: float) -> None:
        queue.messages[message.id] = message
        queue.backlog_bytes += message.size
        self._schedule(queue, message, due)

    def _schedule(self, queue: Queue, message: StoredMessage, due: float) -> None:
        message.version += 1
        entry = (due, next(self._sequence), message.id, message.version)
        heapq.heappush(queue.schedule, entry)

    def _remove(self, queue: Queue, message: StoredMessage) -> None:
        if queue.messages.pop(message.id, None) is not None:
            queue.backlog_bytes -= message.size
            message.version += 1

    # Pull ------------------------------------------------------------------

    def pull(
        self, queue: Queue, batch_size: Any, visibility_timeout_ms: Any
    ) -> tuple[list[Delivery], dict[str, Any]]:
        consumer = queue.consumer
        if consumer is None or consumer.type != "http_pull":
            raise ApiError(
                400,
                PULL_NOT_ENABLED,
                "HTTP pull is not enabled for this queue: its consumer is "
                + ("a Worker" if consumer else "not configured"),
            )
        size = consumer.batch_size if batch_size is None else batch_size
        if not 1 <= size <= MAX_PULL_BATCH:
            raise ApiError(
                400, BODY_SCHEMA_MISMATCH, "batch_size must be between 1 and 100"
            )
        timeout_ms = (
            consumer.visibility_timeout_ms
            if visibility_timeout_ms is None
            else visibility_timeout_ms
        )
        if not 1 <= timeout_ms <= MAX_VISIBILITY_TIMEOUT_MS:
            raise ApiError(
                400,
                BODY_SCHEMA_MISMATCH,
                "visibility_timeout_ms must be between 1 and 43200000",
            )
        deliveries: list[Delivery] = []
        with self.lock:
            now = self.now()
            while queue.schedule and len(deliveries) < size:
                due, _, message_id, version = queue.schedule[0]
                if due > now:
                    break
                heapq.heappop(queue.schedule)
                message = queue.messages.get(message_id)
                if message is None or message.version != version:
                    continue
                if message.lease_id and message.attempts >= consumer.max_retries:
                    # The lease ran out on the last allowed attempt.
                    self._exhaust(queue, message)
                    continue
                deliveries.append(self._deliver(queue, message, now, timeout_ms))
            return deliveries, queue.metrics()

    def _deliver(
        self, queue: Queue, message: StoredMessage, now: float, timeout_ms: float
    ) -> Delivery:
        message.attempts += 1
        message.lease_id = secrets.token_urlsafe(48)
        self.leases[message.lease_id] = (queue.id, message.id)
        self._schedule(queue, message, now + timeout_ms / 1000)
        if message.content_type == "text":
            body = str(message.body)
        else:
            raw = encoded_body(message.body, message.content_type)
            body = base64.b64encode(raw).decode("ascii")
        return Delivery(
            id=message.id,
            body=body,
            attempts=message.attempts,
            lease_id=message.lease_id,
            timestamp_ms=message.timestamp_ms,
            content_type=message.content_type,
        )

    def _exhaust(self, queue: Queue, message: StoredMessage) -> None:
        self._remove(queue, message)
        queue.exhausted += 1
        consumer = queue.consumer
        target = (
            self.by_name(consumer.dead_letter_queue)
            if consumer and consumer.dead_letter_queue
            else None
        )
        if target is not None:
            moved = StoredMessage(
                id=uuid.uuid4().hex,
                body=message.body,
                content_type=message.content_type,
                size=message.size,
                timestamp_ms=message.timestamp_ms,
            )
            self._store(target, moved, self.now())

    # Ack and retry ---------------------------------------------------------

    def settle(
        self,
        queue: Queue,
        acks: list[dict[str, Any]],
        retries: list[dict[str, Any]],
    ) -> tuple[int, int, dict[str, str]]:
        for retry in retries:
            _delay(retry.get("delay_seconds"), MESSAGE_METADATA_INVALID, "delay")
        acked = retried = 0
        warnings: dict[str, str] = {}
        with self.lock:
            now = self.now()
            for ack in acks:
                lease_id = str(ack.get("lease_id", ""))
                message = self._leased(queue, lease_id, warnings)
                if message is not None:
                    self._remove(queue, message)
                    acked += 1
            for retry in retries:
                lease_id = str(retry.get("lease_id", ""))
                message = self._leased(queue, lease_id, warnings)
                if message is None:
                    continue
                if message.lease_id != lease_id:
                    warnings[lease_id] = (
                        "Lease expired and the message was delivered again"
                    )
                    continue
                retried += 1
                consumer = queue.consumer
                if consumer is not None and message.attempts >= consumer.max_retries:
                    self._exhaust(queue, message)
                    continue
                delay = retry.get("delay_seconds")
                if delay is None:
                    delay = consumer.retry_delay if consumer else 0
                message.lease_id = ""
                self._schedule(queue, message, now + float(delay))
        return acked, retried, warnings

    def _leased(
        self, queue: Queue, lease_id: str, warnings: dict[str, str]
    ) -> StoredMessage | None:
        holder = self.leases.get(lease_id)
        if holder is None or holder[0] != queue.id:
            warnings[lease_id] = "Unknown lease"
            return None
        # Gone already: acked by another holder, or out of retries.
        return queue.messages.get(holder[1])
