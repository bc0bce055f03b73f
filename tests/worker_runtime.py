"""The Cloudflare Worker in workerd, for tests and the benchmark.

``WorkerRuntime`` starts ``tests/workerd/harness.mjs`` (Miniflare driving
workerd) on a folder written by ``cf_ingest_worker``, waits until it serves,
talks to its test-only HTTP API, and stops its whole process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
HARNESS = ROOT / "tests" / "workerd" / "harness.mjs"
WRANGLER = NODE_MODULES / ".bin" / "wrangler"

SKIP_REASON = (
    "node_modules is absent: run `npm ci` at the repository root to install "
    "wrangler and miniflare (workerd)"
)


def node_modules_present() -> bool:
    return (NODE_MODULES / "miniflare").is_dir() and WRANGLER.exists()


def node_env() -> dict[str, str]:
    """Environment for wrangler and Miniflare: no telemetry, no prompts."""
    env = dict(os.environ)
    env["WRANGLER_SEND_METRICS"] = "false"
    env["CI"] = "true"
    env["NO_COLOR"] = "1"
    return env


class WorkerRuntime:
    def __init__(self, folder: Path, secret: str, log_path: Path) -> None:
        self.folder = folder
        self.secret = secret
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> WorkerRuntime:
        env = node_env()
        env["CF_INGEST_WORKER_SECRET"] = self.secret
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            ["node", str(HARNESS), str(self.folder)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.url = self._read_ready_line(timeout)
        self._wait_ready(timeout)
        return self

    def _read_ready_line(self, timeout: float) -> str:
        assert self.process is not None
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the harness exited:\n{self.log()}")
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(self.process.stdout.fileno(), 4096)
            buffer += chunk
            for line in buffer.splitlines():
                if line.startswith(b'{"ready"'):
                    return str(json.loads(line)["ready"])
        raise RuntimeError(f"the harness did not start in {timeout}s:\n{self.log()}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.get("/ready")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the harness never answered /ready:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()
        # workerd runs in the harness's process group; make sure none survives.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    # The harness's test-only API.

    def request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        content_type: str = "application/json",
    ) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": content_type},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def enqueue(self, bodies: list[Any], queue: str = "ingest") -> Any:
        payload = json.dumps({"queue": queue, "bodies": bodies}).encode()
        return self.request("POST", "/enqueue", payload)

    def put_object(self, key: str, data: bytes, content_type: str) -> Any:
        return self.request("PUT", f"/r2/{key}", data, content_type)

    def set_ai_reply(self, reply: dict[str, Any] | list[dict[str, Any]]) -> None:
        self.request("POST", "/ai/reply", json.dumps(reply).encode())

    def ai_calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.get("/ai/calls")
        return calls

    def events(self) -> list[dict[str, str]]:
        events: list[dict[str, str]] = self.get("/events")
        return events
