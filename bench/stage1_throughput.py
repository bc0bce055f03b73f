"""Throughput of the Stage 1 consumer at several concurrencies, against a
provider that takes 200 ms per document.

    .venv/bin/python bench/stage1_throughput.py [--latency 0.2]
        [--concurrency 1 16 64] [--seconds 3] [--server thread|process]

The site is served on 127.0.0.1 by Django's threaded WSGI server, with a
listen backlog of 256: in a thread of this process (``thread``, the default),
or in a process of its own (``process``), so that the consumer and the site
do not share one interpreter lock. Both use
PostgreSQL, in a database of their own that is created for the run and
dropped after it, so that requests really run side by side.

For each concurrency the queue is filled with enough uploads to keep the
consumer busy for about ``--seconds`` at the ideal rate (concurrency /
latency), the Stage 1 consumer drains it, and the rate is printed with its
ratio to the rate at concurrency 1 measured in the same run. Every upload is
checked to have exactly one extraction.

``--server stub`` replaces the site with a WSGI app that only waits for the
latency and answers 200: the rate the consumer itself can reach, with the
queue still on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret-0123456789abcdef"
BENCH_DATABASE = "cf_ingest_bench"


@dataclass
class Run:
    concurrency: int
    uploads: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.uploads / self.seconds


def overrides(latency: float) -> dict[str, Any]:
    provider = {"BACKEND": "tests.fake_provider.FakeProvider", "DELAY": latency}
    return {
        "PROVIDERS": {"fake": provider},
        "PROVIDER_CHAIN": ["fake"],
        "INTERNAL_SECRETS": [SECRET],
    }


def setup_django(var_dir: Path, latency: float) -> str:
    """Configure Django on a fresh PostgreSQL database; return its name."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["DATABASE_ENGINE"] = "postgresql"
    os.environ["PGDATABASE"] = BENCH_DATABASE
    os.environ["CF_INGEST_VAR_DIR"] = str(var_dir)
    os.environ["CF_INGEST_LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_DEBUG"] = "0"  # no query log in memory
    os.environ["CF_INGEST_TEST_OVERRIDES"] = json.dumps(overrides(latency))
    import django

    django.setup()
    from django.db import connection

    name: str = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    return name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class InProcessSite:
    """The site on Django's threaded WSGI server, in a thread of this process."""

    def __init__(self, port: int = 0, app: Any = None) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.servers.basehttp import (
            ThreadedWSGIServer,
            WSGIRequestHandler,
        )

        class Server(ThreadedWSGIServer):
            # Room for a whole burst of new connections at concurrency 64.
            request_queue_size = 256

        class QuietHandler(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = Server(
            ("127.0.0.1", port), QuietHandler, allow_reuse_address=True
        )
        self.server.set_app(app or WSGIHandler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ProcessSite:
    """The same server in a process of its own (this script with ``--serve``)."""

    def __init__(self, database: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "CF_INGEST_TEST_DB_NAME": database}
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port)], cwd=ROOT, env=env
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError("the site process did not start")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def serve(port: int) -> None:
    """Serve the site until terminated (the child of ``ProcessSite``)."""
    import signal

    import django

    django.setup()
    site = InProcessSite(port)
    signal.signal(signal.SIGTERM, lambda *_: site.server.shutdown())
    site.thread.join()
    site.server.server_close()


def stub_app(latency: float) -> Any:
    """Answers like the endpoint after ``latency``, with no Django behind it."""
    body = b'{"status": "done"}'

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        time.sleep(latency)
        headers = [("Content-Type", "application/json"), ("Content-Length", "18")]
        start_response("200 OK", headers)
        return [body]

    return app


def fill_queue(count: int, prefix: str) -> list[int]:
    """Create uploads of one stored image; creating them enqueues them."""
    from django.core.files.base import ContentFile

    from django_cf_ingest.files import inspect_bytes
    from django_cf_ingest.models import DocumentType, Upload
    from django_cf_ingest.storage import get_upload_storage
    from tests.conftest import make_png

    content = make_png("Openness 42")
    info = inspect_bytes(content)
    name = get_upload_storage().save(f"bench/{prefix}.png", ContentFile(content))
    document_type = DocumentType.objects.get(slug="big-five")
    uploads = Upload.objects.bulk_create(
        Upload(
            file=name,
            original_name=f"{prefix}-{n}.png",
            document_type=document_type,
            content_type=info.content_type,
            size=info.size,
            sha256=info.sha256,
        )
        for n in range(count)
    )
    return [upload.pk for upload in uploads]


def measure(concurrency: int, count: int, site_url: str, *, stub: bool) -> Run:
    from django.test import override_settings

    from django_cf_ingest.consumer.stage1 import Stage1Handler
    from django_cf_ingest.consumer.worker import Worker
    from django_cf_ingest.models import Extraction, Upload
    from django_cf_ingest.queues import get_backend

    if stub:
        get_backend().enqueue_batch([{"uploadId": n} for n in range(1, count + 1)])
    else:
        ids = fill_queue(count, f"c{concurrency}")
    settings = {**get_settings_dict(), "INTERNAL_INGEST_BASE_URL": site_url}
    with override_settings(CF_INGEST=settings):
        worker = Worker(
            get_backend(),
            Stage1Handler(concurrency=concurrency),
            concurrency=concurrency,
            batch_size=min(concurrency, 100),
            drain=True,
            poll_interval=0.05,
        )
        started = time.monotonic()
        worker.run()
        elapsed = time.monotonic() - started

    if stub:
        if worker.stats.acked != count:
            raise SystemExit(f"concurrency {concurrency}: {worker.stats.summary()}")
        return Run(concurrency, count, elapsed)
    done = Upload.objects.filter(pk__in=ids, status="needs_review").count()
    extractions = Extraction.objects.filter(upload_id__in=ids).count()
    if done != count or extractions != count or worker.stats.acked != count:
        raise SystemExit(
            f"concurrency {concurrency}: {done}/{count} done, "
            f"{extractions} extractions, {worker.stats.summary()}"
        )
    return Run(concurrency, count, elapsed)


def get_settings_dict() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.CF_INGEST)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--server", choices=["thread", "process", "stub"], default="thread"
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if 1 not in args.concurrency:
        args.concurrency.insert(0, 1)

    with tempfile.TemporaryDirectory(prefix="cf-ingest-bench-") as var_dir:
        database = setup_django(Path(var_dir), args.latency)
        from django.db import connection

        site: InProcessSite | ProcessSite | None = None
        try:
            if args.server == "process":
                site = ProcessSite(database)
            elif args.server == "stub":
                site = InProcessSite(app=stub_app(args.latency))
            else:
                site = InProcessSite()
            runs = []
            for concurrency in args.concurrency:
                count = max(10, math.ceil(concurrency * args.seconds / args.latency))
                stub = args.server == "stub"
                runs.append(measure(concurrency, count, site.url, stub=stub))
        finally:
            if site is not None:
                site.close()
            connection.creation.destroy_test_db(
                BENCH_DATABASE, verbosity=0, keepdb=False
            )

    base = next(run.rate for run in runs if run.concurrency == 1)
    print(
        f"Stage 1 consumer, provider latency {args.latency * 1000:.0f} ms, "
        f"site: {args.server}, PostgreSQL, {os.cpu_count()} CPUs"
    )
    print(
        f"{'concurrency':>11} {'uploads':>8} {'seconds':>8} {'uploads/s':>10} "
        f"{'ratio':>6} {'ideal':>6}"
    )
    for run in runs:
        print(
            f"{run.concurrency:>11} {run.uploads:>8} {run.seconds:>8.2f} "
            f"{run.rate:>10.1f} {run.rate / base:>6.1f} {run.concurrency:>6}"
        )


if __name__ == "__main__":
    main()
