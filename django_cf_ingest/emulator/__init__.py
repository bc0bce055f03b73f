"""A local emulator of Cloudflare Queues' REST API, for tests and offline work.

It serves list queues, get queue, list consumers, get metrics, push, push
batch, pull and ack (with retries) from Cloudflare's OpenAPI description,
validating every request and response against it, with the documented
delivery semantics (see ``broker``) and optional fault injection (see
``faults``). Use it in-process::

    emulator = Emulator()
    emulator.add_queue("ai-ingest")
    with emulator.serve() as server:
        ...  # CF_API_BASE_URL = server.base_url

or from the command line with ``manage.py cf_ingest_emulator``. It needs the
``emulator`` extra (openapi-core and werkzeug).
"""

from __future__ import annotations

from ..exceptions import MissingExtra

try:
    from .app import (
        ALL_PERMISSIONS,
        DEFAULT_ACCOUNT_ID,
        DEFAULT_TOKEN,
        READ_PERMISSIONS,
        Emulator,
        RecordedRequest,
    )
    from .broker import Queue, queue_id_for
    from .faults import FaultPolicy, LostResponse
    from .server import EmulatorServer
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtra("The Cloudflare Queues emulator", "emulator") from exc

__all__ = [
    "ALL_PERMISSIONS",
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_TOKEN",
    "READ_PERMISSIONS",
    "Emulator",
    "EmulatorServer",
    "FaultPolicy",
    "LostResponse",
    "Queue",
    "RecordedRequest",
    "queue_id_for",
]
