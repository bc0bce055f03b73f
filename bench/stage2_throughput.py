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
import subprocess
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
    SECRET,
    SECRET_KEY,
    child,
    django_setup,
    free_port,
    wait_for,
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
    s3_port = free_port()
    moto = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)]
    fake = [sys.executable, "-m", "tests.fakes.workers_ai", "--latency"]
    processes = [
        subprocess.Popen(moto, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(
            [*fake, str(args.latency)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        ),
    ]
    results = []
    try:
        wait_for(s3_port)
        assert processes[1].stdout is not None
        ai_url = processes[1].stdout.readline().strip()
        from tests.fakes.workers_ai import ACCOUNT_ID, API_TOKEN

        overrides = {
            "INTERNAL_SECRETS": [SECRET],
            "PROVIDERS": {
                "workers_ai": {
                    "ACCOUNT_ID": ACCOUNT_ID,
                    "API_TOKEN": API_TOKEN,
                    "BASE_URL": ai_url + "/client/v4",
                }
            },
        }
        env = {
            **os.environ,
            "CF_INGEST_VAR_DIR": work,
            "CF_INGEST_TEST_OVERRIDES": json.dumps(overrides),
            "CF_INGEST_LOG_LEVEL": "WARNING",
            "R2_BUCKET": BUCKET,
            "R2_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
            "R2_ACCESS_KEY_ID": ACCESS_KEY,
            "R2_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        child(env, "setup", script=__file__)
        for level in args.concurrency:
            run = child(env, "consume", str(args.uploads), str(level), script=__file__)
            results.append(run)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)

    print(f"model latency {args.latency:g} s, {args.uploads} uploads per run")
    for run in results:
        rate = run["uploads"] / run["seconds"]
        print(
            f"concurrency {run['concurrency']:>3}: {run['seconds']:6.2f} s, "
            f"{rate:6.2f} uploads/s, {run['outcomes']}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "setup":
        setup()
    elif len(sys.argv) > 1 and sys.argv[1] == "consume":
        consume(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
