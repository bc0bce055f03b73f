from __future__ import annotations

import io
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import close_old_connections
from django.utils import timezone

from django_cf_ingest.models import (
    Extraction,
    ProviderCall,
    Upload,
    UploadStatus,
)
from django_cf_ingest.pipeline import Result, claim, mark_dead, process_upload
from django_cf_ingest.services import create_upload, rerun_uploads

from . import fake_provider
from .conftest import make_png

FAKE = {"fake": {"BACKEND": "tests.fake_provider.FakeProvider"}}


@pytest.fixture
def fake_chain(ingest_settings: Any) -> None:
    ingest_settings(PROVIDERS=FAKE, PROVIDER_CHAIN=["fake"])
    fake_provider.calls.clear()


def new_upload(name: str = "a.png") -> Upload:
    return create_upload(io.BytesIO(make_png(name)), "big-five", name=name)


@pytest.mark.django_db
def test_successful_run_persists_extraction_and_ledger(fake_chain: None) -> None:
    upload = new_upload()

    outcome = process_upload(upload.pk)

    upload.refresh_from_db()
    extraction = Extraction.objects.get(upload=upload)
    call = ProviderCall.objects.get(upload=upload)
    assert outcome.result == Result.DONE
    assert outcome.extraction_id == extraction.pk
    assert upload.status == UploadStatus.NEEDS_REVIEW
    assert upload.attempts == 1
    assert extraction.is_valid
    assert extraction.data["openness"] == 1
    assert extraction.schema_version == upload.document_type.spec.schema_version
    assert extraction.confidence == 1.0
    assert (call.provider, call.model, call.status) == ("fake", "fake-1", "ok")
    assert (call.tokens_in, call.tokens_out) == (100, 20)
    assert call.extraction == extraction


@pytest.mark.django_db
def test_second_delivery_changes_nothing(fake_chain: None) -> None:
    upload = new_upload()
    process_upload(upload.pk)

    again = process_upload(upload.pk)

    assert again.result == Result.ALREADY_DONE
    assert Extraction.objects.filter(upload=upload).count() == 1
    assert ProviderCall.objects.filter(upload=upload).count() == 1
    assert fake_provider.calls["a.png"] == 1


@pytest.mark.django_db
def test_unknown_upload_is_not_found(fake_chain: None) -> None:
    assert process_upload(987654).result == Result.NOT_FOUND


@pytest.mark.django_db
def test_fresh_claim_makes_other_deliveries_wait(fake_chain: None) -> None:
    upload = new_upload()
    held = claim(upload.pk)

    outcome = process_upload(upload.pk)

    assert not isinstance(held, type(outcome))
    assert outcome.result == Result.BUSY
    assert fake_provider.calls["a.png"] == 0


@pytest.mark.django_db
def test_claim_of_a_crashed_delivery_is_taken_over(fake_chain: None) -> None:
    upload = new_upload()
    claim(upload.pk)
    Upload.objects.filter(pk=upload.pk).update(
        processing_started_at=timezone.now() - timedelta(hours=1)
    )

    outcome = process_upload(upload.pk)

    assert outcome.result == Result.DONE
    assert Upload.objects.get(pk=upload.pk).attempts == 2


@pytest.mark.django_db
def test_transient_failure_is_retried(ingest_settings: Any) -> None:
    ingest_settings(
        PROVIDERS={"fake": {**FAKE["fake"], "FAIL": "transient"}},
        PROVIDER_CHAIN=["fake"],
    )
    upload = new_upload()

    outcome = process_upload(upload.pk)

    upload.refresh_from_db()
    call = ProviderCall.objects.get(upload=upload)
    assert outcome.result == Result.RETRY
    assert outcome.retry_after == 1
    assert upload.status == UploadStatus.FAILED
    assert "fake outage" in upload.last_error
    assert (call.status, call.error_class) == ("error", "TransientProviderError")
    assert not Extraction.objects.exists()
    # Failed uploads run again on the next delivery.
    ingest_settings(PROVIDERS=FAKE)
    assert process_upload(upload.pk).result == Result.DONE


@pytest.mark.django_db
def test_permanent_failure_is_not_retried(ingest_settings: Any) -> None:
    ingest_settings(
        PROVIDERS={"fake": {**FAKE["fake"], "FAIL": "permanent"}},
        PROVIDER_CHAIN=["fake"],
    )
    upload = new_upload()

    outcome = process_upload(upload.pk)

    assert outcome.result == Result.FAILED
    assert outcome.error_code == "permanent"
    assert Upload.objects.get(pk=upload.pk).status == UploadStatus.FAILED


@pytest.mark.django_db
def test_missing_file_is_a_permanent_failure(fake_chain: None) -> None:
    upload = new_upload()
    upload.file.storage.delete(upload.file.name)

    outcome = process_upload(upload.pk)

    assert outcome.result == Result.FAILED
    assert "missing" in outcome.error


@pytest.mark.django_db
def test_low_confidence_can_requeue(ingest_settings: Any) -> None:
    ingest_settings(
        PROVIDERS={"fake": {**FAKE["fake"], "CONFIDENCE": 0.2}},
        PROVIDER_CHAIN=["fake"],
        REQUEUE_ON_LOW_CONFIDENCE=True,
        MAX_ATTEMPTS=2,
    )
    upload = new_upload()

    first = process_upload(upload.pk)
    second = process_upload(upload.pk)

    assert first.result == Result.RETRY
    assert first.error_code == "low_confidence"
    # On the last attempt the best answer is kept for review.
    assert second.result == Result.DONE
    assert second.confidence == pytest.approx(0.2)
    assert ProviderCall.objects.filter(upload=upload).count() == 2


@pytest.mark.django_db
def test_rerun_keeps_corrections(fake_chain: None, django_user_model: Any) -> None:
    upload = new_upload()
    process_upload(upload.pk)
    editor = django_user_model.objects.create(username="editor")
    upload.corrections.create(field="openness", value=55, editor=editor)

    rerun_uploads([upload])
    outcome = process_upload(upload.pk)

    upload.refresh_from_db()
    assert outcome.result == Result.DONE
    assert upload.extractions.count() == 2
    assert upload.corrected_data()["openness"] == 55
    assert upload.latest_extraction.data["openness"] == 1


@pytest.mark.django_db
def test_mark_dead_leaves_finished_uploads_alone(fake_chain: None) -> None:
    done = new_upload("done.png")
    process_upload(done.pk)
    stuck = new_upload("stuck.png")

    assert not mark_dead(done.pk, "gave up", 5)
    assert mark_dead(stuck.pk, "gave up", 5)

    assert Upload.objects.get(pk=done.pk).status == UploadStatus.NEEDS_REVIEW
    stuck.refresh_from_db()
    assert (stuck.status, stuck.attempts, stuck.last_error) == ("dead", 5, "gave up")


@pytest.mark.django_db(transaction=True)
def test_racing_deliveries_produce_one_extraction(ingest_settings: Any) -> None:
    ingest_settings(
        PROVIDERS={"fake": {**FAKE["fake"], "DELAY": 0.2}}, PROVIDER_CHAIN=["fake"]
    )
    fake_provider.calls.clear()
    upload = new_upload("race.png")
    results: list[Result] = []

    def deliver() -> None:
        try:
            results.append(process_upload(upload.pk).result)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count(Result.DONE) == 1
    assert set(results) <= {Result.DONE, Result.BUSY}
    assert Extraction.objects.filter(upload=upload).count() == 1
    assert ProviderCall.objects.filter(upload=upload).count() == 1
    assert fake_provider.calls["race.png"] == 1
