from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...queues import get_backend
from ...queues.diagnose import diagnose


class Command(BaseCommand):
    help = (
        "Check that the queue configuration, the API token and the queue are "
        "usable; print the backlog and the queue's consumers."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Exit with status 2 when there are warnings.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            backend = get_backend()
        except ImproperlyConfigured as exc:
            raise CommandError(f"{exc} Fix CF_INGEST['QUEUE'].") from exc
        try:
            report = diagnose(backend)
        finally:
            backend.close()
        for line in report.lines:
            self.stdout.write(line)
        for warning in report.warnings:
            self.stdout.write(self.style.WARNING(f"WARNING: {warning}"))
        if report.errors:
            raise CommandError("\n".join(report.errors))
        if report.warnings and options["strict"]:
            raise CommandError(f"{len(report.warnings)} warning(s).", returncode=2)
        summary = (
            f"OK with {len(report.warnings)} warning(s)" if report.warnings else "OK"
        )
        self.stdout.write(self.style.SUCCESS(summary))
