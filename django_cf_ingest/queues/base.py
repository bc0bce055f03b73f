"""The queue backend interface.

A backend moves ``{"uploadId": N}`` messages from the outbox relay to the
consumer. Messages are received under a lease: a message that is neither
acked nor retried before its lease runs out is delivered again, with its
``attempts`` counted up, so a consumer that dies loses nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.checks import CheckMessage


@dataclass
class ReceivedMessage:
    """A message held under a lease by this consumer."""

    id: str
    body: Any
    attempts: int
    lease_id: str
    # Backend-specific extras (timestamps, metadata); never logged whole.
    extra: dict[str, Any] = field(default_factory=dict)

    def upload_id(self) -> int | None:
        """The upload id of a well-formed body, else None."""
        body = self.body
        if not isinstance(body, dict):
            return None
        value = body.get("uploadId")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            return None
        return value


@dataclass(frozen=True)
class Retry:
    message: ReceivedMessage
    delay_seconds: float


class QueueBackend(ABC):
    """Base class of queue backends, loaded from ``CF_INGEST["QUEUE"]``."""

    #: The consumer can pull messages from this backend.
    can_receive: bool = True
    #: Largest batch ``enqueue_batch`` takes in one call.
    max_batch_size: int = 100
    #: ``enqueue_batch`` writes to the site's database, so the outbox relay
    #: can send rows and mark them sent in one transaction.
    shares_database: bool = False
    #: Least seconds between a process's outbox relays after commits; commits
    #: in between are relayed together when it has passed. 0: every commit.
    relay_interval: float = 0.0

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    @abstractmethod
    def enqueue_batch(
        self, bodies: Sequence[dict[str, Any]], *, delay_seconds: float = 0
    ) -> None:
        """Publish messages. Raise ``TransientQueueError`` to have them resent."""

    @abstractmethod
    def receive(
        self, max_messages: int, *, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        """Take up to ``max_messages`` under a lease of ``visibility_timeout`` s."""

    @abstractmethod
    def settle(self, acks: Sequence[ReceivedMessage], retries: Sequence[Retry]) -> None:
        """Ack some messages and retry others after a delay, in as few calls as
        the backend allows."""

    @abstractmethod
    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        """Take the message out of delivery for good, keeping the reason."""

    def ack(self, message: ReceivedMessage) -> None:
        self.settle([message], [])

    def retry(self, message: ReceivedMessage, delay_seconds: float) -> None:
        self.settle([], [Retry(message, delay_seconds)])

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        """Give back messages that were received but not started."""
        self.settle([], [Retry(m, 0) for m in messages])

    def backlog(self) -> int | None:
        """Messages waiting for delivery, where the backend can tell."""
        return None

    def check(self) -> list[CheckMessage]:
        """System check messages about this backend's configuration."""
        return []

    def close(self) -> None:
        """Release network clients and other resources."""
