"""Injected faults: refused requests, latency, and responses lost after the work
was done.

A refused request is answered 429 (code 10250, with ``Retry-After``) or 500
(code 15000) before the emulator does anything, like an overloaded edge that
never reached the queue. Which requests are refused is decided by a seeded
random generator, so a run can be repeated. A lost response is the opposite
case: the request is carried out, and then the client gets an error or no
answer in time, so it cannot tell whether its push was stored.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

#: Operations faults apply to by default: the ones a producer and a pull
#: consumer call all the time.
DEFAULT_FAULT_OPERATIONS = frozenset(
    {
        "queues-push-message",
        "queues-push-messages",
        "queues-pull-messages",
        "queues-ack-messages",
    }
)


@dataclass(frozen=True)
class Refusal:
    status: Literal[429, 500]
    retry_after: int | None = None


@dataclass(frozen=True)
class LostResponse:
    """Carry the request out, then answer 500, or answer after ``delay`` s."""

    mode: Literal["error", "timeout"] = "error"
    delay: float = 0.0


@dataclass
class FaultPolicy:
    #: Fraction of requests to the fault operations that are refused.
    rate: float = 0.0
    #: Share of refusals answered 429 rather than 500.
    rate_limited_share: float = 0.5
    retry_after: int = 1
    #: Added to every request, in milliseconds.
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    operations: frozenset[str] = DEFAULT_FAULT_OPERATIONS
    seed: int | None = 0
    _random: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(
        init=False, repr=False, default_factory=threading.Lock
    )
    _lost: dict[str, deque[LostResponse]] = field(
        init=False, repr=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        self._random = random.Random(self.seed)

    def latency(self) -> float:
        """Seconds to wait before answering."""
        if not self.delay_ms and not self.jitter_ms:
            return 0.0
        with self._lock:
            jitter = self._random.uniform(0, self.jitter_ms) if self.jitter_ms else 0
        return (self.delay_ms + jitter) / 1000

    def refusal(self, operation: str) -> Refusal | None:
        if not self.rate or operation not in self.operations:
            return None
        with self._lock:
            if self._random.random() >= self.rate:
                return None
            limited = self._random.random() < self.rate_limited_share
        if limited:
            return Refusal(429, self.retry_after)
        return Refusal(500)

    def lose_responses(
        self, operation: str, count: int = 1, lost: LostResponse | None = None
    ) -> None:
        """Lose the responses of the next ``count`` calls of ``operation``."""
        with self._lock:
            queue = self._lost.setdefault(operation, deque())
            queue.extend([lost or LostResponse()] * count)

    def lost_response(self, operation: str) -> LostResponse | None:
        with self._lock:
            queue = self._lost.get(operation)
            return queue.popleft() if queue else None
