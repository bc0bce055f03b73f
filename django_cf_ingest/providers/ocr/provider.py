"""The offline ``ocr`` provider: OCR plus schema-guided field extraction.

Options, under ``CF_INGEST["PROVIDERS"]["ocr"]``:

``RENDER_DPI``
    Resolution at which PDF pages without a text layer are rendered (144).
``THREADS``
    onnxruntime threads per recognition; 0 lets onnxruntime decide (0).
``DETECTION_SIDE``
    Longest side, in pixels, that text detection looks at (1280). Lower
    saves memory and time, and loses small print.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from pydantic import ValidationError

from ...conf import get_settings
from ...exceptions import PermanentProviderError
from ..base import ExtractionRequest, Provider, ProviderResult, Usage
from . import engine
from .extractor import Extractor, confidence
from .fields import document_fields
from .layout import TextBox, reading_text, stack_pages
from .pages import read_pages

logger = logging.getLogger("django_cf_ingest.providers.ocr")

SUPPORTED_TYPES = ("image/", "application/pdf")
OPTIONS = {"RENDER_DPI": 144.0, "THREADS": 0, "DETECTION_SIDE": engine.DETECTION_SIDE}


class OcrProvider(Provider):
    """Reads documents offline with RapidOCR and fills the schema from the text."""

    supports_reask = False

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(name, options)
        unknown = sorted(set(self.options) - set(OPTIONS) - {"MODEL"})
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown option(s) for the {name!r} provider: {', '.join(unknown)}. "
                f"Known options: {', '.join(sorted(OPTIONS))}."
            )
        try:
            self.render_dpi = float(
                self.options.get("RENDER_DPI", OPTIONS["RENDER_DPI"])
            )
            self.threads = int(self.options.get("THREADS", OPTIONS["THREADS"]))
            self.detection_side = int(
                self.options.get("DETECTION_SIDE", OPTIONS["DETECTION_SIDE"])
            )
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"Options of the {name!r} provider: {exc}"
            ) from exc
        if self.render_dpi <= 0 or self.threads < 0 or self.detection_side < 320:
            raise ImproperlyConfigured(
                f"Options of the {name!r} provider: RENDER_DPI must be positive, "
                "THREADS at least 0 and DETECTION_SIDE at least 320."
            )

    @property
    def model(self) -> str:
        return engine.model_name()

    def check(self) -> list[CheckMessage]:
        missing = engine.missing_modules()
        if missing:
            return [
                Error(
                    f"The {self.name!r} provider cannot run: "
                    f"{', '.join(missing)} not installed.",
                    hint='pip install "django-cf-ingest[ocr]"',
                    id="cf_ingest.E020",
                )
            ]
        models = engine.bundled_models_dir()
        if models is None or not any(models.glob("*.onnx")):
            return [
                Error(
                    "RapidOCR is installed without its bundled models, so the "
                    f"{self.name!r} provider would try to download them.",
                    hint='pip install --force-reinstall "django-cf-ingest[ocr]"',
                    id="cf_ingest.E021",
                )
            ]
        return []

    def _recognise(self, image: Any) -> list[TextBox]:
        return engine.recognise(image, self.threads, self.detection_side)

    def extract(self, request: ExtractionRequest) -> ProviderResult:
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type and not content_type.startswith(SUPPORTED_TYPES):
            raise PermanentProviderError(
                f"The ocr provider reads images and PDFs, not {content_type}."
            )
        started = time.monotonic()
        pages = read_pages(
            request.content,
            self._recognise,
            max_pages=get_settings().MAX_PDF_PAGES,
            render_dpi=self.render_dpi,
        )
        boxes = stack_pages(page.boxes for page in pages)

        fields, unread = document_fields(request.json_schema)
        extraction = Extractor(fields, boxes).extract()
        invalid = _invalid_fields(request, extraction.data)
        score = confidence(
            fields,
            extraction,
            boxes,
            invalid=invalid,
            unread_weight=float(len(unread)),
        )
        logger.debug(
            "ocr extraction done slug=%s pages=%s boxes=%s fields=%s/%s "
            "confidence=%.3f duration_ms=%d",
            request.spec.slug,
            len(pages),
            len(boxes),
            len(extraction.data),
            len(fields) + len(unread),
            score,
            (time.monotonic() - started) * 1000,
        )
        return ProviderResult(
            data=extraction.data,
            model=self.model,
            usage=Usage(tokens_in=0, tokens_out=0),
            raw_response={
                "pages": [
                    {"page": n, "source": page.source, "boxes": len(page.boxes)}
                    for n, page in enumerate(pages)
                ],
                "lines": [box.as_dict() for box in boxes],
                "fields": extraction.describe(),
                "unread_fields": unread,
            },
            raw_text=reading_text(boxes),
            confidence=score,
        )


def _invalid_fields(request: ExtractionRequest, data: dict[str, Any]) -> frozenset[str]:
    """Top-level fields whose values the document type's model rejects."""
    try:
        request.spec.model.model_validate(data)
    except ValidationError as exc:
        return frozenset(
            str(error["loc"][0])
            for error in exc.errors()
            if error["loc"] and error["type"] != "missing"
        )
    return frozenset()
