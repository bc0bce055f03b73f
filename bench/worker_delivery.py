"""Delivery rate of the Cloudflare Worker consumer, and time from enqueue to
processed, in workerd (Miniflare) against Django's live test server.

    .venv/bin/python bench/worker_delivery.py [--uploads 200] [--stage 1|2]
        [--batch-size 10] [--batch-timeout 1] [--parallel 6] [--single 5]

The site uses the instant fake provider, so the figures are those of the
delivery path: queue, Worker, HTTP to the site, the site's claim and save
(and in Stage 2 the R2 read, the AI stand-in and the report). Everything runs
on this machine on 127.0.0.1: a local emulation of Cloudflare Queues, not the
service itself, and Django's threaded test server on SQLite.

Three measurements:
- burst: all uploads enqueued at once; rate = uploads / (last processed -
  enqueue), and the spread of enqueue-to-processed times;
- single: one message at a time on an idle queue, enqueue to processed, which
  includes the consumer's max_batch_timeout wait;
- baseline: as many other uploads delivered to the same server by the Python
  Stage 1 consumer (``cf_ingest_consume --stage 1``, database queue, as many
  threads as the Worker has messages in flight), in this process; the burst
  rate is also printed as a ratio of it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret-0123456789abcdef"


def setup_django(var_dir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["CF_INGEST_VAR_DIR"] = str(var_dir)
    os.environ["CF_INGEST_LOG_LEVEL"] = "WARNING"
    os.environ["CF_INGEST_TEST_OVERRIDES"] = json.dumps(
        {
            "PROVIDERS": {"fake": {"BACKEND": "tests.fake_provider.FakeProvider"}},
            "PROVIDER_CHAIN": ["fake"],
            "INTERNAL_SECRETS": [SECRET],
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def make_uploads(count: int, prefix: str) -> list[Any]:
    from django_cf_ingest.services import create_upload
    from tests.conftest import make_png

    return [
        create_upload(
            io.BytesIO(make_png(f"{prefix}{n}")), "big-five", name=f"{prefix}{n}.png"
        )
        for n in range(count)
    ]


def processed_at(ids: list[int]) -> dict[int, float]:
    from django_cf_ingest.models import Extraction

    rows = Extraction.objects.filter(upload_id__in=ids).values_list(
        "upload_id", "created_at"
    )
    return {upload_id: created.timestamp() for upload_id, created in rows}


def wait_processed(ids: list[int], timeout: float) -> dict[int, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = processed_at(ids)
        if len(done) == len(ids):
            return done
        time.sleep(0.05)
    raise SystemExit(
        f"only {len(processed_at(ids))}/{len(ids)} processed in {timeout}s"
    )


def seed_r2(runtime: Any, uploads: list[Any]) -> None:
    for upload in uploads:
        with upload.file.open("rb") as stream:
            runtime.put_object(upload.file.name, stream.read(), upload.content_type)


def answer_for(upload: Any) -> dict[str, Any]:
    from tests.fake_provider import sample_value

    schema = upload.document_type.spec.json_schema
    data: dict[str, Any] = sample_value(schema, schema.get("$defs", {}))
    return data


def burst(runtime: Any, uploads: list[Any], timeout: float) -> dict[str, Any]:
    ids = [u.pk for u in uploads]
    started = time.time()
    runtime.enqueue([{"uploadId": pk} for pk in ids])
    done = wait_processed(ids, timeout)
    latencies = [done[pk] - started for pk in ids]
    elapsed = max(done.values()) - started
    return {
        "uploads": len(ids),
        "seconds": round(elapsed, 3),
        "uploads_per_second": round(len(ids) / elapsed, 1),
        "latency_p50_s": round(percentile(latencies, 0.5), 3),
        "latency_p95_s": round(percentile(latencies, 0.95), 3),
        "latency_max_s": round(max(latencies), 3),
    }


def singles(runtime: Any, uploads: list[Any], timeout: float) -> dict[str, Any]:
    latencies = []
    for upload in uploads:
        started = time.time()
        runtime.enqueue([{"uploadId": upload.pk}])
        done = wait_processed([upload.pk], timeout)
        latencies.append(done[upload.pk] - started)
    return {
        "messages": len(latencies),
        "latency_min_s": round(min(latencies), 3),
        "latency_median_s": round(statistics.median(latencies), 3),
        "latency_max_s": round(max(latencies), 3),
    }


def python_consumer(uploads: list[Any], parallel: int, base_url: str) -> float:
    """Uploads per second through the Python Stage 1 consumer."""
    from django.conf import settings

    from django_cf_ingest.conf import get_settings
    from django_cf_ingest.consumer.stage1 import Stage1Handler
    from django_cf_ingest.consumer.worker import Worker
    from django_cf_ingest.queues.database import DatabaseBackend

    settings.CF_INGEST = {**settings.CF_INGEST, "INTERNAL_INGEST_BASE_URL": base_url}
    get_settings.cache_clear()
    backend = DatabaseBackend({"QUEUE": "bench-baseline"})
    ids = [u.pk for u in uploads]
    started = time.time()
    backend.enqueue_batch([{"uploadId": pk} for pk in ids])
    Worker(
        backend,
        Stage1Handler(concurrency=parallel),
        concurrency=parallel,
        batch_size=parallel,
        drain=True,
        poll_interval=0.05,
        relay=False,
    ).run()
    done = wait_processed(ids, 60)
    return len(ids) / (max(done.values()) - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--stage", type=int, choices=[1, 2], default=1)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--batch-timeout", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=6)
    parser.add_argument("--single", type=int, default=5, help="single-message runs")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cf-ingest-bench-"))
    setup_django(work / "var")
    from django.core.management import call_command
    from pytest_django.live_server_helper import LiveServer

    from tests.worker_runtime import WorkerRuntime, node_modules_present

    if not node_modules_present():
        raise SystemExit("node_modules is absent: run `npm ci` first")

    server = LiveServer("127.0.0.1")
    uploads = make_uploads(args.uploads, "burst")
    single = make_uploads(args.single, "single")
    baseline_uploads = make_uploads(args.uploads, "baseline")
    call_command(
        "cf_ingest_worker",
        str(work / "worker"),
        queue="bench-ingest",
        stage=args.stage,
        bucket="uploads",
        base_url=server.url,
        batch_size=args.batch_size,
        batch_timeout=args.batch_timeout,
        parallel=args.parallel,
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    runtime = WorkerRuntime(work / "worker", SECRET, work / "worker.log").start()
    try:
        if args.stage == 2:
            seed_r2(runtime, uploads + single)
            runtime.set_ai_reply({"output": {"response": answer_for(uploads[0])}})
        result = {
            "stage": args.stage,
            "max_batch_size": args.batch_size,
            "max_batch_timeout_s": args.batch_timeout,
            "parallel_messages": args.parallel,
            "burst": burst(runtime, uploads, args.timeout),
            "single": singles(runtime, single, args.timeout),
        }
        rate = python_consumer(baseline_uploads, args.parallel, server.url)
        result["baseline_python_stage1_uploads_per_second"] = round(rate, 1)
        result["burst_rate_vs_baseline"] = round(
            result["burst"]["uploads_per_second"] / rate, 2
        )
    finally:
        runtime.stop()
        server.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
