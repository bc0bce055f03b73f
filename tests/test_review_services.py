"""Corrections, review and discarding, as the admin screens use them."""

from __future__ import annotations

from typing import Any

import pytest

from django_cf_ingest.models import Correction, Upload, UploadStatus
from django_cf_ingest.pipeline import process_upload
from django_cf_ingest.services import correct, discard_uploads, rerun_uploads

from . import fake_provider
from .admin_factories import BIG_FIVE, add_run, make_upload, make_user

pytestmark = pytest.mark.django_db


def test_correct_records_only_changed_fields_with_editor() -> None:
    editor = make_user("ed")
    upload = make_upload()
    add_run(upload)

    rows = correct(upload, {**BIG_FIVE, "openness": 48.0}, user=editor)

    assert [(r.field, r.value, r.editor) for r in rows] == [("openness", 48.0, editor)]
    assert upload.corrected_data()["openness"] == 48.0
    assert upload.latest_extraction is not None
    assert upload.latest_extraction.data["openness"] == 42.0


def test_correct_twice_keeps_history_and_latest_wins() -> None:
    upload = make_upload()
    add_run(upload)
    correct(upload, {"openness": 48.0})

    correct(upload, {"openness": 50.0})
    unchanged = correct(upload, {"openness": 50.0})

    assert unchanged == []
    assert list(
        Correction.objects.filter(upload=upload)
        .order_by("created_at", "id")
        .values_list("value", flat=True)
    ) == [48.0, 50.0]
    assert upload.current_corrections() == {"openness": 50.0}


def test_correct_skips_blank_values_for_fields_the_machine_did_not_read() -> None:
    upload = make_upload(document_type="keirsey")
    add_run(upload, {"type_code": "ENFP", "temperament": "Idealist"})

    rows = correct(upload, {"type_code": "ENFP", "summary": ""})

    assert rows == []


def test_a_rerun_keeps_corrections(ingest_settings: Any) -> None:
    ingest_settings(
        PROVIDERS={"fake": {"BACKEND": "tests.fake_provider.FakeProvider"}},
        PROVIDER_CHAIN=["fake"],
    )
    fake_provider.calls.clear()
    upload = make_upload(status=UploadStatus.NEEDS_REVIEW)
    add_run(upload)
    correct(upload, {"openness": 48.0})

    assert rerun_uploads([upload], chain=["fake"]) == 1
    process_upload(upload.pk)

    upload.refresh_from_db()
    latest = upload.latest_extraction
    assert latest is not None
    assert latest.provider == "fake"
    assert upload.extractions.count() == 2
    # The new run read other values; the correction still wins.
    assert latest.data["openness"] != 48.0
    assert upload.corrected_data()["openness"] == 48.0
    assert upload.corrected_data()["neuroticism"] == latest.data["neuroticism"]


def test_discard_only_dead_and_failed_and_replay_clears_it() -> None:
    editor = make_user("ed")
    dead = make_upload("dead.png", status=UploadStatus.DEAD, last_error="gave up")
    failed = make_upload("failed.png", status=UploadStatus.FAILED)
    fine = make_upload("fine.png", status=UploadStatus.NEEDS_REVIEW)

    count = discard_uploads([dead, failed, fine], reason="  duplicate  ", user=editor)

    assert count == 2
    dead.refresh_from_db()
    fine.refresh_from_db()
    assert dead.status == UploadStatus.DEAD
    assert dead.discard_reason == "duplicate"
    assert dead.discarded_by == editor
    assert dead.discarded_at is not None
    assert fine.discarded_at is None

    rerun_uploads([dead])
    dead.refresh_from_db()
    assert dead.status == UploadStatus.QUEUED
    assert (dead.discarded_at, dead.discard_reason, dead.discarded_by) == (
        None,
        "",
        None,
    )


def test_discard_needs_a_reason() -> None:
    dead = make_upload(status=UploadStatus.DEAD)

    with pytest.raises(ValueError, match="reason"):
        discard_uploads([dead], reason="   ")

    assert Upload.objects.get(pk=dead.pk).discarded_at is None


def test_rerun_of_many_uploads_enqueues_in_batches(monkeypatch: Any) -> None:
    from django_cf_ingest import services

    document_type = make_upload().document_type
    Upload.objects.bulk_create(
        Upload(
            file=f"cf_ingest/many/{n}.png",
            original_name=f"{n}.png",
            document_type=document_type,
            content_type="image/png",
            size=1,
            sha256=f"{n:064d}",
            status=UploadStatus.DEAD,
        )
        for n in range(1001)
    )
    batches: list[int] = []
    enqueue = services.enqueue_uploads

    def recording(uploads: Any, **kwargs: Any) -> None:
        uploads = list(uploads)
        batches.append(len(uploads))
        enqueue(uploads, **kwargs)

    monkeypatch.setattr(services, "enqueue_uploads", recording)

    count = rerun_uploads(Upload.objects.filter(status=UploadStatus.DEAD))

    assert count == 1001
    assert batches == [500, 500, 1]
    assert Upload.objects.filter(status=UploadStatus.QUEUED).count() == 1001
