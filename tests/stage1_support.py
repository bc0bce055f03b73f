"""Helpers for the Stage 1 tests: a live server on 127.0.0.1, a scripted HTTP
server standing in for the site, and small upload helpers."""

from __future__ import annotations

import io
import json
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from django_cf_ingest.models import Upload
from django_cf_ingest.services import create_upload

from .conftest import make_png

SECRET = "test-secret-0123456789abcdef"
FAKE = {"BACKEND": "tests.fake_provider.FakeProvider"}


def new_upload(name: str = "doc.png", doc_type: str = "big-five") -> Upload:
    return create_upload(io.BytesIO(make_png(name)), doc_type, name=name)


def upload_many(count: int, prefix: str = "doc") -> list[Upload]:
    return [new_upload(f"{prefix}{n}.png") for n in range(count)]


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"status": "done"})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes | str):
            raw = self.body if isinstance(self.body, bytes) else self.body.encode()
            return raw, "text/html; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class ScriptedSite:
    """A threaded HTTP server on 127.0.0.1 that answers what it is told.

    ``reply`` is a ``Reply`` or a callable taking the path and returning one.
    Every request is recorded, and the most requests handled at once is kept
    in ``peak``.
    """

    def __init__(self, reply: Reply | Callable[[str], Reply] | None = None) -> None:
        self.reply = reply or Reply()
        self.requests: list[Received] = []
        self.inflight = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._server = make_server(
            "127.0.0.1", 0, self._app, server_class=_Server, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        path = environ["PATH_INFO"]
        with self._lock:
            self.requests.append(
                Received(environ["REQUEST_METHOD"], path, headers, body)
            )
            self.inflight += 1
            self.peak = max(self.peak, self.inflight)
        try:
            reply = self.reply(path) if callable(self.reply) else self.reply
            if reply.delay:
                time.sleep(reply.delay)
            raw, content_type = reply.encoded()
            status = f"{reply.status} {_REASONS.get(reply.status, 'Status')}"
            start_response(
                status,
                [
                    ("Content-Type", content_type),
                    ("Content-Length", str(len(raw))),
                    *reply.headers.items(),
                ],
            )
            return [raw]
        finally:
            with self._lock:
                self.inflight -= 1

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@pytest.fixture
def scripted_site() -> Iterator[ScriptedSite]:
    site = ScriptedSite()
    yield site
    site.close()
