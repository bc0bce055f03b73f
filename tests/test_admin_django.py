"""The Django admin: every model registered, machine records read-only,
re-run, replay and approve as actions, and no need for Wagtail."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.client import RequestFactory

from django_cf_ingest.models import (
    Correction,
    DocumentType,
    Extraction,
    OutboxMessage,
    ProviderCall,
    QueueMessage,
    Upload,
    UploadStatus,
)

from .admin_factories import BIG_FIVE, add_run, make_upload, make_user
from .conftest import make_png

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
CHANGELIST = "/django-admin/cf_ingest/upload/"


def staff(*perms: str) -> Any:
    user = make_user("staff", *perms)
    user.is_staff = True
    user.save()
    return user


def superuser_client() -> tuple[Any, Client]:
    user = make_user("root", superuser=True)
    client = Client()
    client.force_login(user)
    return user, client


def test_every_model_is_registered() -> None:
    models = set(apps.get_app_config("cf_ingest").get_models())

    assert models <= set(admin.site._registry)


@pytest.mark.parametrize(
    "model", [Extraction, ProviderCall, OutboxMessage, QueueMessage, Correction]
)
def test_machine_records_are_read_only(model: type) -> None:
    user, client = superuser_client()
    make_upload()  # An outbox row and, once relayed, a queue row.
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/")
    request.user = user

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    opts = model._meta
    base = f"/django-admin/{opts.app_label}/{opts.model_name}/"
    assert client.get(base).status_code == 200
    assert client.get(f"{base}add/").status_code == 403


def test_upload_pages_render_with_runs_and_corrections() -> None:
    _, client = superuser_client()
    upload = make_upload()
    add_run(upload, confidence=0.81)
    Correction.objects.create(upload=upload, field="openness", value=40.0)

    listing = client.get(CHANGELIST)
    page = client.get(f"{CHANGELIST}{upload.pk}/change/")

    assert listing.status_code == 200
    assert "81%" in listing.content.decode()
    assert page.status_code == 200
    content = page.content.decode()
    assert "gemini-2.5-flash" in content
    assert "openness" in content
    assert f"/django-admin/cf_ingest/upload/{upload.pk}/file/" in content
    assert "/media/" not in content


def test_adding_an_upload_checks_the_file_and_queues_it() -> None:
    user, client = superuser_client()
    big_five = DocumentType.objects.get(slug="big-five")

    bad = client.post(
        f"{CHANGELIST}add/",
        {"document_type": big_five.pk, "file": SimpleUploadedFile("a.txt", b"text")},
    )
    good = client.post(
        f"{CHANGELIST}add/",
        {
            "document_type": big_five.pk,
            "file": SimpleUploadedFile("scan.png", make_png("scan")),
        },
    )

    assert bad.status_code == 200
    assert "The file is not a supported image or PDF." in bad.content.decode()
    assert good.status_code == 302
    upload = Upload.objects.get()
    assert (upload.original_name, upload.uploaded_by) == ("scan.png", user)
    assert OutboxMessage.objects.filter(upload=upload).count() == 1


def test_correction_added_inline_is_attributed() -> None:
    user, client = superuser_client()
    upload = make_upload()
    add_run(upload)

    response = client.post(
        f"{CHANGELIST}{upload.pk}/change/",
        {
            "corrections-TOTAL_FORMS": "1",
            "corrections-INITIAL_FORMS": "0",
            "corrections-0-field": "openness",
            "corrections-0-value": "47",
            "corrections-0-upload": upload.pk,
            "extractions-TOTAL_FORMS": "0",
            "extractions-INITIAL_FORMS": "1",
            "provider_calls-TOTAL_FORMS": "0",
            "provider_calls-INITIAL_FORMS": "1",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    correction = Correction.objects.get(upload=upload)
    assert (correction.field, correction.value, correction.editor) == (
        "openness",
        47,
        user,
    )
    assert upload.corrected_data() == {**BIG_FIVE, "openness": 47}


def test_rerun_and_replay_actions() -> None:
    _, client = superuser_client()
    reviewed = make_upload("reviewed.png")
    add_run(reviewed)
    Correction.objects.create(upload=reviewed, field="openness", value=40.0)
    dead = make_upload("dead.png", status=UploadStatus.DEAD)

    client.post(
        CHANGELIST,
        {"action": "replay", "_selected_action": [reviewed.pk, dead.pk]},
    )
    assert Upload.objects.get(pk=dead.pk).status == UploadStatus.QUEUED
    assert Upload.objects.get(pk=reviewed.pk).status == UploadStatus.NEEDS_REVIEW

    client.post(CHANGELIST, {"action": "rerun", "_selected_action": [reviewed.pk]})
    reviewed.refresh_from_db()
    assert reviewed.status == UploadStatus.QUEUED
    assert reviewed.corrected_data()["openness"] == 40.0


def test_approve_action_approves_finished_runs() -> None:
    _, client = superuser_client()
    finished = make_upload("finished.png")
    queued = make_upload("queued.png", status=UploadStatus.QUEUED)

    client.post(
        CHANGELIST,
        {"action": "approve", "_selected_action": [finished.pk, queued.pk]},
    )

    assert Upload.objects.get(pk=finished.pk).status == UploadStatus.APPROVED
    assert Upload.objects.get(pk=queued.pk).status == UploadStatus.QUEUED


def test_actions_follow_permissions() -> None:
    viewer = staff("cf_ingest.view_upload")
    model_admin = admin.site._registry[Upload]
    request = RequestFactory().get(CHANGELIST)
    request.user = viewer

    assert set(model_admin.get_actions(request)) == set()

    viewer.user_permissions.add(
        *make_user("x", "cf_ingest.replay_upload").user_permissions.all()
    )
    request.user = type(viewer).objects.get(pk=viewer.pk)
    assert set(model_admin.get_actions(request)) == {"rerun", "replay"}


def test_file_view_checks_the_view_permission() -> None:
    upload = make_upload()
    viewer = staff("cf_ingest.view_upload")
    client = Client()
    client.force_login(viewer)
    url = f"{CHANGELIST}{upload.pk}/file/"

    allowed = client.get(url)
    viewer.user_permissions.clear()
    refused = client.get(url)

    assert allowed.status_code == 200
    assert allowed["Content-Type"] == "image/png"
    assert refused.status_code == 403


def test_the_app_and_its_django_admin_work_without_wagtail() -> None:
    script = textwrap.dedent(
        """
        import sys

        class NoWagtail:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("wagtail", "modelcluster", "taggit"):
                    raise ModuleNotFoundError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, NoWagtail())

        import django
        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import Client

        call_command("check", fail_level="ERROR")
        call_command("migrate", verbosity=0)
        user = get_user_model().objects.create_superuser("root", "r@x.org", "pw")
        client = Client()
        client.force_login(user)
        for path in ("cf_ingest/upload/", "cf_ingest/providercall/"):
            response = client.get("/django-admin/" + path)
            assert response.status_code == 200, (path, response.status_code)
        assert "wagtail" not in sys.modules
        print("ok")
        """
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_without_wagtail",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("CF_INGEST_TEST_DB_NAME", None)

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
