"""The Workers AI provider against a local fake of the ``ai/run`` REST method."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from PIL import Image

from django_cf_ingest.exceptions import (
    InvalidOutputError,
    LicenceNotAccepted,
    PermanentProviderError,
    RateLimited,
    TransientProviderError,
)
from django_cf_ingest.models import Extraction, ProviderCall, Upload, UploadStatus
from django_cf_ingest.pipeline import Result, process_upload
from django_cf_ingest.providers import get_provider
from django_cf_ingest.providers.base import ExtractionRequest
from django_cf_ingest.providers.schemas import inline_refs
from django_cf_ingest.providers.workers_ai import (
    RunBody,
    RunOutput,
    Usage,
    WorkersAIProvider,
    base64_length,
    classify,
    result_from_output,
    seconds_to_utc_midnight,
)
from django_cf_ingest.registry import get_spec
from django_cf_ingest.services import create_upload

from .conftest import make_png
from .fakes.server import FakeResponse
from .fakes.workers_ai import (
    API_TOKEN,
    FakeWorkersAI,
    cf_answer,
    cf_error,
    decoded_image,
)

MODEL = "@cf/meta/llama-3.2-11b-vision-instruct"
BIG_FIVE = {
    "openness": 71,
    "conscientiousness": 64,
    "extraversion": 38,
    "agreeableness": 80,
    "neuroticism": 22,
}


@pytest.fixture
def fake() -> Iterator[FakeWorkersAI]:
    with FakeWorkersAI() as server:
        yield server


@pytest.fixture
def use_fake(fake: FakeWorkersAI, ingest_settings: Any) -> FakeWorkersAI:
    ingest_settings(
        PROVIDERS={"workers_ai": fake.options()},
        PROVIDER_CHAIN=["workers_ai"],
        MAX_TOKENS=1500,
        PRICES={"workers_ai": {MODEL: {"input": 0.049, "output": 0.68}}},
    )
    return fake


def new_upload(content: bytes | None = None, slug: str = "big-five") -> Upload:
    return create_upload(io.BytesIO(content or make_png()), slug, name="sheet.png")


def provider() -> WorkersAIProvider:
    found = get_provider("workers_ai")
    assert isinstance(found, WorkersAIProvider)
    return found


@pytest.mark.django_db
def test_request_follows_the_documented_shape(use_fake: FakeWorkersAI) -> None:
    content = make_png("Openness 71")
    upload = new_upload(content)

    outcome = process_upload(upload.pk)

    assert outcome.result == Result.DONE
    request = use_fake.last
    assert request.path == f"/client/v4/accounts/{use_fake.account_id}/ai/run/{MODEL}"
    assert request.headers["authorization"] == f"Bearer {API_TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert int(request.headers["content-length"]) == len(request.body)
    assert "transfer-encoding" not in request.headers
    body = request.json
    assert set(body) == {
        "messages",
        "image",
        "max_tokens",
        "temperature",
        "response_format",
    }
    # The image is a base64 string, not an array of byte values.
    assert isinstance(body["image"], str)
    assert decoded_image(request) == content
    assert body["max_tokens"] == 1500
    spec = get_spec("big-five")
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": inline_refs(spec.json_schema),
    }
    system, user = body["messages"]
    assert system["role"] == "system"
    assert upload.document_type.instructions in system["content"]
    assert "- openness (number from 0 to 100, required)" in system["content"]
    assert user["role"] == "user"


@pytest.mark.django_db
def test_object_answer_in_json_mode_is_kept_with_usage_and_cost(
    use_fake: FakeWorkersAI,
) -> None:
    use_fake.enqueue(cf_answer(BIG_FIVE, prompt_tokens=2000, completion_tokens=50))
    upload = new_upload()

    process_upload(upload.pk)

    upload.refresh_from_db()
    extraction = Extraction.objects.get(upload=upload)
    call = ProviderCall.objects.get(upload=upload)
    assert upload.status == UploadStatus.NEEDS_REVIEW
    assert extraction.is_valid
    assert extraction.data == BIG_FIVE
    assert (extraction.provider, extraction.model) == ("workers_ai", MODEL)
    assert extraction.raw_response == {"text": json.dumps(BIG_FIVE)}
    assert (call.status, call.tokens_in, call.tokens_out) == ("ok", 2000, 50)
    # 2000 * 0.049 / 1e6 + 50 * 0.68 / 1e6
    assert str(call.cost) == "0.000132"


@pytest.mark.django_db
def test_json_in_prose_without_json_mode(
    use_fake: FakeWorkersAI, ingest_settings: Any
) -> None:
    ingest_settings(PROVIDERS={"workers_ai": use_fake.options(JSON_MODE=False)})
    prose = (
        "Sure! Here are the scores I read:\n```json\n"
        + json.dumps(BIG_FIVE, indent=2)
        + "\n```\nLet me know if you need anything else."
    )
    use_fake.enqueue(cf_answer(prose))
    upload = new_upload()

    process_upload(upload.pk)

    assert "response_format" not in use_fake.last.json
    extraction = Extraction.objects.get(upload=upload)
    assert extraction.is_valid
    assert extraction.data == BIG_FIVE
    assert extraction.raw_response == {"text": prose}


@pytest.mark.django_db
def test_usage_is_optional(use_fake: FakeWorkersAI) -> None:
    use_fake.enqueue(cf_answer(json.dumps(BIG_FIVE), prompt_tokens=None))
    upload = new_upload()

    process_upload(upload.pk)

    call = ProviderCall.objects.get(upload=upload)
    assert (call.status, call.tokens_in, call.tokens_out) == ("ok", 0, 0)


@pytest.mark.django_db
def test_schema_invalid_output_is_asked_again_then_kept_as_invalid(
    use_fake: FakeWorkersAI,
) -> None:
    bad = {**BIG_FIVE, "openness": 170}
    use_fake.enqueue(cf_answer(json.dumps(bad)), cf_answer(json.dumps(bad)))
    upload = new_upload()

    outcome = process_upload(upload.pk)

    upload.refresh_from_db()
    extraction = Extraction.objects.get(upload=upload)
    calls = ProviderCall.objects.filter(upload=upload).order_by("id")
    assert outcome.result == Result.DONE
    assert upload.status == UploadStatus.NEEDS_REVIEW
    assert not extraction.is_valid
    assert extraction.validation_errors == [
        "openness: Input should be less than or equal to 100"
    ]
    assert [(c.purpose, c.status) for c in calls] == [
        ("primary", "invalid"),
        ("reask", "invalid"),
    ]
    # The re-ask shows the model its answer and what was wrong with it.
    messages = use_fake.last.json["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == json.dumps(bad)
    assert (
        "openness: Input should be less than or equal to 100"
        in (messages[3]["content"])
    )


@pytest.mark.django_db
def test_answer_without_json_is_invalid_output(use_fake: FakeWorkersAI) -> None:
    use_fake.enqueue(
        cf_answer("I cannot read this image.", completion_tokens=9),
        cf_answer("Still nothing.", completion_tokens=4),
    )
    upload = new_upload()

    process_upload(upload.pk)

    extraction = Extraction.objects.get(upload=upload)
    calls = list(ProviderCall.objects.filter(upload=upload).order_by("id"))
    assert not extraction.is_valid
    assert extraction.validation_errors == ["Workers AI's answer holds no JSON object"]
    assert [c.tokens_out for c in calls] == [9, 4]


@pytest.mark.django_db
def test_rate_limit_with_retry_after_is_retried(use_fake: FakeWorkersAI) -> None:
    use_fake.enqueue(
        cf_error(
            429, 3040, "Capacity temporarily exceeded", headers={"Retry-After": "7"}
        )
    )
    upload = new_upload()

    outcome = process_upload(upload.pk)

    upload.refresh_from_db()
    call = ProviderCall.objects.get(upload=upload)
    assert outcome.result == Result.RETRY
    assert outcome.retry_after == 7
    assert outcome.error_code == "rate_limited"
    assert upload.status == UploadStatus.FAILED
    assert not Extraction.objects.filter(upload=upload).exists()
    assert (call.status, call.error_class) == ("error", "RateLimited")
    assert "3040" in call.error_message


@pytest.mark.django_db
def test_licence_not_accepted_fails_with_instructions(
    ingest_settings: Any,
) -> None:
    with FakeWorkersAI(licence_accepted=False) as fake:
        ingest_settings(
            PROVIDERS={"workers_ai": fake.options()}, PROVIDER_CHAIN=["workers_ai"]
        )
        upload = new_upload()

        outcome = process_upload(upload.pk)

        upload.refresh_from_db()
        call = ProviderCall.objects.get(upload=upload)
        assert outcome.result == Result.FAILED
        assert outcome.error_code == "licence_not_accepted"
        assert upload.status == UploadStatus.FAILED
        assert call.error_class == "LicenceNotAccepted"
        assert '{"prompt": "agree"}' in upload.last_error
        assert f"{fake.base_url}/accounts/$CF_ACCOUNT_ID/ai/run/{MODEL}" in (
            upload.last_error
        )
        assert API_TOKEN not in upload.last_error

        # Doing what the message says fixes it.
        httpx.post(
            f"{fake.base_url}/accounts/{fake.account_id}/ai/run/{MODEL}",
            json={"prompt": "agree"},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ).raise_for_status()
        assert process_upload(upload.pk).result == Result.DONE


def _classified(status: int, code: int, headers: dict[str, str] | None = None) -> Any:
    body = {
        "result": None,
        "success": False,
        "errors": [{"code": code, "message": "x"}],
    }
    response = httpx.Response(status, json=body, headers=headers or {})
    return classify(response, base_url="https://api.example", model=MODEL)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (403, 5016, LicenceNotAccepted),
        (429, 3040, RateLimited),
        (429, 3036, RateLimited),
        (429, 9999, RateLimited),
        (408, 3007, TransientProviderError),
        (500, 9999, TransientProviderError),
        (400, 5007, PermanentProviderError),
        (404, 3042, PermanentProviderError),
        (400, 5004, PermanentProviderError),
        (400, 3003, PermanentProviderError),
        (413, 3006, PermanentProviderError),
        (401, 10000, PermanentProviderError),
    ],
)
def test_error_codes_decide_the_error_class(
    status: int, code: int, expected: type[Exception]
) -> None:
    error = _classified(status, code)
    assert type(error) is expected
    assert error.status_code == status


def test_daily_limit_waits_for_midnight_utc() -> None:
    error = _classified(429, 3036)
    assert isinstance(error, RateLimited)
    assert abs(error.retry_after - seconds_to_utc_midnight()) < 5
    assert _classified(429, 3036, {"Retry-After": "60"}).retry_after == 60
    noon = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert seconds_to_utc_midnight(noon) == 12 * 3600


def test_json_mode_failure_is_invalid_output() -> None:
    body = {
        "result": None,
        "success": False,
        "errors": [{"code": 5006, "message": "JSON Mode couldn't be met"}],
    }
    response = httpx.Response(400, json=body)
    assert isinstance(
        classify(response, base_url="https://x", model=MODEL), InvalidOutputError
    )


@pytest.mark.django_db
def test_timeout_is_transient(fake: FakeWorkersAI, ingest_settings: Any) -> None:
    ingest_settings(PROVIDERS={"workers_ai": fake.options(TIMEOUT=0.2)})
    fake.enqueue(FakeResponse(delay=1.0, json={}))
    spec = get_spec("big-five")
    request = ExtractionRequest(spec, "Read it.", make_png(), "image/png")

    with pytest.raises(TransientProviderError, match="timed out"):
        provider().extract(request)


@pytest.mark.django_db
def test_pdf_is_rendered_to_one_png(
    use_fake: FakeWorkersAI, ingest_settings: Any
) -> None:
    ingest_settings(PROVIDERS={"workers_ai": use_fake.options(PDF_PAGES=2)})
    pdf = _pdf(pages=3)
    spec = get_spec("big-five")

    provider().extract(ExtractionRequest(spec, "Read it.", pdf, "application/pdf"))

    image = Image.open(io.BytesIO(decoded_image(use_fake.last)))
    assert image.format == "PNG"
    # Two rendered pages (2 x 72 dpi) stacked: twice as high as one.
    assert image.size == (400, 2 * 300)


@pytest.mark.django_db
def test_other_images_are_converted_to_png(use_fake: FakeWorkersAI) -> None:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(make_png())).save(buffer, format="TIFF")
    spec = get_spec("big-five")

    provider().extract(ExtractionRequest(spec, "x", buffer.getvalue(), "image/tiff"))

    assert decoded_image(use_fake.last).startswith(b"\x89PNG\r\n\x1a\n")


def _pdf(pages: int) -> bytes:
    images = [Image.new("RGB", (200, 150), "white") for _ in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def test_streamed_body_is_the_json_of_the_whole_input() -> None:
    content = bytes(range(256)) * 4001 + b"xy"  # not a multiple of 3
    fields = {"messages": [{"role": "user", "content": "Grüße"}], "max_tokens": 9}
    body = RunBody(fields, io.BytesIO(content), len(content))

    encoded = body.encode()

    assert len(encoded) == body.length
    assert json.loads(encoded) == {
        **fields,
        "image": base64.b64encode(content).decode(),
    }
    assert base64_length(len(content)) == len(base64.b64encode(content))
    # It can be produced again, for a retried request.
    assert body.encode() == encoded


def test_truncated_answer_says_to_raise_max_tokens() -> None:
    output = RunOutput(text='{"openness": 7', data=None, usage=Usage(900, 1500))
    with pytest.raises(InvalidOutputError, match="max_tokens=1500") as caught:
        result_from_output(output, MODEL, max_tokens=1500)
    assert (caught.value.tokens_in, caught.value.tokens_out) == (900, 1500)
    assert caught.value.raw_text == '{"openness": 7'


def test_check_names_the_missing_environment_variables() -> None:
    messages = WorkersAIProvider("workers_ai", {}).check()
    assert [m.id for m in messages] == ["cf_ingest.E032"]
    assert "CF_ACCOUNT_ID and CF_API_TOKEN" in messages[0].hint
    only_token = WorkersAIProvider("workers_ai", {"ACCOUNT_ID": "a"}).check()
    assert "CF_API_TOKEN" in only_token[0].hint
    assert "CF_ACCOUNT_ID" not in only_token[0].hint
    both = {"ACCOUNT_ID": "a", "API_TOKEN": "t"}
    assert WorkersAIProvider("workers_ai", both).check() == []


def test_unknown_options_and_bad_json_mode_are_refused() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="MODLE"):
        WorkersAIProvider("workers_ai", {"MODLE": "x"})
    with pytest.raises(ImproperlyConfigured, match="JSON_MODE"):
        WorkersAIProvider("workers_ai", {"JSON_MODE": "yes"})


def test_edge_extraction_checks_the_workers_ai_credentials(
    ingest_settings: Any,
) -> None:
    from django.core.checks import run_checks

    ingest_settings(PROVIDERS={"ocr": {}}, PROVIDER_CHAIN=["ocr"])
    assert "cf_ingest.E032" not in {m.id for m in run_checks()}

    ingest_settings(USE_EDGE_INGEST=True)
    assert "cf_ingest.E032" in {m.id for m in run_checks()}
