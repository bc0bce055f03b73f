"""Pytest fixtures that run the vendor fakes for one test each."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from django_cf_ingest.providers.base import ExtractionRequest
from django_cf_ingest.registry import get_spec
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai_compat import FakeOpenAI

#: A valid big-five answer, with values no other test data has.
SCORES = {
    "openness": 41.25,
    "conscientiousness": 63.0,
    "extraversion": 12.5,
    "agreeableness": 88.0,
    "neuroticism": 30.75,
}


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def extraction_request(
    content: bytes,
    content_type: str = "image/png",
    *,
    slug: str = "big-five",
    **changes: Any,
) -> ExtractionRequest:
    """An extraction request for a registered document type, as the pipeline
    builds it."""
    spec = get_spec(slug)
    assert spec is not None, slug
    fields: dict[str, Any] = {
        "spec": spec,
        "instructions": spec.instructions,
        "content": content,
        "content_type": content_type,
        "filename": "sheet.png" if content_type.startswith("image/") else "sheet.pdf",
        **changes,
    }
    return ExtractionRequest(**fields)


def make_pdf(pages: int = 1, size: tuple[int, int] = (300, 200)) -> bytes:
    images = [Image.new("RGB", size, "white") for _ in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()
