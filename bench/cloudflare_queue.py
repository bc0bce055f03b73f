"""Throughput of the Cloudflare Queues backend against the local emulator, as
ratios to the embedded database queue doing the same work in this process.

    .venv/bin/python bench/cloudflare_queue.py [--uploads 2000]
        [--concurrency 8] [--latency-ms 0 25]

Two measurements per queue backend, on one SQLite database:

- producer: uploads created in one transaction (their outbox rows relayed
  later), then ``outbox.relay()`` publishes them; messages per second and,
  for Cloudflare, requests per 1,000 messages;
- consumer end to end: ``cf_ingest_consume``'s worker with the in-process
  handler and an instant fake provider drains them (pull, claim, run,
  extraction, ack); uploads per second and requests per 1,000 messages.

The emulator runs in this process on 127.0.0.1 and validates every request
and response against the OpenAPI description, so its own cost is part of
the Cloudflare figures; ``--latency-ms`` adds a fixed delay to every request
to stand in for the network between a site and Cloudflare.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ACCOUNT_ID = "5f0c3e2a9b8d4c1e8f7a6b5c4d3e2f1a"
TOKEN = "bench-token-0123456789"
QUEUE = "ai-ingest"


@dataclass
class Figures:
    label: str
    produce_rate: float
    produce_requests: int
    consume_rate: float
    consume_requests: int
    messages: int
    pulls: int = 0
    acks: int = 0

    def per_thousand(self, requests: int) -> float:
        return requests * 1000 / self.messages


def setup_django(var_dir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["CF_INGEST_VAR_DIR"] = str(var_dir)
    os.environ["CF_INGEST_LOG_LEVEL"] = "WARNING"
    os.environ["CF_INGEST_TEST_OVERRIDES"] = json.dumps(
        {
            "PROVIDERS": {"fake": {"BACKEND": "tests.fake_provider.FakeProvider"}},
            "PROVIDER_CHAIN": ["fake"],
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def clear() -> None:
    from django_cf_ingest.models import (
        Extraction,
        OutboxMessage,
        ProviderCall,
        QueueMessage,
        Upload,
    )

    for model in (ProviderCall, Extraction, OutboxMessage, QueueMessage, Upload):
        model.objects.all().delete()


def create_uploads(count: int) -> None:
    """Uploads and their outbox rows, committed but not relayed yet."""
    from django.db import transaction

    from django_cf_ingest import outbox
    from tests.cloudflare_support import shared_file_uploads

    with mock.patch.object(outbox, "_relay_after_commit"), transaction.atomic():
        shared_file_uploads(count)


def measure(
    label: str, queue: dict[str, Any], count: int, concurrency: int, emulator: Any
) -> Figures:
    from django.test import override_settings

    from django_cf_ingest import outbox
    from django_cf_ingest.conf import get_settings
    from django_cf_ingest.consumer.handlers import InProcessHandler
    from django_cf_ingest.consumer.worker import Worker
    from django_cf_ingest.models import Extraction
    from django_cf_ingest.queues import get_backend

    settings = {**dict(_current_ingest()), "QUEUE": queue}
    with override_settings(CF_INGEST=settings):
        assert queue == get_settings().QUEUE
        clear()
        create_uploads(count)
        if emulator is not None:
            emulator.clear_records()

        started = time.perf_counter()
        sent = outbox.relay()
        produce_seconds = time.perf_counter() - started
        assert sent == count, (sent, count)
        produce_requests = len(emulator.recorded()) if emulator else 0
        if emulator is not None:
            emulator.clear_records()

        worker = Worker(
            get_backend(),
            InProcessHandler(),
            concurrency=concurrency,
            batch_size=concurrency,
            drain=True,
            poll_interval=0.05,
            relay=False,
            progress_every=3600,
        )
        started = time.perf_counter()
        worker.run()
        get_backend().close()
        consume_seconds = time.perf_counter() - started
        assert Extraction.objects.count() == count
        consume_requests = len(emulator.recorded()) if emulator else 0
        pulls = len(emulator.recorded("queues-pull-messages")) if emulator else 0
        acks = len(emulator.recorded("queues-ack-messages")) if emulator else 0
    return Figures(
        label,
        count / produce_seconds,
        produce_requests,
        count / consume_seconds,
        consume_requests,
        count,
        pulls,
        acks,
    )


def _current_ingest() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.CF_INGEST)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--latency-ms", type=float, nargs="*", default=[0.0, 25.0], metavar="MS"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cf-queue-bench-") as tmp:
        setup_django(Path(tmp))
        from django_cf_ingest.emulator import Emulator, FaultPolicy

        database = {"BACKEND": "django_cf_ingest.queues.database.DatabaseBackend"}
        baseline = measure(
            "database queue", database, args.uploads, args.concurrency, None
        )
        results = []
        for latency in args.latency_ms:
            emulator = Emulator(
                account_id=ACCOUNT_ID,
                token=TOKEN,
                faults=FaultPolicy(delay_ms=latency),
            )
            emulator.add_queue(QUEUE, max_retries=10)
            with emulator.serve() as server:
                queue = {
                    "BACKEND": "django_cf_ingest.queues.cloudflare.CloudflareBackend",
                    "OPTIONS": {
                        "ACCOUNT_ID": ACCOUNT_ID,
                        "API_TOKEN": TOKEN,
                        "QUEUE": emulator.queue(QUEUE).id,
                        "API_BASE_URL": server.base_url,
                    },
                }
                label = f"cloudflare (emulator, +{latency:g} ms)"
                results.append(
                    measure(label, queue, args.uploads, args.concurrency, emulator)
                )
            assert emulator.errors == []

    print(
        f"{args.uploads} uploads, consumer concurrency {args.concurrency}, "
        "SQLite, instant fake provider"
    )
    print(
        f"baseline {baseline.label}: producer {baseline.produce_rate:,.0f} msg/s, "
        f"consumer {baseline.consume_rate:,.1f} uploads/s"
    )
    header = (
        f"{'backend':<32} {'produce msg/s':>13} {'x base':>7} {'req/1k':>7} "
        f"{'consume/s':>10} {'x base':>7} {'req/1k':>7}"
    )
    print(header)
    for row in results:
        print(
            f"{row.label:<32} {row.produce_rate:>13,.0f} "
            f"{row.produce_rate / baseline.produce_rate:>7.2f} "
            f"{row.per_thousand(row.produce_requests):>7.1f} "
            f"{row.consume_rate:>10,.1f} "
            f"{row.consume_rate / baseline.consume_rate:>7.2f} "
            f"{row.per_thousand(row.consume_requests):>7.1f}"
            f"  (pull {row.per_thousand(row.pulls):.0f}, "
            f"ack {row.per_thousand(row.acks):.0f})"
        )


if __name__ == "__main__":
    main()
