"""What ``manage.py cf_ingest_check`` finds out about the configured queue.

Only calls without side effects are made: list queues (to resolve a name),
get queue, list consumers, get metrics, and an ack with no leases, which
touches no message but needs the Queues Write permission that pushing
needs too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.core.checks import ERROR

from ..conf import SETTING_NAME, get_settings
from ..exceptions import QueueError
from .base import QueueBackend
from .cloudflare import QUEUE_ID, CloudflareBackend, QueueNotFound
from .cloudflare_api import CloudflareAPIError

QUEUE_NOT_FOUND = 10104
QUEUE_ID_MALFORMED = 10107


@dataclass
class Diagnosis:
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.errors


def diagnose(backend: QueueBackend) -> Diagnosis:
    report = Diagnosis()
    for message in backend.check():
        text = f"{message.msg} {message.hint or ''}".strip()
        (report.errors if message.level >= ERROR else report.warnings).append(
            f"{text} ({message.id})"
        )
    if report.errors:
        return report
    if not isinstance(backend, CloudflareBackend):
        report.lines.append(f"Queue backend: {type(backend).__name__}")
        report.lines.append(f"Backlog: {_count(backend.backlog())}")
        return report
    _diagnose_cloudflare(backend, report)
    return report


def _count(value: int | None) -> str:
    return "unknown" if value is None else f"{value} message(s)"


def _auth_problem(backend: CloudflareBackend, exc: CloudflareAPIError) -> str:
    if exc.status_code == 401:
        return (
            f"Cloudflare rejected the API token ({exc}). Set CF_API_TOKEN to a valid "
            "API token with the Queues Read and Queues Write permissions."
        )
    return (
        f"The API token may not use the queues of account {backend.account_id} "
        f"({exc}). Give the token the Queues Read and Queues Write permissions "
        "for this account (CF_API_TOKEN), and check CF_ACCOUNT_ID."
    )


def _failed(backend: CloudflareBackend, exc: QueueError, report: Diagnosis) -> None:
    if isinstance(exc, QueueNotFound):
        report.errors.append(
            f"{exc}. Set CF_AI_INGEST_QUEUE_ID to the id or name of an existing "
            "queue (`wrangler queues list`), or create it (`wrangler queues "
            f"create {backend.queue}`)."
        )
    elif isinstance(exc, CloudflareAPIError) and exc.is_auth_failure:
        report.errors.append(_auth_problem(backend, exc))
    elif isinstance(exc, CloudflareAPIError) and QUEUE_NOT_FOUND in exc.codes:
        report.errors.append(
            f"There is no queue {backend.queue} in account {backend.account_id} "
            f"({exc}). Set CF_AI_INGEST_QUEUE_ID to the queue's id or name "
            "(`wrangler queues list`), and check CF_ACCOUNT_ID."
        )
    elif isinstance(exc, CloudflareAPIError) and QUEUE_ID_MALFORMED in exc.codes:
        report.errors.append(
            f"{backend.queue!r} is not a valid queue id ({exc}). Set "
            "CF_AI_INGEST_QUEUE_ID to the 32-character id or to the queue's name."
        )
    elif isinstance(exc, CloudflareAPIError) and exc.status_code is None:
        report.errors.append(
            f"The Cloudflare API at {backend.base_url} cannot be reached ({exc}). "
            "Check CF_API_BASE_URL and the network."
        )
    else:
        report.errors.append(f"{exc}.")


def _diagnose_cloudflare(backend: CloudflareBackend, report: Diagnosis) -> None:
    report.lines.append(f"Queue backend: Cloudflare Queues at {backend.base_url}")
    report.lines.append(f"Account: {backend.account_id}")
    try:
        queue_id = backend.queue_id()
        queue = backend.get_queue()
        consumers = backend.list_consumers()
        # No message is touched, but the call needs Queues Write, like a push.
        backend.api.call(
            "ack", "POST", f"/queues/{queue_id}/messages/ack", json={"acks": []}
        )
    except QueueError as exc:
        _failed(backend, exc, report)
        return
    resolved = (
        "" if QUEUE_ID.match(backend.queue) else f" (resolved from {backend.queue!r})"
    )
    report.lines.append(
        f"Queue: {queue.get('queue_name', '?')} id {queue_id}{resolved}"
    )
    report.lines.append("API token: accepted for reading and writing queue messages")
    report.lines.append(f"Consumers: {len(consumers) or 'none'}")
    report.lines += ["  - " + _consumer_line(c) for c in consumers]
    try:
        metrics = backend.metrics()
    except QueueError as exc:
        report.warnings.append(f"The backlog could not be read ({exc}).")
        metrics = None
    report.lines.append(f"Backlog: {_backlog_line(metrics)}")
    if backend.dead_letter_queue:
        try:
            dead_letter_id = backend.queue_id(backend.dead_letter_queue)
        except QueueError as exc:
            report.errors.append(
                f"The dead-letter queue cannot be used ({exc}). Set "
                "CF_DEAD_LETTER_QUEUE to an existing queue's id or name, or "
                "leave it empty."
            )
        else:
            report.lines.append(
                f"Dead-letter queue: {backend.dead_letter_queue} id {dead_letter_id}"
            )
    mode = "pulls with cf_ingest_consume" if backend.can_receive else "publishes only"
    report.lines.append(f"This site: {mode} (CONSUMER={backend.consumer!r})")
    report.warnings += _consumer_warnings(backend, consumers)


def _consumer_line(consumer: dict[str, Any]) -> str:
    settings = consumer.get("settings") or {}
    kind = str(consumer.get("type", "?"))
    parts = [kind]
    if kind == "worker":
        parts.append(f"script={consumer.get('script_name') or '?'}")
    for key in ("batch_size", "max_retries", "retry_delay", "visibility_timeout_ms"):
        if key in settings:
            parts.append(f"{key}={settings[key]}")
    parts.append(f"dead_letter_queue={consumer.get('dead_letter_queue') or '-'}")
    return " ".join(parts)


def _backlog_line(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "unknown (the API offers no metrics for this queue)"
    count = metrics.get("backlog_count", "?")
    size = metrics.get("backlog_bytes")
    line = f"{count} message(s)"
    if isinstance(size, int | float):
        line += f", {size / 1000:.1f} KB"
    oldest = metrics.get("oldest_message_timestamp_ms")
    if isinstance(oldest, int | float) and oldest > 0:
        age = max(0.0, time.time() - oldest / 1000)
        line += f", oldest {age:.0f} s old"
    return line


def _consumer_warnings(
    backend: CloudflareBackend, consumers: list[dict[str, Any]]
) -> list[str]:
    warnings: list[str] = []
    kinds = {str(c.get("type")) for c in consumers}
    option = f'{SETTING_NAME}["QUEUE"]["OPTIONS"]["CONSUMER"]'
    if backend.can_receive and "worker" in kinds:
        scripts = ", ".join(
            str(c.get("script_name")) for c in consumers if c.get("type") == "worker"
        )
        warnings.append(
            f"The queue is consumed by the Worker {scripts}, but this site is set "
            "up to pull, and a queue cannot have both. Set CF_QUEUE_CONSUMER=worker "
            f"({option} = 'worker') if the Worker does the work, or remove the "
            "Worker consumer and add an HTTP pull consumer "
            f"(`wrangler queues consumer http add {backend.queue}`)."
        )
    elif backend.can_receive and "http_pull" not in kinds:
        warnings.append(
            "The queue has no HTTP pull consumer, so cf_ingest_consume cannot pull "
            "from it. Add one with `wrangler queues consumer http add "
            f"{backend.queue}`."
        )
    if not backend.can_receive and "http_pull" in kinds:
        warnings.append(
            "The queue has an HTTP pull consumer, but this site is set up for a "
            "Worker consumer (CONSUMER='worker'). Set CF_QUEUE_CONSUMER=pull and "
            "run cf_ingest_consume, or replace the pull consumer with the Worker."
        )
    elif not backend.can_receive and "worker" not in kinds:
        warnings.append(
            "No Worker consumes the queue, so published messages wait. Deploy the "
            "ingest Worker with this queue as its consumer."
        )
    max_attempts = get_settings().MAX_ATTEMPTS
    for consumer in consumers:
        retries = (consumer.get("settings") or {}).get("max_retries")
        # Cloudflare delivers a message max_retries + 1 times.
        if isinstance(retries, int | float) and retries + 1 < max_attempts:
            warnings.append(
                f"The {consumer.get('type')} consumer gives up after "
                f"{retries + 1:g} deliveries (max_retries={retries:g}), before this "
                f"site's MAX_ATTEMPTS={max_attempts}, so an upload can be left "
                "unfinished. Raise max_retries (wrangler.toml "
                f"[[queues.consumers]]) to at least {max_attempts - 1}."
            )
    return warnings
