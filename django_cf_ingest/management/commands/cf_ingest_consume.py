from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...conf import get_settings
from ...consumer.handlers import Handler, InProcessHandler
from ...consumer.worker import Worker
from ...queues import get_backend

VERBOSITY_LEVELS = {
    0: logging.WARNING,
    1: logging.INFO,
    2: logging.DEBUG,
    3: logging.DEBUG,
}


class Command(BaseCommand):
    help = "Consume ingest messages from the configured queue and process uploads."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stage",
            choices=["1", "2"],
            help="1: POST each upload to the internal ingest endpoint. "
            "2: edge extraction (meta, storage, Workers AI, complete). "
            "Default: run the pipeline in this process, or stage 2 when "
            "USE_EDGE_INGEST is on.",
        )
        parser.add_argument(
            "--in-process",
            action="store_true",
            help="Run the pipeline in this process (the default without --stage).",
        )
        parser.add_argument("--concurrency", type=int, default=4)
        parser.add_argument(
            "--batch-size", type=int, default=None, help="Messages per receive call."
        )
        parser.add_argument(
            "--visibility-timeout",
            type=float,
            default=None,
            help="Lease length in seconds (default: PROCESSING_TIMEOUT).",
        )
        parser.add_argument(
            "--drain", action="store_true", help="Exit when the queue is empty."
        )
        parser.add_argument("--max-messages", type=int, default=None)
        parser.add_argument("--poll-interval", type=float, default=1.0)
        parser.add_argument(
            "--no-relay",
            action="store_true",
            help="Do not relay the outbox from this process.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._configure_logging(options["verbosity"])
        backend = get_backend()
        if not backend.can_receive:
            raise CommandError(
                f"The queue backend {type(backend).__name__} cannot be consumed "
                "from here; it delivers to its own workers."
            )
        try:
            handler = self._handler(options)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        worker = Worker(
            backend,
            handler,
            concurrency=options["concurrency"],
            batch_size=options["batch_size"] or min(options["concurrency"], 100),
            visibility_timeout=options["visibility_timeout"],
            drain=options["drain"],
            max_messages=options["max_messages"],
            poll_interval=options["poll_interval"],
            relay=not options["no_relay"],
        )
        worker.install_signal_handlers()
        try:
            stats = worker.run()
        finally:
            backend.close()
        if options["verbosity"] >= 1:
            self.stdout.write(stats.summary())

    def _handler(self, options: dict[str, Any]) -> Handler:
        stage = options["stage"]
        if options["in_process"]:
            if stage:
                raise CommandError("--in-process and --stage exclude each other.")
            return InProcessHandler()
        if stage is None and get_settings().USE_EDGE_INGEST:
            stage = "2"
        if stage == "1":
            from ...consumer.stage1 import Stage1Handler

            return Stage1Handler(concurrency=options["concurrency"])
        if stage == "2":
            from ...consumer.stage2 import Stage2Handler

            return Stage2Handler(concurrency=options["concurrency"])
        return InProcessHandler()

    def _configure_logging(self, verbosity: int) -> None:
        level = VERBOSITY_LEVELS.get(verbosity, logging.DEBUG)
        logger = logging.getLogger("django_cf_ingest")
        logger.setLevel(level)
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
            )
            logger.addHandler(handler)
