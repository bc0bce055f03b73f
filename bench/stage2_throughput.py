"""Throughput of the Stage 2 consumer against a Workers AI that takes its time.

    .venv/bin/python bench/stage2_throughput.py [--uploads 48] [--latency 0.2]
        [--concurrency 1 8 16]

Everything runs on 127.0.0.1 in a throwaway directory: moto's S3 server as R2
and the fake Workers AI (answering after ``--latency`` seconds) in their own
processes; the site (SQLite, the meta and complete endpoints on a threaded
WSGI server) and the consumer (the database queue, ``Stage2Handler``) in one
process per concurrency level. Each level gets fresh uploads of a demo sample
sheet and is timed from the first receive until the queue is drained.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stage2_memory import (  # noqa: E402 - found through the path above
    ACCESS_KEY,
    BUCKET,
    SECRET_KEY,
    child,
    django_setup,
    edge_services,
    free_port,
)

SAMPLE = ROOT / "example_project" / "demo" / "samples" / "big-five-a.png"


def setup() -> None:
    django_setup()
    import boto3
    from django.core.management import call_command

    from django_cf_ingest.r2 import r2_client_config

    call_command("migrate", verbosity=0)
    boto3.client(
        "s3",
        endpoint_url=os.environ["R2_ENDPOINT_URL"],
        region_name="auto",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=r2_client_config(),
    ).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "auto"}
    )
    print(json.dumps({}))


def consume(uploads: int, concurrency: int) -> None:
    port = free_port()
    django_setup(port)
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    from django_cf_ingest import outbox
    from django_cf_ingest.consumer.stage2 import Stage2Handler
    from django_cf_ingest.consumer.worker import Worker
    from django_cf_ingest.queues import get_backend
    from django_cf_ingest.services import create_upload

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", port), Quiet)
    server.set_app(WSGIHandler())
    threading.Thread(target=server.serve_forever, daemon=True).start()

    content = SAMPLE.read_bytes()
    for number in range(uploads):
        create_upload(io.BytesIO(content), "big-five", name=f"sheet-{number}.png")
    outbox.relay(limit=uploads)

    worker = Worker(
        get_backend(),
        Stage2Handler(concurrency=concurrency),
        concurrency=concurrency,
        batch_size=concurrency,
        drain=True,
        poll_interval=0.05,
        relay=False,
    )
    started = time.perf_counter()
    stats = worker.run()
    seconds = time.perf_counter() - started
    server.shutdown()
    print(
        json.dumps(
            {
                "concurrency": concurrency,
                "uploads": uploads,
                "seconds": seconds,
                "outcomes": stats.outcomes,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=48)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 16])
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="cf-ingest-bench-")
    results = []
    with edge_services(work, latency=args.latency) as env:
        env = {**env, "CF_INGEST_LOG_LEVEL": "WARNING"}
        child(env, "setup", script=__file__)
        for level in args.concurrency:
            run = child(env, "consume", str(args.uploads), str(level), script=__file__)
            results.append(run)

    print(f"model latency {args.latency:g} s, {args.uploads} uploads per run")
    baseline = results[0]["uploads"] / results[0]["seconds"]
    for run in results:
        rate = run["uploads"] / run["seconds"]
        print(
            f"concurrency {run['concurrency']:>3}: {run['seconds']:6.2f} s, "
            f"{rate:6.2f} uploads/s ({rate / baseline:.1f}x concurrency "
            f"{results[0]['concurrency']}), {run['outcomes']}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "setup":
        setup()
    elif len(sys.argv) > 1 and sys.argv[1] == "consume":
        consume(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
