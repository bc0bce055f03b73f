from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PIL import Image, ImageDraw

from django_cf_ingest import conf, providers, queues
from tests.fakes.fixtures import fake_gemini, fake_openai  # noqa: F401


@pytest.fixture(autouse=True)
def _fresh_ingest_state() -> Iterator[None]:
    """Settings, backends and providers are cached per process: start clean."""
    conf.get_settings.cache_clear()
    queues.get_backend.cache_clear()
    providers.reset_providers()
    yield
    queues.get_backend.cache_clear()
    providers.reset_providers()


def make_png(text: str = "Openness 42", size: tuple[int, int] = (400, 120)) -> bytes:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((10, 10), text, fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def png_bytes() -> bytes:
    return make_png()


@pytest.fixture
def ingest_settings(settings: Any) -> Callable[..., None]:
    """Override keys of the CF_INGEST dict for one test."""

    def apply(**overrides: Any) -> None:
        settings.CF_INGEST = {**settings.CF_INGEST, **overrides}

    return apply
