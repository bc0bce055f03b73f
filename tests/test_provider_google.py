"""The Gemini provider against a local fake of ``generateContent``."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from django_cf_ingest.exceptions import (
    InvalidOutputError,
    PermanentProviderError,
    RateLimited,
    TransientProviderError,
)
from django_cf_ingest.providers.google import GoogleProvider
from tests.conftest import make_png
from tests.fakes.fixtures import SCORES, extraction_request, make_pdf
from tests.fakes.gemini import API_KEY, FakeGemini, gemini_answer, google_error
from tests.fakes.server import FakeResponse
from tests.test_provider_schemas import BIG_FIVE_GEMINI


@pytest.fixture
def google(fake_gemini: FakeGemini) -> Iterator[GoogleProvider]:
    provider = GoogleProvider(
        "google", {"API_KEY": API_KEY, "BASE_URL": fake_gemini.url}
    )
    yield provider
    provider.close()


def test_exact_request(
    fake_gemini: FakeGemini, google: GoogleProvider, png_bytes: bytes
) -> None:
    fake_gemini.enqueue(FakeResponse(json=gemini_answer(SCORES)))

    google.extract(extraction_request(png_bytes))

    request = fake_gemini.last
    assert request.method == "POST"
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.query == {}
    assert request.headers["x-goog-api-key"] == API_KEY
    assert request.headers["content-type"] == "application/json"
    body = request.json
    assert set(body) == {"contents", "generationConfig"}
    [content] = body["contents"]
    assert content["role"] == "user"
    image, prompt = content["parts"]
    assert image == {
        "inlineData": {
            "mimeType": "image/png",
            "data": base64.b64encode(png_bytes).decode("ascii"),
        }
    }
    assert base64.b64decode(image["inlineData"]["data"]) == png_bytes
    assert prompt["text"].startswith("Read a Big Five (OCEAN) result sheet")
    assert "- openness (number from 0 to 100, required): Openness." in prompt["text"]
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": BIG_FIVE_GEMINI,
        "temperature": 0,
        "maxOutputTokens": 8192,
    }


def test_success(fake_gemini: FakeGemini, google: GoogleProvider) -> None:
    answer = gemini_answer(SCORES, prompt_tokens=1290, output_tokens=60)
    fake_gemini.enqueue(FakeResponse(json=answer))

    result = google.extract(extraction_request(make_png()))

    assert result.data == SCORES
    assert result.model == "gemini-2.5-flash"
    assert (result.usage.tokens_in, result.usage.tokens_out) == (1290, 60)
    assert result.raw_response == answer
    assert result.raw_text == answer["candidates"][0]["content"]["parts"][0]["text"]


def test_thinking_tokens_count_as_output(
    fake_gemini: FakeGemini, google: GoogleProvider
) -> None:
    answer = gemini_answer(SCORES, output_tokens=60, thoughts_tokens=400)
    fake_gemini.enqueue(FakeResponse(json=answer))

    result = google.extract(extraction_request(make_png()))

    assert result.usage.tokens_out == 460


def test_unscripted_fake_answers_to_the_schema(google: GoogleProvider) -> None:
    result = google.extract(extraction_request(make_png(), slug="generic"))

    assert result.data == {
        "result_type": "x",
        "summary": "x",
        "scores": [{"name": "x", "score": 1}],
    }


def test_options_model_tokens_and_thinking(fake_gemini: FakeGemini) -> None:
    provider = GoogleProvider(
        "google",
        {
            "API_KEY": API_KEY,
            "BASE_URL": fake_gemini.url + "/",
            "MODEL": "models/gemini-2.5-pro",
            "MAX_OUTPUT_TOKENS": 1024,
            "THINKING_BUDGET": 0,
        },
    )

    provider.extract(extraction_request(make_png()))
    provider.close()

    request = fake_gemini.last
    assert request.path == "/v1beta/models/gemini-2.5-pro:generateContent"
    config = request.json["generationConfig"]
    assert config["maxOutputTokens"] == 1024
    assert config["thinkingConfig"] == {"thinkingBudget": 0}


def test_pdf_goes_inline(fake_gemini: FakeGemini, google: GoogleProvider) -> None:
    pdf = make_pdf()

    google.extract(extraction_request(pdf, "application/pdf"))

    inline = fake_gemini.last.json["contents"][0]["parts"][0]["inlineData"]
    assert inline["mimeType"] == "application/pdf"
    assert base64.b64decode(inline["data"]) == pdf


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("GIF", "image/gif"), ("TIFF", "image/tiff")]
)
def test_other_images_become_png(
    fake_gemini: FakeGemini, google: GoogleProvider, fmt: str, content_type: str
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 20), "red").save(buffer, format=fmt)

    google.extract(extraction_request(buffer.getvalue(), content_type))

    inline = fake_gemini.last.json["contents"][0]["parts"][0]["inlineData"]
    assert inline["mimeType"] == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(inline["data"]))) as image:
        assert (image.format, image.size) == ("PNG", (40, 20))


def test_schema_outside_the_subset_goes_as_json_schema(
    fake_gemini: FakeGemini, google: GoogleProvider
) -> None:
    from pydantic import BaseModel

    from django_cf_ingest.registry import DocumentTypeSpec

    class Tags(BaseModel):
        tags: dict[str, str]

    spec = DocumentTypeSpec(slug="tags", name="Tags", model=Tags)
    fake_gemini.enqueue(FakeResponse(json=gemini_answer({"tags": {"a": "b"}})))

    result = google.extract(extraction_request(make_png(), spec=spec))

    config = fake_gemini.last.json["generationConfig"]
    assert "responseSchema" not in config
    assert config["responseJsonSchema"]["properties"]["tags"]["additionalProperties"]
    assert result.data == {"tags": {"a": "b"}}


def test_429_honours_retry_after(
    fake_gemini: FakeGemini, google: GoogleProvider
) -> None:
    fake_gemini.enqueue(
        google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
            headers={"Retry-After": "12"},
        )
    )

    with pytest.raises(RateLimited) as caught:
        google.extract(extraction_request(make_png()))

    assert caught.value.retry_after == 12.0
    assert "RESOURCE_EXHAUSTED" in str(caught.value)


def test_429_retry_info_detail(fake_gemini: FakeGemini, google: GoogleProvider) -> None:
    fake_gemini.enqueue(
        google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota.",
            details=[
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": "37s",
                },
            ],
        )
    )

    with pytest.raises(RateLimited) as caught:
        google.extract(extraction_request(make_png()))

    assert caught.value.retry_after == 37.0


@pytest.mark.parametrize(
    ("code", "status"),
    [(500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED")],
)
def test_server_errors_are_transient(
    fake_gemini: FakeGemini, google: GoogleProvider, code: int, status: str
) -> None:
    fake_gemini.enqueue(google_error(code, status, "The model is overloaded."))

    with pytest.raises(TransientProviderError) as caught:
        google.extract(extraction_request(make_png()))

    assert not isinstance(caught.value, RateLimited)
    assert caught.value.status_code == code


@pytest.mark.parametrize(
    ("code", "status"),
    [(400, "FAILED_PRECONDITION"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND")],
)
def test_client_errors_are_permanent(
    fake_gemini: FakeGemini, google: GoogleProvider, code: int, status: str
) -> None:
    fake_gemini.enqueue(google_error(code, status, "User location is not supported."))

    with pytest.raises(PermanentProviderError) as caught:
        google.extract(extraction_request(make_png()))

    assert caught.value.status_code == code
    assert status in str(caught.value)


def test_wrong_key_is_permanent_and_not_quoted(fake_gemini: FakeGemini) -> None:
    provider = GoogleProvider(
        "google", {"API_KEY": "wrong-key-999999", "BASE_URL": fake_gemini.url}
    )

    with pytest.raises(PermanentProviderError, match="API key not valid") as caught:
        provider.extract(extraction_request(make_png()))
    provider.close()

    assert "wrong-key-999999" not in str(caught.value)


def test_timeout_is_transient(fake_gemini: FakeGemini) -> None:
    provider = GoogleProvider(
        "google", {"API_KEY": API_KEY, "BASE_URL": fake_gemini.url, "TIMEOUT": 0.3}
    )
    fake_gemini.enqueue(FakeResponse(json=gemini_answer(SCORES), delay=3))

    with pytest.raises(TransientProviderError, match="timed out"):
        provider.extract(extraction_request(make_png()))
    provider.close()


def test_answer_that_is_not_json(
    fake_gemini: FakeGemini, google: GoogleProvider
) -> None:
    fake_gemini.enqueue(
        FakeResponse(json=gemini_answer("Openness is 41", output_tokens=7))
    )

    with pytest.raises(InvalidOutputError, match="not JSON") as caught:
        google.extract(extraction_request(make_png()))

    assert caught.value.raw_text == "Openness is 41"
    assert (caught.value.tokens_in, caught.value.tokens_out) == (1290, 7)


def test_json_in_a_code_fence_is_read(
    fake_gemini: FakeGemini, google: GoogleProvider
) -> None:
    fenced = "```json\n" + str(SCORES).replace("'", '"') + "\n```"
    fake_gemini.enqueue(FakeResponse(json=gemini_answer(fenced)))

    assert google.extract(extraction_request(make_png())).data == SCORES


def test_garbled_body_is_invalid_output(
    fake_gemini: FakeGemini, google: GoogleProvider
) -> None:
    fake_gemini.enqueue(FakeResponse(body=b'{"candidates": [', headers={}))

    with pytest.raises(InvalidOutputError):
        google.extract(extraction_request(make_png()))


def test_max_tokens_cut_off(fake_gemini: FakeGemini, google: GoogleProvider) -> None:
    fake_gemini.enqueue(
        FakeResponse(json=gemini_answer('{"openness": 41', finish_reason="MAX_TOKENS"))
    )

    with pytest.raises(InvalidOutputError, match="MAX_OUTPUT_TOKENS"):
        google.extract(extraction_request(make_png()))


@pytest.mark.parametrize("reason", ["SAFETY", "PROHIBITED_CONTENT", "SPII"])
def test_withheld_answer_is_permanent(
    fake_gemini: FakeGemini, google: GoogleProvider, reason: str
) -> None:
    answer = gemini_answer(SCORES, finish_reason=reason)
    del answer["candidates"][0]["content"]
    fake_gemini.enqueue(FakeResponse(json=answer))

    with pytest.raises(PermanentProviderError, match=reason) as caught:
        google.extract(extraction_request(make_png()))

    assert caught.value.tokens_in == 1290


def test_recitation_is_invalid_output(
    fake_gemini: FakeGemini, google: GoogleProvider
) -> None:
    answer = gemini_answer(SCORES, finish_reason="RECITATION")
    del answer["candidates"][0]["content"]
    fake_gemini.enqueue(FakeResponse(json=answer))

    with pytest.raises(InvalidOutputError, match="RECITATION"):
        google.extract(extraction_request(make_png()))


def test_blocked_prompt_is_permanent(
    fake_gemini: FakeGemini, google: GoogleProvider
) -> None:
    fake_gemini.enqueue(
        FakeResponse(
            json={
                "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                "usageMetadata": {"promptTokenCount": 300, "totalTokenCount": 300},
            }
        )
    )

    with pytest.raises(PermanentProviderError, match="blockReason PROHIBITED_CONTENT"):
        google.extract(extraction_request(make_png()))


def test_no_candidate_without_reason(
    fake_gemini: FakeGemini, google: GoogleProvider
) -> None:
    fake_gemini.enqueue(FakeResponse(json={"candidates": []}))

    with pytest.raises(InvalidOutputError, match="without a candidate"):
        google.extract(extraction_request(make_png()))


def test_document_over_the_inline_limit(
    fake_gemini: FakeGemini, google: GoogleProvider
) -> None:
    big = b"\x89PNG" + bytes(15_100_000)

    with pytest.raises(PermanentProviderError, match="must stay under 20 MB"):
        google.extract(extraction_request(big))

    assert fake_gemini.requests == []


def test_reask_sends_previous_answer_and_errors(
    fake_gemini: FakeGemini, google: GoogleProvider, png_bytes: bytes
) -> None:
    previous = '{"openness": 141, "conscientiousness": 63}'
    errors = (
        "openness: Input should be less than or equal to 100",
        "extraversion: Field required",
    )

    google.extract(
        extraction_request(png_bytes, previous_errors=errors, previous_output=previous)
    )

    first, answer, follow_up = fake_gemini.last.json["contents"]
    assert first["role"] == "user"
    assert first["parts"][0]["inlineData"]["data"] == base64.b64encode(
        png_bytes
    ).decode("ascii")
    assert answer == {"role": "model", "parts": [{"text": previous}]}
    assert follow_up["role"] == "user"
    text = follow_up["parts"][0]["text"]
    assert "- openness: Input should be less than or equal to 100" in text
    assert "- extraversion: Field required" in text
    assert "corrected JSON object" in text


def test_reask_without_previous_text(
    fake_gemini: FakeGemini, google: GoogleProvider
) -> None:
    google.extract(
        extraction_request(make_png(), previous_errors=("(root): not a JSON object",))
    )

    [content] = fake_gemini.last.json["contents"]
    assert len(content["parts"]) == 3
    assert "(root): not a JSON object" in content["parts"][2]["text"]


def test_check_without_key() -> None:
    [error] = GoogleProvider("google", {}).check()

    assert error.id == "cf_ingest.E030"
    assert "GOOGLE_API_KEY" in error.hint
    assert "GEMINI_API_KEY" in error.hint


def test_check_with_key() -> None:
    assert GoogleProvider("google", {"API_KEY": "k"}).check() == []


def test_extract_without_key_is_permanent() -> None:
    with pytest.raises(PermanentProviderError, match="no API key"):
        GoogleProvider("google", {}).extract(extraction_request(make_png()))


@pytest.mark.parametrize(
    "options",
    [
        {"API_KEY": "k", "TEMPERATURE": 1},
        {"API_KEY": "k", "MAX_OUTPUT_TOKENS": "many"},
        {"API_KEY": "k", "THINKING_BUDGET": "lots"},
    ],
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ImproperlyConfigured):
        GoogleProvider("google", options)


def test_defaults() -> None:
    provider = GoogleProvider("google", {"API_KEY": "k"})

    assert provider.base_url == "https://generativelanguage.googleapis.com"
    assert provider.model == "gemini-2.5-flash"
    assert provider.timeout == 120.0
