"""Serve the emulator over HTTP/1.1 in a background thread.

Stopping the server also closes the connections clients keep alive, so a
stopped emulator is unreachable, the way an outage looks to a client.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import Emulator

logger = logging.getLogger("django_cf_ingest.emulator")


class _Handler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        tracked: set[socket.socket] = getattr(self.server, "open_connections", set())
        tracked.add(self.connection)

    def finish(self) -> None:
        tracked: set[socket.socket] = getattr(self.server, "open_connections", set())
        tracked.discard(self.connection)
        super().finish()

    def log(self, type: str, message: str, *args: Any) -> None:
        # Request lines carry only the path: account and queue ids, no token.
        logger.debug("emulator http %s", message % args if args else message)


class EmulatorServer:
    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0):
        self.emulator = emulator
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What ``CF_API_BASE_URL`` is set to."""
        return self.url + self.emulator.base_path

    def bind(self) -> EmulatorServer:
        """Open the listening socket (on a free port when ``port`` is 0)."""
        if self._server is None:
            server = make_server(
                self.host,
                self.port,
                self.emulator,
                threaded=True,
                request_handler=_Handler,
            )
            server.open_connections = set()  # type: ignore[attr-defined]
            self._server = server
            self.port = server.server_port
        return self

    def start(self) -> EmulatorServer:
        """Serve in a background thread."""
        server = self.bind()._server
        assert server is not None
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"cf-queues-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        server = self.bind()._server
        assert server is not None
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()
            self._server = None

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        server.shutdown()
        for connection in list(getattr(server, "open_connections", ())):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
