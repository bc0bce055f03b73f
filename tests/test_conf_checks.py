from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_cf_ingest import checks
from django_cf_ingest.conf import build_settings, get_settings
from django_cf_ingest.models import DocumentType
from django_cf_ingest.queues import load_backend


def test_unknown_key_is_named() -> None:
    with pytest.raises(ImproperlyConfigured, match="unknown key\\(s\\): QUEUES"):
        build_settings({"QUEUES": {}})


def test_comma_separated_lists_are_accepted() -> None:
    config = build_settings({"PROVIDER_CHAIN": "google, workers_ai"})

    assert config.PROVIDER_CHAIN == ("google", "workers_ai")


def test_empty_setting_is_the_embedded_default() -> None:
    config = build_settings(None)

    assert config.PROVIDER_CHAIN == ("ocr",)
    assert config.QUEUE["BACKEND"].endswith("database.DatabaseBackend")


def test_overrides_apply(ingest_settings: Any) -> None:
    ingest_settings(MAX_ATTEMPTS=9)

    assert get_settings().MAX_ATTEMPTS == 9


def test_bad_settings_become_a_check_error(settings: Any) -> None:
    settings.CF_INGEST = {"NOPE": 1}

    (message,) = checks.check_settings()

    assert message.id == "cf_ingest.E010"
    assert "NOPE" in message.msg


def test_missing_secret_is_a_warning(ingest_settings: Any) -> None:
    ingest_settings(INTERNAL_SECRETS=[])

    ids = [m.id for m in checks.check_settings()]

    assert "cf_ingest.W001" in ids


def test_unknown_provider_is_a_check_error(ingest_settings: Any) -> None:
    ingest_settings(PROVIDER_CHAIN=["nobody"])

    errors = [m for m in checks.check_settings() if m.id == "cf_ingest.E013"]

    assert errors
    assert "Unknown provider 'nobody'" in errors[0].msg


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"BACKEND": "django_cf_ingest.models.Upload"}, "not a QueueBackend"),
        ({"BACKEND": "no.such.Backend"}, "Cannot import"),
        ({"BACKEND": "django_cf_ingest.queues.database.DatabaseBackend", "X": 1}, "X"),
    ],
)
def test_bad_queue_settings(config: dict[str, Any], words: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=words):
        load_backend(config)


@pytest.mark.django_db
def test_document_type_without_schema_is_an_error() -> None:
    DocumentType.objects.create(slug="lost", name="Lost", schema="not-registered")

    errors = checks.check_document_types()

    assert [(e.id, e.obj) for e in errors] == [("cf_ingest.E001", "DocumentType lost")]
    assert isinstance(errors[0], Error)
    assert "register" in errors[0].hint
    with pytest.raises(SystemCheckError, match=r"cf_ingest\.E001"):
        call_command("check")


@pytest.mark.django_db
def test_inactive_document_type_without_schema_is_fine() -> None:
    DocumentType.objects.create(
        slug="old", name="Old", schema="not-registered", is_active=False
    )

    assert checks.check_document_types() == []


@pytest.mark.django_db
def test_registered_types_have_rows_after_migrate() -> None:
    slugs = set(DocumentType.objects.values_list("slug", flat=True))

    assert {
        "sixteen-personalities",
        "big-five",
        "keirsey",
        "riasec",
        "strengths-profile",
        "hexaco",
        "generic",
    } <= slugs
