from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...cloudflare_worker import (
    DEFAULT_NAME,
    SECRETS,
    WorkerConfigError,
    existing_files,
    options_from_settings,
    write_worker,
)
from ...conf import get_settings


class Command(BaseCommand):
    help = (
        "Write the Cloudflare Worker that consumes the ingest queue into a "
        "folder, with a wrangler.toml filled in from the settings. No secret "
        "is written; the command prints the ones to set with wrangler."
    )
    # It only writes files; the providers need not be importable here.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", help="Folder to write the Worker into.")
        parser.add_argument("--name", help=f"Worker name (default {DEFAULT_NAME}).")
        parser.add_argument(
            "--queue", help="Ingest queue name (default: from CF_INGEST['QUEUE'])."
        )
        parser.add_argument(
            "--dlq", help="Dead-letter queue name (default: <queue>-dlq)."
        )
        parser.add_argument(
            "--bucket",
            help="R2 bucket of the uploads, for Stage 2 (default: the upload "
            "storage's bucket_name).",
        )
        parser.add_argument(
            "--stage",
            type=int,
            choices=[1, 2],
            help="1: the site extracts; 2: the Worker extracts with Workers AI "
            "(default: 2 when USE_EDGE_INGEST is on).",
        )
        parser.add_argument(
            "--base-url",
            help="The site's root URL as the Worker reaches it "
            "(default: INTERNAL_INGEST_BASE_URL).",
        )
        parser.add_argument("--batch-size", type=int, help="max_batch_size, 1-100.")
        parser.add_argument(
            "--batch-timeout", type=int, help="max_batch_timeout in seconds, 0-60."
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            help="max_concurrency, 1-250 (default: unset, so the consumer autoscales).",
        )
        parser.add_argument(
            "--parallel",
            type=int,
            help="Messages of a batch one invocation processes at once (default 6).",
        )
        parser.add_argument(
            "--force", action="store_true", help="Replace files already there."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        target = Path(options["directory"]).expanduser()
        try:
            worker = options_from_settings(
                get_settings(),
                name=options["name"],
                queue=options["queue"],
                dead_letter_queue=options["dlq"],
                bucket=options["bucket"],
                stage=options["stage"],
                base_url=options["base_url"],
                max_batch_size=options["batch_size"],
                max_batch_timeout=options["batch_timeout"],
                max_concurrency=options["concurrency"],
                parallel_messages=options["parallel"],
            )
        except WorkerConfigError as exc:
            raise CommandError(str(exc)) from exc
        if target.exists() and not target.is_dir():
            raise CommandError(f"{target} exists and is not a folder.")
        clashes = existing_files(target)
        if clashes and not options["force"]:
            names = ", ".join(str(path.relative_to(target)) for path in clashes)
            raise CommandError(
                f"{target} already holds {names}; pass --force to replace them."
            )

        write_worker(target, worker)
        for note in worker.warnings():
            self.stderr.write(self.style.WARNING(f"Warning: {note}"))
        folder = shlex.quote(str(target))
        lines = [
            self.style.SUCCESS(
                f"Wrote the Stage {worker.stage} Worker {worker.name!r} to {target}: "
                f"queue {worker.queue!r}, dead-letter queue "
                f"{worker.dead_letter_queue!r}"
                + (f", R2 bucket {worker.bucket!r}." if worker.stage == 2 else ".")
            ),
            "",
            "Create the queues, if they do not exist yet:",
            f"  npx wrangler queues create {worker.queue}",
            f"  npx wrangler queues create {worker.dead_letter_queue}",
            "Set the secret (one of the site's INTERNAL_SECRETS; wrangler asks "
            "for the value, which is never written to a file):",
            *(f"  cd {folder} && npx wrangler secret put {name}" for name in SECRETS),
            "Deploy:",
            f"  cd {folder} && npx wrangler deploy",
        ]
        self.stdout.write("\n".join(lines))
