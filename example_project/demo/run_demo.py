"""``make demo``: the whole pipeline on the embedded default.

A fresh SQLite database and media folder under ``var/``, the sample documents
uploaded through the same service a host site calls, the consumer run until
the queue is drained, then a table of what was extracted, checked against the
values printed on the documents.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"


def _setup() -> Path:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    from example_project.settings import VAR_DIR

    database = VAR_DIR / "demo.sqlite3"
    for leftover in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(VAR_DIR / "media", ignore_errors=True)

    import django

    django.setup()
    return VAR_DIR


def _format_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(_format_value(v) for v in value)
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{k}: {_format_value(v)}" for k, v in value.items()) + "}"
        )
    text = str(value)
    return text if len(text) <= 70 else text[:67] + "..."


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return abs(float(expected) - float(actual)) < 1e-9
    return bool(expected == actual)


def main() -> int:
    var_dir = _setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from django_cf_ingest.models import Upload
    from django_cf_ingest.services import create_upload

    print("Migrating a fresh SQLite database ...", flush=True)
    call_command("migrate", verbosity=0, interactive=False)
    user_model = get_user_model()
    admin = user_model.objects.create_superuser(
        ADMIN_USER, "admin@example.com", ADMIN_PASSWORD
    )

    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text())
    print(f"Uploading {len(manifest)} sample documents ...", flush=True)
    expected_by_upload: dict[int, dict[str, Any]] = {}
    for entry in manifest:
        with open(SAMPLES_DIR / entry["file"], "rb") as handle:
            upload = create_upload(
                handle, entry["type"], name=entry["file"], uploaded_by=admin
            )
        expected_by_upload[upload.pk] = entry["expected"]

    from django_cf_ingest.queues import get_backend

    queue = type(get_backend()).__name__
    print(f"Running the consumer until the queue ({queue}) is drained ...", flush=True)
    started = time.monotonic()
    call_command(
        "cf_ingest_consume", drain=True, concurrency=2, poll_interval=0.2, verbosity=0
    )
    elapsed = time.monotonic() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    failures = _report(Upload, expected_by_upload)
    total_fields = sum(len(v) for v in expected_by_upload.values())
    print()
    print(
        f"{len(manifest)} documents in {elapsed:.1f} s "
        f"({len(manifest) / elapsed:.2f} documents/s), "
        f"peak memory {peak_rss_mb:.0f} MB; "
        f"{total_fields - failures}/{total_fields} fields as printed on the documents."
    )
    print()
    print("Review the results in the Wagtail admin:")
    print("  make run            # serves http://127.0.0.1:8000/admin/")
    print(f"  log in as {ADMIN_USER} / {ADMIN_PASSWORD}, then open Ingest > Uploads")
    print(f"  (database: {var_dir / 'demo.sqlite3'})")
    return 1 if failures else 0


def _report(upload_model: Any, expected_by_upload: dict[int, dict[str, Any]]) -> int:
    failures = 0
    header = f"{'upload':>6}  {'type':<22} {'status':<13} {'conf':>5}  fields"
    print()
    print(header)
    print("-" * len(header))
    uploads = upload_model.objects.filter(pk__in=expected_by_upload).select_related(
        "document_type"
    )
    for upload in uploads.order_by("pk"):
        extraction = upload.latest_extraction
        data = extraction.data if extraction else {}
        confidence = f"{extraction.confidence:.2f}" if extraction else "-"
        fields = []
        for name, expected in expected_by_upload[upload.pk].items():
            actual = data.get(name)
            mark = (
                ""
                if _same(expected, actual)
                else f" (expected {_format_value(expected)})"
            )
            failures += bool(mark)
            fields.append(f"{name}={_format_value(actual)}{mark}")
        if upload.status != "needs_review":
            failures += 1
        print(
            f"{upload.pk:>6}  {upload.document_type.slug:<22} {upload.status:<13} "
            f"{confidence:>5}  {fields[0] if fields else ''}"
        )
        for field in fields[1:]:
            print(f"{'':>6}  {'':<22} {'':<13} {'':>5}  {field}")
        if upload.last_error and upload.status != "needs_review":
            print(f"{'':>6}  error: {upload.last_error[:200]}")
    return failures


if __name__ == "__main__":
    sys.exit(main())
