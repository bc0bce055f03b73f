"""The edge extraction endpoints: ``GET meta/<id>`` and ``POST complete``."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_cf_ingest.models import (
    Extraction,
    ProviderCall,
    Stage,
    Upload,
    UploadStatus,
)
from django_cf_ingest.registry import get_spec

from .stage2_support import (
    BIG_FIVE,
    MODEL,
    Internal,
    error_code,
    new_upload,
    report,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> Internal:
    return Internal()


def claimed(api: Internal, upload: Upload | None = None) -> dict[str, Any]:
    upload = upload or new_upload()
    response = api.meta(upload.pk)
    assert response.status_code == 200, response.content
    return dict(response.json())


# meta ---------------------------------------------------------------------------


def test_meta_claims_the_upload_and_describes_the_run(
    api: Internal, ingest_settings: Any
) -> None:
    ingest_settings(MAX_TOKENS=1800)
    upload = new_upload()

    response = api.meta(upload.pk)

    upload.refresh_from_db()
    meta = response.json()
    spec = get_spec("big-five")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    assert upload.status == UploadStatus.PROCESSING
    assert upload.attempts == 1
    assert meta == {
        "uploadId": upload.pk,
        "done": False,
        "storageKey": upload.file.name,
        "mime": "image/png",
        "size": upload.size,
        "sha256": upload.sha256,
        "typeId": upload.document_type_id,
        "typeSlug": "big-five",
        "instructions": upload.document_type.instructions,
        "schema": spec.json_schema,
        "schemaVersion": spec.schema_version,
        "model": MODEL,
        "maxTokens": 1800,
        "jsonMode": True,
        "deliveryToken": upload.delivery_token,
        "attempt": 1,
    }


def test_meta_reveals_only_the_asked_upload(api: Internal) -> None:
    first, second = new_upload(name="one.png"), new_upload(name="two.png")

    meta = claimed(api, second)

    assert meta["storageKey"] == second.file.name
    assert first.file.name not in json.dumps(meta)


def test_meta_of_an_upload_being_processed_is_busy(api: Internal) -> None:
    upload = new_upload()
    claimed(api, upload)

    response = api.meta(upload.pk)

    assert response.status_code == 409
    assert error_code(response) == "busy"
    assert int(response["Retry-After"]) > 0
    assert "storageKey" not in response.json()


def test_meta_of_a_finished_upload_says_done(api: Internal) -> None:
    upload = new_upload()
    meta = claimed(api, upload)
    api.complete(report(meta, resultsJson=BIG_FIVE))

    response = api.meta(upload.pk)

    body = response.json()
    assert response.status_code == 200
    assert body["done"] is True
    assert body["status"] == "already_done"
    assert "storageKey" not in body
    assert "deliveryToken" not in body
    assert Upload.objects.get(pk=upload.pk).attempts == 1


@pytest.mark.parametrize(
    ("upload_id", "status", "code"),
    [("987654", 404, "unknown_upload"), ("abc", 400, "bad_upload_id")],
)
def test_meta_of_unknown_or_malformed_ids(
    api: Internal, upload_id: str, status: int, code: str
) -> None:
    response = api.meta(upload_id)
    assert response.status_code == status
    assert error_code(response) == code


@pytest.mark.parametrize(
    ("secret", "status", "code"),
    [("", 401, "missing_secret"), ("wrong-secret-0123456789", 403, "bad_secret")],
)
def test_endpoints_refuse_a_wrong_secret(secret: str, status: int, code: str) -> None:
    upload = new_upload()
    meta = claimed(Internal(), upload)
    stranger = Internal(secret)

    answers = [stranger.meta(upload.pk), stranger.complete(report(meta, rawText="{}"))]

    assert [(r.status_code, error_code(r)) for r in answers] == [(status, code)] * 2
    upload.refresh_from_db()
    assert upload.status == UploadStatus.PROCESSING
    assert upload.attempts == 1
    assert not Extraction.objects.exists()


def test_meta_is_get_only_and_complete_post_only(api: Internal) -> None:
    upload = new_upload()
    headers = api.headers()

    post_meta = api.client.post(f"/internal/ingest/meta/{upload.pk}", headers=headers)
    get_complete = api.client.get("/internal/ingest/complete", headers=headers)

    assert (post_meta.status_code, post_meta["Allow"]) == (405, "GET")
    assert (get_complete.status_code, get_complete["Allow"]) == (405, "POST")


# complete: success and replays ----------------------------------------------------


def test_complete_with_json_in_prose_persists_like_stage_1(api: Internal) -> None:
    upload = new_upload()
    meta = claimed(api, upload)
    text = "Here it is:\n```json\n" + json.dumps(BIG_FIVE) + "\n```\nAnything else?"

    response = api.complete(report(meta, rawText=text, latencyMs=5400))

    body = response.json()
    upload.refresh_from_db()
    extraction = Extraction.objects.get(upload=upload)
    call = ProviderCall.objects.get(upload=upload)
    assert response.status_code == 200
    assert body["status"] == "done"
    assert body["valid"] is True
    assert body["retry"] is False
    assert body["extractionId"] == extraction.pk
    assert upload.status == UploadStatus.NEEDS_REVIEW
    assert upload.processing_started_at is None
    assert extraction.data == BIG_FIVE
    assert extraction.stage == Stage.STAGE2
    assert extraction.delivery_token == meta["deliveryToken"]
    assert extraction.raw_response == {"text": text}
    assert (call.stage, call.status, call.purpose) == (Stage.STAGE2, "ok", "primary")
    assert (call.tokens_in, call.tokens_out, call.latency_ms) == (1620, 48, 5400)
    assert call.extraction == extraction
    assert (call.provider, call.model) == ("workers_ai", MODEL)


def test_complete_takes_results_as_an_object(api: Internal) -> None:
    meta = claimed(api)

    response = api.complete(report(meta, resultsJson=BIG_FIVE))

    extraction = Extraction.objects.get()
    assert response.json()["valid"] is True
    assert extraction.data == BIG_FIVE
    assert extraction.raw_response == {"text": json.dumps(BIG_FIVE)}


def test_complete_replayed_after_success_adds_nothing(api: Internal) -> None:
    meta = claimed(api)
    body = report(meta, resultsJson=BIG_FIVE)
    first = api.complete(body)

    again = api.complete(body)

    assert again.status_code == 200
    assert again.json()["status"] == "already_done"
    assert again.json()["extractionId"] == first.json()["extractionId"]
    assert Extraction.objects.count() == 1
    assert ProviderCall.objects.count() == 1


def test_complete_with_a_stale_token_is_refused(api: Internal) -> None:
    upload = new_upload()
    old = claimed(api, upload)
    # The first delivery's claim runs out and a second delivery takes over.
    Upload.objects.filter(pk=upload.pk).update(
        processing_started_at=timezone.now() - timedelta(hours=1)
    )
    new = claimed(api, upload)

    stale = api.complete(report(old, resultsJson=BIG_FIVE))
    current = api.complete(report(new, resultsJson=BIG_FIVE))
    late = api.complete(report(old, resultsJson=BIG_FIVE))

    assert stale.status_code == 409
    assert error_code(stale) == "stale_delivery"
    assert stale.json()["retry"] is True
    assert current.status_code == 200
    assert (late.status_code, error_code(late)) == (409, "stale_delivery")
    assert Extraction.objects.get().delivery_token == new["deliveryToken"]
    assert ProviderCall.objects.count() == 1


def test_complete_for_an_unknown_upload(api: Internal) -> None:
    meta = claimed(api)

    response = api.complete(report(meta, uploadId=987654, resultsJson=BIG_FIVE))

    assert (response.status_code, error_code(response)) == (404, "unknown_upload")
    assert not Extraction.objects.exists()


@pytest.mark.parametrize(
    "mismatch", [{"typeSlug": "hexaco"}, {"typeId": 99999}], ids=["slug", "id"]
)
def test_complete_for_another_document_type_is_refused(
    api: Internal, mismatch: dict[str, Any]
) -> None:
    upload = new_upload()
    meta = claimed(api, upload)

    response = api.complete(report(meta, resultsJson=BIG_FIVE, **mismatch))

    upload.refresh_from_db()
    assert response.status_code == 409
    assert error_code(response) == "type_mismatch"
    assert not Extraction.objects.exists()
    assert not ProviderCall.objects.exists()
    # The claim is given up, so the next delivery starts afresh at once.
    assert upload.status == UploadStatus.QUEUED
    assert api.meta(upload.pk).status_code == 200


# complete: invalid output --------------------------------------------------------


def test_invalid_output_is_kept_as_invalid_for_review(api: Internal) -> None:
    upload = new_upload()
    meta = claimed(api, upload)

    response = api.complete(report(meta, resultsJson={**BIG_FIVE, "openness": 170}))

    body = response.json()
    upload.refresh_from_db()
    extraction = Extraction.objects.get()
    call = ProviderCall.objects.get()
    assert response.status_code == 200
    assert (body["valid"], body["retry"]) == (False, False)
    assert upload.status == UploadStatus.NEEDS_REVIEW
    assert upload.last_error == "invalid output"
    assert not extraction.is_valid
    assert extraction.validation_errors == [
        "openness: Input should be less than or equal to 100"
    ]
    assert (call.status, call.error_class) == ("invalid", "InvalidOutputError")


def test_text_without_json_is_kept_as_invalid(api: Internal) -> None:
    meta = claimed(api)

    response = api.complete(report(meta, rawText="I cannot read this sheet."))

    extraction = Extraction.objects.get()
    assert response.json()["valid"] is False
    assert extraction.validation_errors == ["Workers AI's answer holds no JSON object"]
    assert extraction.raw_response == {"text": "I cannot read this sheet."}


def test_invalid_output_is_retried_when_configured(
    api: Internal, ingest_settings: Any
) -> None:
    ingest_settings(RETRY_INVALID_COMPLETE=True, MAX_ATTEMPTS=2)
    upload = new_upload()
    invalid = {**BIG_FIVE, "neuroticism": -4}

    first = api.complete(report(claimed(api, upload), resultsJson=invalid))
    last = api.complete(report(claimed(api, upload), resultsJson=invalid))

    assert first.status_code == 503
    assert error_code(first) == "invalid_output"
    assert first.json()["retry"] is True
    assert first.json()["valid"] is False
    assert int(first["Retry-After"]) > 0
    # The last attempt keeps the invalid answer for review.
    upload.refresh_from_db()
    assert last.status_code == 200
    assert (last.json()["valid"], last.json()["retry"]) == (False, False)
    assert upload.status == UploadStatus.NEEDS_REVIEW
    assert Extraction.objects.count() == 1
    assert list(ProviderCall.objects.values_list("status", flat=True)) == [
        "invalid",
        "invalid",
    ]


# complete: failures reported by the consumer -----------------------------------


def test_rate_limited_model_call_is_recorded_and_retried(api: Internal) -> None:
    upload = new_upload()
    meta = claimed(api, upload)
    failure = {
        "code": "rate_limited",
        "message": "Workers AI answered HTTP 429: 3040 Capacity exceeded",
        "retryAfter": 7,
        "transient": True,
    }

    response = api.complete(
        report(meta, status="error", error=failure, usage={"tokensIn": 0})
    )

    upload.refresh_from_db()
    call = ProviderCall.objects.get()
    assert response.status_code == 429
    assert response["Retry-After"] == "7"
    assert response.json()["retry"] is True
    assert upload.status == UploadStatus.FAILED
    assert upload.last_error.startswith("RateLimited: Workers AI answered HTTP 429")
    assert (call.status, call.error_class, call.stage) == (
        "error",
        "RateLimited",
        Stage.STAGE2,
    )
    assert call.extraction is None
    assert not Extraction.objects.exists()


def test_licence_error_fails_the_upload_for_good(api: Internal) -> None:
    upload = new_upload()
    meta = claimed(api, upload)
    failure = {"code": "licence_not_accepted", "message": "Agree first."}

    response = api.complete(report(meta, status="error", error=failure))

    upload.refresh_from_db()
    assert response.status_code == 422
    assert error_code(response) == "licence_not_accepted"
    assert response.json()["retry"] is False
    assert upload.status == UploadStatus.FAILED
    assert ProviderCall.objects.get().error_class == "LicenceNotAccepted"


def test_unknown_error_codes_follow_the_transient_flag(api: Internal) -> None:
    failure = {"code": "gpu_on_fire", "message": "x", "transient": True}
    response = api.complete(report(claimed(api), status="error", error=failure))
    assert response.status_code == 503
    assert ProviderCall.objects.get().error_class == "TransientProviderError"


def test_file_failures_write_no_ledger_row(api: Internal) -> None:
    upload = new_upload()
    meta = claimed(api, upload)
    failure = {"code": "permanent", "message": "file_missing: gone", "source": "file"}

    response = api.complete(report(meta, status="error", error=failure))

    upload.refresh_from_db()
    assert response.status_code == 422
    assert upload.status == UploadStatus.FAILED
    assert not ProviderCall.objects.exists()


def test_reported_json_mode_failure_is_invalid_output(api: Internal) -> None:
    failure = {"code": "invalid_output", "message": "JSON Mode couldn't be met"}

    response = api.complete(report(claimed(api), status="error", error=failure))

    extraction = Extraction.objects.get()
    assert response.status_code == 200
    assert response.json()["valid"] is False
    assert extraction.validation_errors == ["JSON Mode couldn't be met"]
    assert ProviderCall.objects.get().status == "invalid"


# complete: malformed bodies --------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"uploadId": "12"}, "bad_upload_id"),
        ({"uploadId": None}, "bad_upload_id"),
        ({"deliveryToken": None}, "missing_delivery_token"),
        ({"deliveryToken": "not a token"}, "bad_delivery_token"),
        ({"typeSlug": None}, "bad_type_slug"),
        ({"typeId": "3"}, "bad_type_id"),
        ({"status": "finished"}, "bad_status"),
        ({"rawText": None, "resultsJson": None}, "missing_output"),
        ({"rawText": 12}, "bad_output"),
        ({"resultsJson": [1, 2]}, "bad_output"),
        ({"usage": [1]}, "bad_usage"),
        ({"usage": {"tokensIn": -1}}, "bad_usage"),
        ({"usage": {"tokensOut": 1.5}}, "bad_usage"),
        ({"latencyMs": "fast"}, "bad_latency"),
        ({"provider": "x" * 51}, "bad_provider"),
        ({"model": 7}, "bad_model"),
        ({"status": "error"}, "bad_error"),
        ({"status": "error", "error": {"code": ""}}, "bad_error"),
        ({"status": "error", "error": {"code": "x", "retryAfter": -1}}, "bad_error"),
        ({"status": "error", "error": {"code": "x", "source": "gpu"}}, "bad_error"),
    ],
)
def test_malformed_bodies_are_refused_with_a_code(
    api: Internal, change: dict[str, Any], code: str
) -> None:
    upload = new_upload()
    meta = claimed(api, upload)
    body = {**report(meta, rawText=json.dumps(BIG_FIVE)), **change}

    response = api.complete(body)

    assert response.status_code == 400
    assert error_code(response) == code
    upload.refresh_from_db()
    assert upload.status == UploadStatus.PROCESSING
    assert not ProviderCall.objects.exists()


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b""])
def test_non_object_bodies_are_refused(api: Internal, raw: bytes) -> None:
    response = api.complete(raw)
    assert response.status_code == 400
    assert error_code(response) in ("malformed_body", "bad_upload_id")
