"""The OpenAI-compatible provider against a local fake of chat completions."""

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
from django_cf_ingest.providers.openai import OpenAIProvider
from django_cf_ingest.providers.schemas import inline_refs
from django_cf_ingest.registry import get_spec
from tests.conftest import make_png
from tests.fakes.fixtures import SCORES, extraction_request, make_pdf
from tests.fakes.openai_compat import API_KEY, FakeOpenAI, openai_answer, openai_error
from tests.fakes.server import FakeResponse


@pytest.fixture
def openai(fake_openai: FakeOpenAI) -> Iterator[OpenAIProvider]:
    provider = OpenAIProvider(
        "openai", {"API_KEY": API_KEY, "BASE_URL": fake_openai.url + "/v1"}
    )
    yield provider
    provider.close()


def data_url(content: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(content).decode('ascii')}"


def test_exact_request(
    fake_openai: FakeOpenAI, openai: OpenAIProvider, png_bytes: bytes
) -> None:
    fake_openai.enqueue(FakeResponse(json=openai_answer(SCORES)))

    openai.extract(extraction_request(png_bytes))

    request = fake_openai.last
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    body = request.json
    [message] = body["messages"]
    assert message["role"] == "user"
    prompt, image = message["content"]
    assert prompt["type"] == "text"
    assert prompt["text"].startswith("Read a Big Five (OCEAN) result sheet")
    assert image == {
        "type": "image_url",
        "image_url": {"url": data_url(png_bytes, "image/png")},
    }
    spec = get_spec("big-five")
    assert spec is not None
    assert body == {
        "model": "gpt-4o-mini",
        "messages": body["messages"],
        "max_tokens": 4096,
        "temperature": 0.0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "big-five",
                "schema": spec.json_schema,
                "strict": False,
            },
        },
    }


def test_schema_is_sent_without_refs(
    fake_openai: FakeOpenAI, openai: OpenAIProvider
) -> None:
    openai.extract(extraction_request(make_png(), slug="generic"))

    sent = fake_openai.last.json["response_format"]["json_schema"]
    spec = get_spec("generic")
    assert spec is not None
    assert sent["name"] == "generic"
    assert sent["schema"] == inline_refs(spec.json_schema)
    assert "$ref" not in repr(sent["schema"])


def test_openai_itself_gets_max_completion_tokens(png_bytes: bytes) -> None:
    provider = OpenAIProvider("openai", {"API_KEY": "k", "MAX_OUTPUT_TOKENS": 900})

    payload = provider.build_payload(extraction_request(png_bytes))

    assert provider.base_url == "https://api.openai.com/v1"
    assert payload["max_completion_tokens"] == 900
    assert "max_tokens" not in payload


def test_success(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    answer = openai_answer(SCORES, prompt_tokens=850, completion_tokens=45)
    fake_openai.enqueue(FakeResponse(json=answer))

    result = openai.extract(extraction_request(make_png()))

    assert result.data == SCORES
    assert result.model == "gpt-4o-mini"
    assert (result.usage.tokens_in, result.usage.tokens_out) == (850, 45)
    assert result.raw_response == answer


def test_content_as_a_list_of_parts(
    fake_openai: FakeOpenAI, openai: OpenAIProvider
) -> None:
    answer = openai_answer(SCORES)
    text = answer["choices"][0]["message"]["content"]
    answer["choices"][0]["message"]["content"] = [{"type": "text", "text": text}]
    fake_openai.enqueue(FakeResponse(json=answer))

    assert openai.extract(extraction_request(make_png())).data == SCORES


def test_local_server_without_key(png_bytes: bytes) -> None:
    with FakeOpenAI() as server:
        server.api_key = None
        provider = OpenAIProvider(
            "openai", {"BASE_URL": server.url + "/v1", "MODEL": "llava:13b"}
        )
        provider.extract(extraction_request(png_bytes))
        provider.close()

        request = server.last
    assert "authorization" not in request.headers
    assert request.json["model"] == "llava:13b"
    assert provider.check() == []


def test_pdf_as_file_part(fake_openai: FakeOpenAI) -> None:
    provider = OpenAIProvider(
        "openai",
        {
            "API_KEY": API_KEY,
            "BASE_URL": fake_openai.url + "/v1",
            "PDF_AS_IMAGES": False,
        },
    )
    pdf = make_pdf()

    provider.extract(extraction_request(pdf, "application/pdf"))
    provider.close()

    parts = fake_openai.last.json["messages"][0]["content"]
    assert parts[1] == {
        "type": "file",
        "file": {
            "filename": "sheet.pdf",
            "file_data": data_url(pdf, "application/pdf"),
        },
    }


def test_pdf_as_images_on_local_servers(
    fake_openai: FakeOpenAI, openai: OpenAIProvider
) -> None:
    buffer = io.BytesIO()
    pages = [Image.new("RGB", (200, 100), color) for color in ("white", "gray", "red")]
    pages[0].save(buffer, format="PDF", save_all=True, append_images=pages[1:])

    openai.extract(extraction_request(buffer.getvalue(), "application/pdf"))

    parts = fake_openai.last.json["messages"][0]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 3
    for part in images:
        url = part["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        png = base64.b64decode(url.split(",", 1)[1])
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG"
            # Rendered at twice 72 dpi.
            assert image.size == (400, 200)


def test_pdf_page_limit(fake_openai: FakeOpenAI) -> None:
    provider = OpenAIProvider(
        "openai",
        {"API_KEY": API_KEY, "BASE_URL": fake_openai.url + "/v1", "PDF_MAX_PAGES": 1},
    )
    buffer = io.BytesIO()
    pages = [Image.new("RGB", (50, 50), "white") for _ in range(3)]
    pages[0].save(buffer, format="PDF", save_all=True, append_images=pages[1:])

    provider.extract(extraction_request(buffer.getvalue(), "application/pdf"))
    provider.close()

    parts = fake_openai.last.json["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]


def test_tiff_becomes_png(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (30, 30), "blue").save(buffer, format="TIFF")

    openai.extract(extraction_request(buffer.getvalue(), "image/tiff"))

    url = fake_openai.last.json["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [("json_object", {"type": "json_object"}), ("none", None)],
)
def test_response_format_option(
    fake_openai: FakeOpenAI, response_format: str, expected: Any
) -> None:
    provider = OpenAIProvider(
        "openai",
        {
            "API_KEY": API_KEY,
            "BASE_URL": fake_openai.url + "/v1",
            "RESPONSE_FORMAT": response_format,
            "TEMPERATURE": None,
        },
    )
    fake_openai.enqueue(FakeResponse(json=openai_answer(SCORES)))

    provider.extract(extraction_request(make_png()))
    provider.close()

    body = fake_openai.last.json
    assert body.get("response_format") == expected
    assert "temperature" not in body


def test_429_honours_retry_after(
    fake_openai: FakeOpenAI, openai: OpenAIProvider
) -> None:
    fake_openai.enqueue(
        openai_error(
            429,
            "Rate limit reached for gpt-4o-mini on requests per min (RPM).",
            type="requests",
            code="rate_limit_exceeded",
            headers={"retry-after": "20"},
        )
    )

    with pytest.raises(RateLimited) as caught:
        openai.extract(extraction_request(make_png()))

    assert caught.value.retry_after == 20.0
    assert "Rate limit reached" in str(caught.value)


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_transient(
    fake_openai: FakeOpenAI, openai: OpenAIProvider, status: int
) -> None:
    fake_openai.enqueue(
        openai_error(status, "The server is overloaded.", type="server_error")
    )

    with pytest.raises(TransientProviderError) as caught:
        openai.extract(extraction_request(make_png()))

    assert caught.value.status_code == status


@pytest.mark.parametrize("status", [400, 403])
def test_client_errors_are_permanent(
    fake_openai: FakeOpenAI, openai: OpenAIProvider, status: int
) -> None:
    fake_openai.enqueue(openai_error(status, "Invalid image.", code="invalid_image"))

    with pytest.raises(PermanentProviderError, match="Invalid image"):
        openai.extract(extraction_request(make_png()))


def test_wrong_key_is_permanent(fake_openai: FakeOpenAI) -> None:
    provider = OpenAIProvider(
        "openai", {"API_KEY": "sk-wrong-0000000", "BASE_URL": fake_openai.url + "/v1"}
    )

    with pytest.raises(PermanentProviderError, match="Incorrect API key") as caught:
        provider.extract(extraction_request(make_png()))
    provider.close()

    assert caught.value.status_code == 401


def test_timeout_is_transient(fake_openai: FakeOpenAI) -> None:
    provider = OpenAIProvider(
        "openai",
        {"API_KEY": API_KEY, "BASE_URL": fake_openai.url + "/v1", "TIMEOUT": 0.3},
    )
    fake_openai.enqueue(FakeResponse(json=openai_answer(SCORES), delay=3))

    with pytest.raises(TransientProviderError, match="timed out"):
        provider.extract(extraction_request(make_png()))
    provider.close()


def test_answer_that_is_not_json(
    fake_openai: FakeOpenAI, openai: OpenAIProvider
) -> None:
    fake_openai.enqueue(
        FakeResponse(json=openai_answer("I see five scores.", completion_tokens=5))
    )

    with pytest.raises(InvalidOutputError, match="not JSON") as caught:
        openai.extract(extraction_request(make_png()))

    assert caught.value.raw_text == "I see five scores."
    assert (caught.value.tokens_in, caught.value.tokens_out) == (850, 5)


def test_cut_off_answer(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    fake_openai.enqueue(
        FakeResponse(json=openai_answer('{"openness": 4', finish_reason="length"))
    )

    with pytest.raises(InvalidOutputError, match="MAX_OUTPUT_TOKENS"):
        openai.extract(extraction_request(make_png()))


def test_refusal_is_permanent(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    fake_openai.enqueue(
        FakeResponse(json=openai_answer(None, refusal="I can't help with that."))
    )

    with pytest.raises(PermanentProviderError, match="refused"):
        openai.extract(extraction_request(make_png()))


def test_content_filter_is_permanent(
    fake_openai: FakeOpenAI, openai: OpenAIProvider
) -> None:
    fake_openai.enqueue(
        FakeResponse(json=openai_answer("", finish_reason="content_filter"))
    )

    with pytest.raises(PermanentProviderError, match="content filter"):
        openai.extract(extraction_request(make_png()))


def test_no_choices(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    fake_openai.enqueue(FakeResponse(json={"choices": [], "usage": {}}))

    with pytest.raises(InvalidOutputError, match="without a choice"):
        openai.extract(extraction_request(make_png()))


def test_reask_sends_previous_answer_and_errors(
    fake_openai: FakeOpenAI, openai: OpenAIProvider
) -> None:
    previous = '{"openness": "high"}'

    openai.extract(
        extraction_request(
            make_png(),
            previous_errors=("openness: Input should be a valid number",),
            previous_output=previous,
        )
    )

    first, answer, follow_up = fake_openai.last.json["messages"]
    assert first["role"] == "user"
    assert answer == {"role": "assistant", "content": previous}
    assert follow_up["role"] == "user"
    assert "- openness: Input should be a valid number" in follow_up["content"]


def test_check_needs_a_key_or_a_local_server() -> None:
    [error] = OpenAIProvider("openai", {}).check()

    assert error.id == "cf_ingest.E031"
    assert "OPENAI_API_KEY" in error.hint
    assert OpenAIProvider("openai", {"API_KEY": "k"}).check() == []
    local = OpenAIProvider("openai", {"BASE_URL": "http://127.0.0.1:11434/v1"})
    assert local.check() == []


@pytest.mark.parametrize(
    "options",
    [
        {"RESPONSE_FORMAT": "yaml"},
        {"TEMPERATURE": "hot"},
        {"PDF_MAX_PAGES": 0},
        {"KEY": "x"},
    ],
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ImproperlyConfigured):
        OpenAIProvider("openai", options)
