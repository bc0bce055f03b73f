"""Cloudflare Queues over its REST API: the producer behind the outbox relay,
and an HTTP pull consumer for ``cf_ingest_consume``.

Configuration (``CF_INGEST["QUEUE"]["OPTIONS"]``):

``ACCOUNT_ID``, ``API_TOKEN``
    The account, and a token with Queues Read and Queues Write.
``QUEUE``
    The queue's 32-hex id, or its name, which is resolved once per process
    with List Queues.
``API_BASE_URL``
    Default ``https://api.cloudflare.com/client/v4``; point it at the
    emulator (``manage.py cf_ingest_emulator``) for offline work.
``CONSUMER``
    ``"pull"`` (default): this site consumes with ``cf_ingest_consume`` over
    HTTP pull. ``"worker"``: a Cloudflare Worker is the queue's consumer, and
    this site only publishes.
``BATCH_SIZE``
    Most messages per pull, 1-100 (default 100; the consumer asks for no
    more than it has free threads).
``VISIBILITY_TIMEOUT_MS``
    Lease of pulled messages. Default: the consumer's
    ``--visibility-timeout``, which defaults to ``PROCESSING_TIMEOUT``.
``TIMEOUT``
    Seconds per HTTP request (default 10).
``DEAD_LETTER_QUEUE``
    Optional queue (id or name) that gets the body and the reason of each
    message the consumer gives up on, before the message is acked.
``RELAY_INTERVAL``
    Seconds between outbox relays of a process after commits (default 1).
``ACK_DELAY_MS``
    How long acks and retries may wait to share one ack call with those
    that follow (default 200; 0 sends each settlement at once).

Where messages are published from
    Uploads write an outbox row in their own transaction (see ``outbox``).
    The rows are pushed (1) right after the commit, at most once per
    ``RELAY_INTERVAL`` per process, so a burst of uploads becomes batches of
    up to 100 messages per request instead of one request each; (2) on every
    turn of ``cf_ingest_consume``; and (3) by ``cf_ingest_relay --loop``,
    which a site whose queue is consumed by the Worker runs next to its web
    processes. A row is marked sent only after Cloudflare answered 2xx; a
    failed push leaves it pending with a backoff (honouring ``Retry-After``,
    at most a minute), so after an outage the next pass of (2) or (3)
    resumes dispatch with no operator action.

Duplicates
    A push whose response is lost (a timeout after Cloudflare stored the
    message) leaves its row unsent, so the message is pushed again.
    Cloudflare also delivers at least once. Both duplicates are absorbed by
    the pipeline: a delivery must claim the upload, and a finished upload is
    acked without running again.

Pull consumer
    Bodies of content type ``json`` arrive base64-encoded and are decoded by
    ``metadata["CF-Content-Type"]``. A body that cannot be decoded is still
    returned (as its raw string), so the consumer dead-letters it with a
    reason instead of leaving it to be redelivered forever. Acks and retries
    settled within ``ACK_DELAY_MS`` go out in one ack call, sent by the
    settlement that finds them due or by the next pull, and at shutdown;
    when that call fails with a 429 or a 5xx, they are kept and sent with
    the next one (after ``Retry-After``), since a lost ack costs a
    redelivery and a second run. A retry, a release
    and a lease that runs out all count an attempt on Cloudflare's side; the
    consumer's ``max_retries`` should be at least ``MAX_ATTEMPTS - 1`` (it
    delivers a message ``max_retries + 1`` times), or Cloudflare gives up on a
    message before this app does.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured

from ..conf import SETTING_NAME, get_settings
from ..exceptions import PermanentQueueError
from .base import QueueBackend, ReceivedMessage, Retry
from .cloudflare_api import (
    DEFAULT_API_BASE_URL,
    CloudflarePermanentError,
    CloudflareTransientError,
    QueuesAPI,
)

logger = logging.getLogger("django_cf_ingest.queues")

#: Cloudflare counts about this much metadata into a message's size.
MESSAGE_OVERHEAD = 100
MAX_MESSAGE_BYTES = 128_000
MAX_BATCH_BYTES = 256_000
MAX_BATCH_MESSAGES = 100
MAX_PULL_BATCH = 100
#: Settled leases per ack call.
MAX_ACK_ENTRIES = 100
#: Ack calls a held-back settlement gets before its messages are left to
#: come back when their leases run out.
MAX_SETTLE_TRIES = 5
MAX_VISIBILITY_TIMEOUT_MS = 43_200_000
#: Delays are kept within 12 h, the lower of the two documented maxima.
MAX_DELAY_SECONDS = 43_200
#: How long the backlog seen in a pull or push answer stays current.
BACKLOG_MAX_AGE = 5.0
#: Of an undecodable body, this much is kept for the dead-letter queue.
RAW_BODY_KEPT = 16_000

QUEUE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
CONSUMER_MODES = ("pull", "worker")
OPTION_NAMES = frozenset(
    {
        "ACCOUNT_ID",
        "API_TOKEN",
        "QUEUE",
        "API_BASE_URL",
        "CONSUMER",
        "BATCH_SIZE",
        "VISIBILITY_TIMEOUT_MS",
        "TIMEOUT",
        "DEAD_LETTER_QUEUE",
        "RELAY_INTERVAL",
        "ACK_DELAY_MS",
    }
)
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


#: ("acks" or "retries", the entry of the ack call).
Settlement = tuple[str, dict[str, Any]]


class QueueNotFound(CloudflarePermanentError):
    """No queue of the configured name in the account."""


def _option(options: dict[str, Any], name: str, default: Any = None) -> Any:
    value = options.get(name)
    return default if value in (None, "") else value


def _number(
    options: dict[str, Any], name: str, default: float, low: float, high: float
) -> float:
    value = _option(options, name, default)
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(
            f'{SETTING_NAME}["QUEUE"]["OPTIONS"]["{name}"] must be a number.'
        ) from exc
    if not low <= number <= high:
        raise ImproperlyConfigured(
            f'{SETTING_NAME}["QUEUE"]["OPTIONS"]["{name}"] must be between '
            f"{low:g} and {high:g}."
        )
    return number


def encoded_size(body: Any) -> int:
    """A JSON body's size as Cloudflare counts it."""
    encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return len(encoded) + MESSAGE_OVERHEAD


def push_batches(bodies: Sequence[Any], sizes: Sequence[int]) -> Iterator[list[Any]]:
    """Split bodies into batches within the message-count and byte limits."""
    batch: list[Any] = []
    total = 0
    for body, size in zip(bodies, sizes, strict=True):
        if batch and (
            len(batch) >= MAX_BATCH_MESSAGES or total + size > MAX_BATCH_BYTES
        ):
            yield batch
            batch, total = [], 0
        batch.append(body)
        total += size
    if batch:
        yield batch


def clamp_delay(seconds: float) -> int:
    """Whole seconds within Cloudflare's limits, never shorter than asked."""
    if seconds <= 0:
        return 0
    return min(MAX_DELAY_SECONDS, math.ceil(seconds))


def decode_body(raw: Any, content_type: str) -> tuple[Any, str]:
    """A pulled body and, when it could not be decoded, why."""
    if not isinstance(raw, str):
        return raw, ""
    if content_type == "text":
        return raw, ""
    if content_type not in ("json", "bytes"):
        return raw, f"content type {content_type!r} cannot be decoded outside Workers"
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        # Tolerate a body sent inline rather than base64-encoded.
        try:
            return json.loads(raw), ""
        except ValueError:
            return raw, f"{content_type} body is not base64"
    try:
        return json.loads(data.decode("utf-8")), ""
    except (UnicodeDecodeError, ValueError):
        return raw, f"{content_type} body does not hold JSON"


def ack_warnings(value: Any) -> list[str]:
    """Warnings of an ack answer: a map of lease id to text, or a list."""
    if isinstance(value, dict):
        return [str(v) for v in value.values()]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


class CloudflareBackend(QueueBackend):
    max_batch_size = MAX_BATCH_MESSAGES

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        unknown = sorted(set(self.options) - OPTION_NAMES)
        if unknown:
            raise ImproperlyConfigured(
                f'{SETTING_NAME}["QUEUE"]["OPTIONS"] has unknown key(s): '
                f"{', '.join(unknown)}. Known: {', '.join(sorted(OPTION_NAMES))}."
            )
        opts = self.options
        self.account_id = str(_option(opts, "ACCOUNT_ID", "")).strip()
        self.queue = str(_option(opts, "QUEUE", "")).strip()
        self.base_url = str(_option(opts, "API_BASE_URL", DEFAULT_API_BASE_URL)).rstrip(
            "/"
        )
        self.dead_letter_queue = str(_option(opts, "DEAD_LETTER_QUEUE", "")).strip()
        self.consumer = str(_option(opts, "CONSUMER", "pull")).strip().lower()
        if self.consumer not in CONSUMER_MODES:
            raise ImproperlyConfigured(
                f'{SETTING_NAME}["QUEUE"]["OPTIONS"]["CONSUMER"] must be "pull" '
                'or "worker".'
            )
        self.can_receive = self.consumer == "pull"
        self.batch_size = int(
            _number(opts, "BATCH_SIZE", MAX_PULL_BATCH, 1, MAX_PULL_BATCH)
        )
        visibility = _option(opts, "VISIBILITY_TIMEOUT_MS")
        self.visibility_timeout_ms: int | None = (
            None
            if visibility is None
            else int(
                _number(
                    opts, "VISIBILITY_TIMEOUT_MS", 0, 1000, MAX_VISIBILITY_TIMEOUT_MS
                )
            )
        )
        self.timeout = _number(opts, "TIMEOUT", 10.0, 0.1, 600)
        self.relay_interval = _number(opts, "RELAY_INTERVAL", 1.0, 0, 3600)
        self.ack_delay = _number(opts, "ACK_DELAY_MS", 200, 0, 10_000) / 1000
        self._api = QueuesAPI(
            base_url=self.base_url,
            account_id=self.account_id,
            api_token=str(_option(opts, "API_TOKEN", "")).strip(),
            timeout=self.timeout,
        )
        self._queue_ids: dict[str, str] = {}
        self._lock = threading.Lock()
        self._backlog: tuple[int, float] | None = None
        # Acks and retries waiting for the next ack call, and when it is due.
        self._pending: list[Settlement] = []
        self._pending_due = 0.0
        self._failures = 0

    @property
    def api(self) -> QueuesAPI:
        return self._api

    def _require_config(self) -> None:
        missing = [
            name
            for name, value in (
                ("ACCOUNT_ID", self.account_id),
                ("API_TOKEN", self._api._token),
                ("QUEUE", self.queue),
            )
            if not value
        ]
        if missing:
            raise ImproperlyConfigured(
                "The Cloudflare queue backend needs "
                f'{SETTING_NAME}["QUEUE"]["OPTIONS"] {", ".join(missing)} '
                "(CF_ACCOUNT_ID, CF_API_TOKEN, CF_AI_INGEST_QUEUE_ID)."
            )

    # Queue ids -------------------------------------------------------------

    def queue_id(self, reference: str | None = None) -> str:
        """The 32-hex id of the queue (or of ``reference``, an id or a name)."""
        self._require_config()
        reference = (reference or self.queue).strip()
        if QUEUE_ID.match(reference):
            return reference.lower()
        with self._lock:
            cached = self._queue_ids.get(reference)
        if cached:
            return cached
        queues = self.list_queues()
        for queue in queues:
            if queue.get("queue_name") == reference and queue.get("queue_id"):
                queue_id = str(queue["queue_id"])
                with self._lock:
                    self._queue_ids[reference] = queue_id
                logger.info("queue name resolved queue=%s id=%s", reference, queue_id)
                return queue_id
        names = ", ".join(sorted(str(q.get("queue_name")) for q in queues)[:10])
        raise QueueNotFound(
            f"No queue named {reference!r} in account {self.account_id}"
            + (f" (queues: {names})" if names else " (it has no queues)"),
            status_code=404,
        )

    def list_queues(self) -> list[dict[str, Any]]:
        queues: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {"page": page} if page > 1 else None
            data = self._api.call("list queues", "GET", "/queues", params=params)
            result = data.get("result") or []
            queues += [q for q in result if isinstance(q, dict)]
            info = data.get("result_info") or {}
            total_pages = info.get("total_pages") if isinstance(info, dict) else None
            if (
                not isinstance(total_pages, int | float)
                or page >= total_pages
                or not result
            ):
                return queues
            page += 1

    def _path(self, suffix: str = "", queue: str | None = None) -> str:
        return f"/queues/{self.queue_id(queue)}{suffix}"

    # Producer --------------------------------------------------------------

    def enqueue_batch(
        self, bodies: Sequence[dict[str, Any]], *, delay_seconds: float = 0
    ) -> None:
        if not bodies:
            return
        sizes = [encoded_size(body) for body in bodies]
        too_big = max(sizes)
        if too_big > MAX_MESSAGE_BYTES:
            raise PermanentQueueError(
                f"A message is {too_big - MESSAGE_OVERHEAD} bytes; Cloudflare Queues "
                f"takes at most {MAX_MESSAGE_BYTES} bytes per message."
            )
        delay = clamp_delay(delay_seconds)
        for batch in push_batches(bodies, sizes):
            self._push(batch, delay)

    def _push(self, batch: list[Any], delay: int, queue: str | None = None) -> None:
        if len(batch) == 1:
            payload: dict[str, Any] = {"body": batch[0], "content_type": "json"}
            if delay:
                payload["delay_seconds"] = delay
            data = self._api.call(
                "push", "POST", self._path("/messages", queue), json=payload
            )
        else:
            payload = {"messages": [{"body": b, "content_type": "json"} for b in batch]}
            if delay:
                payload["delay_seconds"] = delay
            data = self._api.call(
                "push batch", "POST", self._path("/messages/batch", queue), json=payload
            )
        if queue is None:
            self._note_backlog(data.get("result"))

    # Pull consumer ---------------------------------------------------------

    def receive(
        self, max_messages: int, *, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        self.flush()
        count = max(0, min(max_messages, self.batch_size))
        if not count:
            return []
        timeout_ms = self.visibility_timeout_ms or int(visibility_timeout * 1000)
        timeout_ms = max(1000, min(MAX_VISIBILITY_TIMEOUT_MS, timeout_ms))
        data = self._api.call(
            "pull",
            "POST",
            self._path("/messages/pull"),
            json={"batch_size": count, "visibility_timeout_ms": timeout_ms},
        )
        result = data.get("result")
        if isinstance(result, list):  # the answer's shape before 2025
            items = result
        else:
            self._note_backlog(result)
            items = (result or {}).get("messages") or []
        return [self._received(item) for item in items if isinstance(item, dict)]

    def _received(self, item: dict[str, Any]) -> ReceivedMessage:
        metadata = (
            item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
        )
        content_type = str((metadata or {}).get("CF-Content-Type", "json"))
        raw = item.get("body")
        body, problem = decode_body(raw, content_type)
        extra: dict[str, Any] = {
            "timestamp_ms": item.get("timestamp_ms"),
            "content_type": content_type,
        }
        if problem:
            extra["decode_error"] = problem
            logger.warning(
                "undecodable message id=%s content_type=%s",
                item.get("id"),
                content_type,
            )
        attempts = item.get("attempts")
        return ReceivedMessage(
            id=str(item.get("id", "")),
            body=body,
            attempts=int(attempts) if isinstance(attempts, int | float) else 1,
            lease_id=str(item.get("lease_id", "")),
            extra=extra,
        )

    def settle(self, acks: Sequence[ReceivedMessage], retries: Sequence[Retry]) -> None:
        """Ack and retry, gathering what is settled within ``ACK_DELAY_MS``
        into one ack call."""
        entries: list[Settlement] = [("acks", {"lease_id": m.lease_id}) for m in acks]
        entries += [
            (
                "retries",
                {
                    "lease_id": r.message.lease_id,
                    "delay_seconds": clamp_delay(r.delay_seconds),
                },
            )
            for r in retries
        ]
        with self._lock:
            if entries and not self._pending:
                self._pending_due = time.monotonic() + self.ack_delay
            self._pending += entries
        self._send(self._take(force=False))

    def _take(self, *, force: bool) -> list[Settlement]:
        """The pending settlements, if they are due (or ``force``)."""
        with self._lock:
            if not self._pending:
                return []
            full = len(self._pending) >= MAX_ACK_ENTRIES and not self._failures
            if not (force or full or time.monotonic() >= self._pending_due):
                return []
            taken, self._pending = self._pending, []
            return taken

    def _send(self, entries: list[Settlement]) -> None:
        for start in range(0, len(entries), MAX_ACK_ENTRIES):
            chunk = entries[start : start + MAX_ACK_ENTRIES]
            payload: dict[str, list[dict[str, Any]]] = {}
            for key, entry in chunk:
                payload.setdefault(key, []).append(entry)
            try:
                data = self._api.call(
                    "ack", "POST", self._path("/messages/ack"), json=payload
                )
            except CloudflareTransientError as exc:
                self._hold_back(entries[start:], exc.retry_after)
                raise
            result = data.get("result") if isinstance(data.get("result"), dict) else {}
            warnings = ack_warnings((result or {}).get("warnings"))
            if warnings:
                logger.warning(
                    "ack warnings count=%s first=%s", len(warnings), warnings[0][:200]
                )
            self._backlog = None
            with self._lock:
                self._failures = 0

    def _hold_back(self, entries: list[Settlement], retry_after: float | None) -> None:
        """Keep settlements a transient failure held back, for a later call."""
        with self._lock:
            self._failures += 1
            if self._failures > MAX_SETTLE_TRIES:
                logger.warning(
                    "giving up on settling count=%s; the messages come back when "
                    "their leases run out",
                    len(entries),
                )
                self._failures = 0
                return
            self._pending = entries + self._pending
            backoff = min(5.0, 0.25 * 2**self._failures)
            self._pending_due = time.monotonic() + max(retry_after or 0, backoff)

    def flush(self, *, force: bool = False) -> None:
        """Send the pending acks and retries that are due (all with ``force``).

        Settlements a failed call held back are sent again here: Cloudflare
        accepts an ack after the lease ran out, so a late ack still spares
        the message a redelivery and the consumer a second run.
        """
        try:
            self._send(self._take(force=force))
        except CloudflareTransientError as exc:
            logger.warning("pending acks not sent yet error=%s", exc)

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        self.settle([], [Retry(m, 0) for m in messages])
        self._send(self._take(force=True))

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        if self.dead_letter_queue:
            body = message.body
            if message.extra.get("decode_error") and isinstance(body, str):
                body = body[:RAW_BODY_KEPT]
            record = {
                "body": body,
                "reason": reason[:2000],
                "attempts": message.attempts,
                "messageId": message.id,
                "queue": self.queue,
            }
            if message.extra.get("decode_error"):
                record["decodeError"] = message.extra["decode_error"]
            self._push([record], 0, queue=self.dead_letter_queue)
        self.settle([message], [])

    # Inspection ------------------------------------------------------------

    def _note_backlog(self, result: Any) -> None:
        if not isinstance(result, dict):
            return
        count = result.get("message_backlog_count")
        if not isinstance(count, int | float):
            metrics = (result.get("metadata") or {}).get("metrics") or {}
            count = metrics.get("backlog_count") if isinstance(metrics, dict) else None
        if isinstance(count, int | float):
            self._backlog = (int(count), time.monotonic())

    def backlog(self) -> int | None:
        known = self._backlog
        if known is not None and time.monotonic() - known[1] < BACKLOG_MAX_AGE:
            return known[0]
        metrics = self.metrics()
        if metrics is None:
            return known[0] if known else None
        count = metrics.get("backlog_count")
        if not isinstance(count, int | float):
            return None
        self._backlog = (int(count), time.monotonic())
        return int(count)

    def metrics(self) -> dict[str, Any] | None:
        """Best-effort metrics of the queue (Get Queue Metrics), or None where
        the API does not offer them."""
        try:
            data = self._api.call("get metrics", "GET", self._path("/metrics"))
        except CloudflarePermanentError as exc:
            if exc.status_code in (404, 405) and not isinstance(exc, QueueNotFound):
                return None
            raise
        result = data.get("result")
        return result if isinstance(result, dict) else None

    def get_queue(self) -> dict[str, Any]:
        data = self._api.call("get queue", "GET", self._path())
        result = data.get("result")
        return result if isinstance(result, dict) else {}

    def list_consumers(self) -> list[dict[str, Any]]:
        data = self._api.call("list consumers", "GET", self._path("/consumers"))
        result = data.get("result")
        return (
            [c for c in result if isinstance(c, dict)]
            if isinstance(result, list)
            else []
        )

    def check(self) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        required = (
            (
                "ACCOUNT_ID",
                self.account_id,
                "CF_ACCOUNT_ID",
                "the account id shown by `wrangler whoami`",
                "cf_ingest.E040",
            ),
            (
                "API_TOKEN",
                self._api._token,
                "CF_API_TOKEN",
                "an API token with Queues Read and Queues Write",
                "cf_ingest.E041",
            ),
            (
                "QUEUE",
                self.queue,
                "CF_AI_INGEST_QUEUE_ID",
                "the queue's id or name from `wrangler queues list`",
                "cf_ingest.E042",
            ),
        )
        for name, value, env_name, what, check_id in required:
            if not value:
                messages.append(
                    Error(
                        f"The Cloudflare queue backend has no {name}.",
                        hint=f'Set {SETTING_NAME}["QUEUE"]["OPTIONS"]["{name}"] '
                        f"(the {env_name} environment variable) to {what}.",
                        id=check_id,
                    )
                )
        if self.account_id and not QUEUE_ID.match(self.account_id):
            messages.append(
                Warning(
                    "The Cloudflare ACCOUNT_ID is not a 32-character hex id.",
                    hint="Copy the account id from `wrangler whoami` or the "
                    "dashboard's sidebar (CF_ACCOUNT_ID).",
                    id="cf_ingest.W040",
                )
            )
        parts = urlsplit(self.base_url)
        if parts.scheme != "https" and (parts.hostname or "") not in _LOOPBACK:
            messages.append(
                Warning(
                    "API_BASE_URL is not https, so the API token would cross the "
                    "network unencrypted.",
                    hint=f"Use {DEFAULT_API_BASE_URL}, or a loopback address for "
                    "the emulator.",
                    id="cf_ingest.W041",
                )
            )
        timeout = get_settings().PROCESSING_TIMEOUT
        if (
            self.visibility_timeout_ms is not None
            and self.visibility_timeout_ms < timeout * 1000
        ):
            messages.append(
                Warning(
                    f"VISIBILITY_TIMEOUT_MS ({self.visibility_timeout_ms}) is shorter "
                    f"than PROCESSING_TIMEOUT ({timeout} s), so a message can come "
                    "back while its upload is still being processed.",
                    hint="Raise VISIBILITY_TIMEOUT_MS to at least PROCESSING_TIMEOUT "
                    "x 1000, or leave it unset.",
                    id="cf_ingest.W042",
                )
            )
        return messages

    def close(self) -> None:
        self.flush(force=True)
        with self._lock:
            unsent, self._pending = len(self._pending), []
        if unsent:
            logger.warning(
                "acks not sent count=%s; the messages come back when their leases "
                "run out",
                unsent,
            )
        self._api.close()
