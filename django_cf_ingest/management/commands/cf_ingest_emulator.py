from __future__ import annotations

import contextlib
import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "Serve a local emulator of Cloudflare Queues' REST API (push, pull, ack, "
        "queues and consumers), optionally with injected faults."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        from ...emulator import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN

        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8787)
        parser.add_argument(
            "--queue",
            action="append",
            default=None,
            metavar="NAME",
            help="A queue with an HTTP pull consumer (repeatable; default ai-ingest).",
        )
        parser.add_argument(
            "--worker-queue",
            action="append",
            default=[],
            metavar="NAME",
            help="A queue whose consumer is a Worker (repeatable).",
        )
        parser.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
        parser.add_argument(
            "--token", default=DEFAULT_TOKEN, help="The API token clients must send."
        )
        parser.add_argument("--max-retries", type=int, default=3)
        parser.add_argument("--dead-letter-queue", default="", metavar="NAME")
        parser.add_argument("--retry-delay", type=float, default=0)
        parser.add_argument("--visibility-timeout-ms", type=int, default=30_000)
        parser.add_argument(
            "--fault-rate",
            type=float,
            default=0.0,
            help="Fraction of push, pull and ack requests answered 429 or 500.",
        )
        parser.add_argument(
            "--rate-limited-share",
            type=float,
            default=0.5,
            help="Share of the faults answered 429 (the rest 500).",
        )
        parser.add_argument("--retry-after", type=int, default=1)
        parser.add_argument("--delay-ms", type=float, default=0, help="Added latency.")
        parser.add_argument("--jitter-ms", type=float, default=0)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        from ...emulator import Emulator, EmulatorServer, FaultPolicy

        faults = FaultPolicy(
            rate=options["fault_rate"],
            rate_limited_share=options["rate_limited_share"],
            retry_after=options["retry_after"],
            delay_ms=options["delay_ms"],
            jitter_ms=options["jitter_ms"],
            seed=options["seed"],
        )
        emulator = Emulator(
            account_id=options["account_id"], token=options["token"], faults=faults
        )
        for name in options["queue"] or ["ai-ingest"]:
            emulator.add_queue(
                name,
                consumer="http_pull",
                max_retries=options["max_retries"],
                dead_letter_queue=options["dead_letter_queue"],
                retry_delay=options["retry_delay"],
                visibility_timeout_ms=options["visibility_timeout_ms"],
            )
        for name in options["worker_queue"]:
            emulator.add_queue(
                name,
                consumer="worker",
                max_retries=options["max_retries"],
                dead_letter_queue=options["dead_letter_queue"],
            )
        server = EmulatorServer(emulator, options["host"], options["port"]).bind()
        self.stdout.write(
            f"Cloudflare Queues emulator on {server.base_url} "
            f"(fault rate {faults.rate:g}, seed {faults.seed})"
        )
        for queue in emulator.broker.all_queues():
            kind = queue.consumer.type if queue.consumer else "no consumer"
            self.stdout.write(f"  queue {queue.name}: id {queue.id} ({kind})")
        self.stdout.write(
            "Point the site at it with:\n"
            f"  CF_API_BASE_URL={server.base_url}\n"
            f"  CF_ACCOUNT_ID={emulator.account_id}\n"
            f"  CF_AI_INGEST_QUEUE_ID={(options['queue'] or ['ai-ingest'])[0]}\n"
            "  CF_API_TOKEN=<the value of --token>"
        )
        self.stdout.flush()
        # Stop cleanly on SIGTERM too, as under a process manager.
        signal.signal(signal.SIGTERM, _interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
        self.stdout.write("stopped")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
