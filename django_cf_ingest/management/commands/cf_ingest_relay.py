from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ... import outbox


class Command(BaseCommand):
    help = "Send pending outbox messages to the queue (once, or every few seconds)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--loop", action="store_true", help="Keep relaying until interrupted."
        )
        parser.add_argument("--interval", type=float, default=2.0)

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            sent = outbox.relay()
            if options["verbosity"] >= 1 and sent:
                self.stdout.write(f"relayed {sent} message(s)")
            if not options["loop"]:
                pending = outbox.pending_count()
                self.stdout.write(f"pending={pending}")
                return
            time.sleep(options["interval"])
