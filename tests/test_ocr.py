"""The offline ocr provider on the demo's sample documents and on bad input.

Recognition is the slow part, so each sample is read once per test session
and the engine is loaded once per process.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from django_cf_ingest.exceptions import MissingExtra, PermanentProviderError
from django_cf_ingest.providers import get_provider
from django_cf_ingest.providers.base import ExtractionRequest, ProviderResult
from django_cf_ingest.providers.ocr import OcrProvider, engine
from django_cf_ingest.registry import get_spec
from django_cf_ingest.validation import validate_output
from example_project.demo import samples

MANIFEST = json.loads((samples.SAMPLES_DIR / "manifest.json").read_text())


def request_for(slug: str, content: bytes, content_type: str) -> ExtractionRequest:
    spec = get_spec(slug)
    assert spec is not None
    return ExtractionRequest(
        spec=spec, instructions="", content=content, content_type=content_type
    )


def content_type_of(name: str) -> str:
    return "application/pdf" if name.endswith(".pdf") else "image/png"


@cache
def provider() -> OcrProvider:
    return OcrProvider("ocr", {})


@cache
def read_sample(name: str) -> ProviderResult:
    entry = next(e for e in MANIFEST if e["file"] == name)
    content = (samples.SAMPLES_DIR / name).read_bytes()
    request = request_for(entry["type"], content, content_type_of(name))
    return provider().extract(request)


@pytest.mark.slow
@pytest.mark.parametrize("entry", MANIFEST, ids=lambda e: e["file"])
def test_every_printed_value_is_extracted(entry: dict[str, Any]) -> None:
    result = read_sample(entry["file"])
    assert result.data is not None
    for name, expected in entry["expected"].items():
        assert result.data.get(name) == expected, name
    assert set(result.data) == set(entry["expected"])

    spec = get_spec(entry["type"])
    assert spec is not None
    spec.model.model_validate(result.data)
    assert validate_output(spec, result.data).is_valid
    assert result.confidence is not None
    assert result.confidence >= 0.85


@pytest.mark.slow
def test_result_describes_the_run() -> None:
    result = read_sample("hexaco-a.png")
    assert result.model == f"rapidocr-{engine.version()}"
    assert result.usage.tokens_in == result.usage.tokens_out == 0
    assert "Honesty-Humility" in result.raw_text
    raw = result.raw_response
    json.dumps(raw)  # kept on the extraction as JSON
    assert raw["pages"] == [{"page": 0, "source": "ocr", "boxes": len(raw["lines"])}]
    line = raw["lines"][0]
    assert set(line) == {"text", "box", "score", "page"}
    assert raw["fields"]["openness"]["source"] == "right"


@pytest.mark.slow
def test_pdf_pages_are_read_from_the_text_layer_or_rendered() -> None:
    def sources(name: str) -> list[str]:
        return [page["source"] for page in read_sample(name).raw_response["pages"]]

    assert sources("riasec-a.pdf") == ["text"]
    assert sources("hexaco-b.pdf") == ["ocr"]
    assert sources("strengths-profile-b.pdf") == ["text", "ocr"]
    # Text read from a text layer needs no recognition and is fully trusted.
    assert {
        line["score"] for line in read_sample("riasec-a.pdf").raw_response["lines"]
    } == {1.0}


@pytest.mark.slow
def test_same_page_as_text_layer_and_as_scan_gives_the_same_values() -> None:
    sample = next(s for s in samples.SAMPLES if s.file == "riasec-a.pdf")
    values = sample.values(sample.name)
    scanned = samples.Sample(
        sample.file, sample.type, sample.values, sample.layout, ("scan",), tilt=0.3
    )
    content = samples.render_pdf(scanned, values)

    result = provider().extract(request_for(sample.type, content, "application/pdf"))

    assert [p["source"] for p in result.raw_response["pages"]] == ["ocr"]
    assert result.data == read_sample(sample.file).data == values


def image_bytes(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.mark.slow
def test_transparent_and_small_images_are_read() -> None:
    from example_project.demo.sample_canvas import noto_sans

    image = Image.new("RGBA", (420, 90), (0, 0, 0, 0))
    from PIL import ImageDraw

    ImageDraw.Draw(image).text(
        (10, 20), "Openness: 73%", font=noto_sans(30), fill=(0, 0, 0, 255)
    )
    result = provider().extract(
        request_for("big-five", image_bytes(image, "PNG"), "image/png")
    )
    assert result.data == {"openness": 73}
    assert result.confidence is not None
    assert 0 < result.confidence < 0.5


@pytest.mark.slow
def test_a_blank_page_gives_no_data() -> None:
    blank = image_bytes(Image.new("RGB", (600, 800), "white"), "PNG")
    result = provider().extract(request_for("big-five", blank, "image/png"))
    assert result.data == {}
    assert result.confidence == 0.0
    assert result.raw_text == ""


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"%PDF-1.7\n1 0 obj garbage", "application/pdf", "PDF"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png", "image"),
        (b"not an image at all", "image/jpeg", "neither an image nor a PDF"),
        (b"", "image/png", "empty"),
        (b"name,score\nOpenness,73\n", "text/csv", "not text/csv"),
    ],
)
def test_unreadable_input_is_a_permanent_error(
    content: bytes, content_type: str, message: str
) -> None:
    with pytest.raises(PermanentProviderError, match=message):
        provider().extract(request_for("big-five", content, content_type))


def test_truncated_image_is_a_permanent_error() -> None:
    png = image_bytes(Image.new("RGB", (300, 300), "white"), "PNG")
    with pytest.raises(PermanentProviderError, match="cannot be decoded"):
        provider().extract(request_for("big-five", png[: len(png) // 2], "image/png"))


def test_pdf_without_pages_is_a_permanent_error() -> None:
    from pypdf import PdfWriter

    buffer = io.BytesIO()
    PdfWriter().write(buffer)
    with pytest.raises(PermanentProviderError, match="no pages"):
        provider().extract(
            request_for("big-five", buffer.getvalue(), "application/pdf")
        )


def test_missing_rapidocr_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_engines", {})
    monkeypatch.setitem(sys.modules, "rapidocr", None)
    with pytest.raises(MissingExtra, match=r"django-cf-ingest\[ocr\]"):
        engine.get_engine()


def test_check_reports_a_missing_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    assert provider().check() == []

    monkeypatch.setattr(engine, "missing_modules", lambda: ["rapidocr"])
    [message] = provider().check()
    assert message.id == "cf_ingest.E020"
    assert message.hint == 'pip install "django-cf-ingest[ocr]"'


def test_check_reports_missing_bundled_models(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(engine, "bundled_models_dir", lambda: tmp_path)
    [message] = provider().check()
    assert message.id == "cf_ingest.E021"


def test_engine_refuses_to_start_without_its_models(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from rapidocr import RapidOCR

    def rooted_elsewhere(*args: Any, params: dict[str, Any]) -> Any:
        return RapidOCR(params={**params, "Global.model_root_dir": str(tmp_path)})

    monkeypatch.setattr(engine, "_engines", {})
    monkeypatch.setattr("rapidocr.RapidOCR", rooted_elsewhere)
    with pytest.raises(ImproperlyConfigured, match="bundled models are missing"):
        engine.get_engine()
    assert list(tmp_path.iterdir()) == []  # nothing was downloaded


def test_options_are_checked(ingest_settings: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="DPI"):
        OcrProvider("ocr", {"DPI": 300})
    with pytest.raises(ImproperlyConfigured, match="Options"):
        OcrProvider("ocr", {"THREADS": "many"})
    with pytest.raises(ImproperlyConfigured, match="DETECTION_SIDE at least 320"):
        OcrProvider("ocr", {"DETECTION_SIDE": 100})

    options = {"RENDER_DPI": 100, "THREADS": 1, "DETECTION_SIDE": 960}
    ingest_settings(PROVIDERS={"ocr": options})
    configured = get_provider("ocr")
    assert isinstance(configured, OcrProvider)
    assert (configured.render_dpi, configured.threads) == (100.0, 1)
    assert configured.detection_side == 960
    assert configured.supports_reask is False


@pytest.mark.slow
@pytest.mark.django_db
def test_pipeline_runs_the_ocr_provider_on_an_upload(ingest_settings: Any) -> None:
    from django_cf_ingest.models import Extraction, ProviderCall, UploadStatus
    from django_cf_ingest.pipeline import process_upload
    from django_cf_ingest.services import create_upload

    ingest_settings(PROVIDER_CHAIN=["ocr"])
    entry = next(e for e in MANIFEST if e["file"] == "strengths-profile-b.pdf")
    with (samples.SAMPLES_DIR / entry["file"]).open("rb") as handle:
        upload = create_upload(handle, entry["type"], name=entry["file"])

    process_upload(upload.pk)

    upload.refresh_from_db()
    extraction = Extraction.objects.get(upload=upload)
    call = ProviderCall.objects.get(upload=upload)
    assert upload.status == UploadStatus.NEEDS_REVIEW
    assert extraction.is_valid
    assert extraction.data == entry["expected"]
    assert extraction.confidence >= 0.85
    assert (call.provider, call.model, call.status) == (
        "ocr",
        engine.model_name(),
        "ok",
    )
    assert (call.tokens_in, call.tokens_out) == (0, 0)


@pytest.mark.slow
def test_threads_share_one_engine() -> None:
    content = (samples.SAMPLES_DIR / "hexaco-a.png").read_bytes()
    results: list[dict[str, Any] | None] = []
    engines: list[Any] = []

    def work() -> None:
        engines.append(engine.get_engine())
        result = provider().extract(request_for("hexaco", content, "image/png"))
        results.append(result.data)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(results) == 3
    assert all(data == read_sample("hexaco-a.png").data for data in results)
    assert all(e is engines[0] for e in engines)
