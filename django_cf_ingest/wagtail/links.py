"""URL names of the admin screens, so views can link to each other."""

from __future__ import annotations

from django.urls import reverse

#: URL namespaces of the viewsets (also their names).
UPLOADS = "cf_ingest_uploads"
DEAD_LETTERS = "cf_ingest_dead_letters"
USAGE = "cf_ingest_usage"


def upload_url(view: str, pk: int | None = None, *args: object) -> str:
    """The URL of an uploads view, e.g. ``upload_url("review", 12)``."""
    if pk is None:
        return reverse(f"{UPLOADS}:{view}")
    return reverse(f"{UPLOADS}:{view}", args=(pk, *args))


def dead_letters_url(view: str = "index") -> str:
    return reverse(f"{DEAD_LETTERS}:{view}")


def usage_url(view: str = "index") -> str:
    return reverse(f"{USAGE}:{view}")
