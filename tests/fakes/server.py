"""A scriptable local HTTP server that stands in for a vendor's API in tests.

``FakeServer`` listens on 127.0.0.1 at a random port, in a background thread.
Every request is recorded (method, path, query, headers, body). Each answer
comes from, in order:

1. ``validate(request)``: the vendor's own checks (path, credentials, body),
   returning the error the real service would send, or None;
2. the script: responses queued with ``enqueue``, one per request;
3. ``default(request)``: what the service answers when nothing is scripted.

Subclasses (one per vendor) override ``validate`` and ``default``. A
``FakeResponse`` can also be slow (``delay``) or cut the connection
(``drop``); ``latency`` slows every answer. A test reaches the server by
setting the provider's base URL to ``server.url``.

Run one standalone with ``python -m tests.fakes.<vendor> --port 8765``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    #: Header names in lower case.
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body decoded as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class FakeResponse:
    status: int = 200
    #: Sent as JSON when ``body`` is None.
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering.
    delay: float = 0.0
    #: Close the connection without answering.
    drop: bool = False

    def encoded(self) -> tuple[bytes, str]:
        if self.body is not None:
            return self.body, self.headers.get("Content-Type", "text/plain")
        if self.json is None:
            return b"", "application/json"
        return json.dumps(self.json).encode(), "application/json"


Script = FakeResponse | Callable[[RecordedRequest], FakeResponse]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and left is part of the script, not a fault.
        if isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            return
        super().handle_error(request, client_address)


class FakeServer:
    """A local HTTP server answering from a script; see the module docstring."""

    def __init__(self, *, latency: float = 0.0, port: int = 0) -> None:
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self._script: deque[Script] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", port), self._handler_class())
        self._thread: threading.Thread | None = None

    # Lifecycle.

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self.url}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Scripting.

    def enqueue(self, *responses: Script) -> None:
        """Answer the next requests with these, in order."""
        with self._lock:
            self._script.extend(responses)

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    @property
    def pending(self) -> int:
        """Scripted responses not used yet."""
        with self._lock:
            return len(self._script)

    @property
    def last(self) -> RecordedRequest:
        with self._lock:
            return self.requests[-1]

    # Vendor behaviour, for subclasses.

    def validate(self, request: RecordedRequest) -> FakeResponse | None:
        """The error the real service sends for this request, or None."""
        return None

    def default(self, request: RecordedRequest) -> FakeResponse:
        """The answer when nothing is scripted."""
        return FakeResponse(404, json={"error": "nothing scripted"})

    # Serving.

    def respond(self, request: RecordedRequest) -> FakeResponse:
        with self._lock:
            self.requests.append(request)
        rejected = self.validate(request)
        if rejected is not None:
            return rejected
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is None:
            return self.default(request)
        return scripted(request) if callable(scripted) else scripted

    def sleep(self, seconds: float) -> None:
        """Wait, but not past the server's stop."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                server.sleep(server.latency)
                response = server.respond(request)
                server.sleep(response.delay)
                if response.drop:
                    self.close_connection = True
                    return
                payload, content_type = response.encoded()
                self.send_response(response.status)
                headers = {"Content-Type": content_type, **response.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def serve_main(server_class: type[FakeServer], description: str) -> None:
    """Command line for running a fake standalone until interrupted."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds")
    parser.add_argument("--api-key", help="the key the fake accepts, if it checks one")
    args = parser.parse_args()
    server = server_class(latency=args.latency, port=args.port)
    if args.api_key is not None and hasattr(server, "api_key"):
        server.api_key = args.api_key
    server.start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
