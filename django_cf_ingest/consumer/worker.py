"""The consumer loop behind ``manage.py cf_ingest_consume``."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import FrameType

from django.db import close_old_connections

from .. import outbox
from ..conf import get_settings
from ..exceptions import TransientQueueError
from ..pipeline import mark_dead
from ..queues import QueueBackend, ReceivedMessage, Retry
from .backoff import retry_delay
from .handlers import Decision, Handler

logger = logging.getLogger("django_cf_ingest.consumer")


@dataclass
class Stats:
    received: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    acked: int = 0
    retried: int = 0
    dead: int = 0
    started: float = field(default_factory=time.monotonic)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    @property
    def finished(self) -> int:
        return self.acked + self.retried + self.dead

    def summary(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        outcomes = " ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items()))
        return (
            f"received={self.received} acked={self.acked} retried={self.retried} "
            f"dead={self.dead} rate={self.finished / elapsed:.2f}/s {outcomes}"
        ).strip()


@dataclass
class _Job:
    message: ReceivedMessage
    started: float


class Worker:
    def __init__(
        self,
        backend: QueueBackend,
        handler: Handler,
        *,
        concurrency: int = 4,
        batch_size: int = 10,
        visibility_timeout: float | None = None,
        drain: bool = False,
        max_messages: int | None = None,
        poll_interval: float = 1.0,
        relay: bool = True,
        progress_every: float = 10.0,
    ) -> None:
        self.backend = backend
        self.handler = handler
        self.concurrency = max(1, concurrency)
        self.batch_size = max(1, batch_size)
        self.visibility_timeout = visibility_timeout or float(
            get_settings().PROCESSING_TIMEOUT
        )
        self.drain = drain
        self.max_messages = max_messages
        self.poll_interval = poll_interval
        self.relay = relay
        self.progress_every = progress_every
        self.stats = Stats()
        self._stopping = threading.Event()
        self._receive_failed = False
        self._signals = 0

    # Signals ---------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            logger.warning("second signal, exiting now")
            os._exit(1)
        logger.info("signal=%s, finishing in-flight work; again to exit now", signum)
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()

    # Loop ------------------------------------------------------------------

    def run(self) -> Stats:
        logger.info(
            "consumer started backend=%s handler=%s concurrency=%s",
            type(self.backend).__name__,
            type(self.handler).__name__,
            self.concurrency,
        )
        inflight: dict[Future[Decision], _Job] = {}
        last_progress = time.monotonic()
        last_relay = 0.0
        idle_sleep = self.poll_interval
        with ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix="cf-ingest"
        ) as pool:
            try:
                while True:
                    close_old_connections()
                    if self._stopping.is_set():
                        break
                    # Uploads relay their own rows on commit; this pass is the
                    # backstop, and running it every turn costs a transaction
                    # per finished message.
                    if self.relay and time.monotonic() - last_relay >= max(
                        self.poll_interval, 1.0
                    ):
                        self._relay()
                        last_relay = time.monotonic()

                    asked = self._room(len(inflight))
                    received = self._receive(asked)
                    for message in received:
                        future = pool.submit(self._handle, message)
                        inflight[future] = _Job(message, time.monotonic())

                    if inflight:
                        # A full batch means more may be waiting: take them now
                        # instead of waiting for a running message to finish.
                        more = 0 < asked == len(received)
                        full = len(inflight) >= self.concurrency
                        done, _ = wait(
                            list(inflight),
                            timeout=0 if more and not full else 0.5,
                            return_when=FIRST_COMPLETED,
                        )
                        self._settle({f: inflight.pop(f) for f in done})
                        idle_sleep = self.poll_interval
                    elif not received:
                        if self._limit_reached() or (self.drain and self._drained()):
                            break
                        # A failed receive has waited already, and says nothing
                        # about the queue being empty: no idle backoff for it.
                        if not self._receive_failed:
                            self._stopping.wait(idle_sleep)
                            idle_sleep = min(
                                idle_sleep * 2, max(self.poll_interval, 5.0)
                            )

                    if self._limit_reached() and not inflight:
                        break
                    if time.monotonic() - last_progress >= self.progress_every:
                        logger.info("progress %s", self.stats.summary())
                        last_progress = time.monotonic()
            finally:
                self._shutdown(inflight)
        self.handler.close()
        logger.info("consumer stopped %s", self.stats.summary())
        return self.stats

    def _limit_reached(self) -> bool:
        return (
            self.max_messages is not None and self.stats.received >= self.max_messages
        )

    def _room(self, busy: int) -> int:
        """How many messages to ask for: free threads, within the batch size."""
        room = self.concurrency - busy
        if self.max_messages is not None:
            room = min(room, self.max_messages - self.stats.received)
        return max(0, min(room, self.batch_size))

    def _receive(self, count: int) -> list[ReceivedMessage]:
        self._receive_failed = False
        if count <= 0:
            return []
        self._receive_failed = True
        try:
            messages = self.backend.receive(
                count, visibility_timeout=self.visibility_timeout
            )
        except TransientQueueError as exc:
            # Rate limited or unreachable for now: expected, so no traceback.
            logger.warning("receive failed error=%s; trying again", exc)
            self._stopping.wait(max(self.poll_interval, exc.retry_after or 0))
            return []
        except Exception:
            logger.exception("receive failed; trying again")
            self._stopping.wait(self.poll_interval)
            return []
        self._receive_failed = False
        self.stats.received += len(messages)
        return messages

    def _relay(self) -> None:
        try:
            outbox.relay(limit=1000)
        except Exception:
            logger.exception("outbox relay failed; rows stay pending")

    def _drained(self) -> bool:
        try:
            backlog = self.backend.backlog()
            return not outbox.pending_count() and not backlog
        except Exception:
            logger.exception("could not read the backlog")
            return False

    def _handle(self, message: ReceivedMessage) -> Decision:
        upload_id = message.upload_id()
        if upload_id is None:
            return Decision("ack", "malformed", reason="message body is not {uploadId}")
        try:
            return self.handler.handle(upload_id)
        except Exception as exc:
            logger.exception("handler failed upload=%s", upload_id)
            return Decision("retry", "error", reason=f"{type(exc).__name__}: {exc}")
        finally:
            close_old_connections()

    def _settle(self, done: dict[Future[Decision], _Job]) -> None:
        if not done:
            return
        config = get_settings()
        acks: list[ReceivedMessage] = []
        retries: list[Retry] = []
        for future, job in done.items():
            message = job.message
            decision = future.result()
            upload_id = message.upload_id()
            duration_ms = int((time.monotonic() - job.started) * 1000)
            self.stats.count(decision.outcome)

            if decision.outcome == "malformed":
                self._dead_letter(message, decision.reason)
            elif decision.action == "retry" and message.attempts >= config.MAX_ATTEMPTS:
                reason = decision.reason or decision.outcome
                self._dead_letter(
                    message, f"gave up after {message.attempts} attempts: {reason}"
                )
                if upload_id is not None:
                    mark_dead(upload_id, reason, message.attempts)
            elif decision.action == "retry":
                retries.append(
                    Retry(message, retry_delay(message.attempts, decision.delay))
                )
                self.stats.retried += 1
            else:
                acks.append(message)
                self.stats.acked += 1

            log = logger.warning if decision.action == "retry" else logger.info
            log(
                "message upload=%s outcome=%s attempts=%s duration_ms=%s",
                upload_id,
                decision.outcome,
                message.attempts,
                duration_ms,
            )
        try:
            self.backend.settle(acks, retries)
        except TransientQueueError as exc:
            # Unsettled messages come back when their lease runs out.
            logger.warning(
                "settle failed acks=%s retries=%s error=%s",
                len(acks),
                len(retries),
                exc,
            )
        except Exception:
            # Unsettled messages come back when their lease runs out.
            logger.exception(
                "settle failed acks=%s retries=%s", len(acks), len(retries)
            )

    def _dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        self.stats.dead += 1
        try:
            self.backend.dead_letter(message, reason)
        except Exception:
            logger.exception("dead-letter failed message=%s", message.id)

    def _shutdown(self, inflight: dict[Future[Decision], _Job]) -> None:
        not_started = [job.message for f, job in inflight.items() if f.cancel()]
        if not_started:
            try:
                self.backend.release(not_started)
            except Exception:
                logger.exception("release failed; messages return after their lease")
        running = {f: j for f, j in inflight.items() if not f.cancelled()}
        if running:
            logger.info("waiting for in-flight messages count=%s", len(running))
            wait(list(running))
            self._settle(running)
