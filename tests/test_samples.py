"""The demo's sample documents: reproducible, varied, and acceptable uploads."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fontpkg_noto_sans
import pytest
from pypdf import PdfReader

from django_cf_ingest.files import inspect_bytes
from django_cf_ingest.registry import get_spec
from example_project.demo import samples
from example_project.demo.sample_canvas import noto_sans

MANIFEST = json.loads((samples.SAMPLES_DIR / "manifest.json").read_text())
DEMO_TYPES = {
    "sixteen-personalities",
    "big-five",
    "keirsey",
    "riasec",
    "strengths-profile",
    "hexaco",
    "generic",
}


def test_generation_is_deterministic_and_matches_the_committed_files(
    tmp_path: Path,
) -> None:
    samples.main(["--out", str(tmp_path)])

    committed = samples.SAMPLES_DIR
    assert (tmp_path / "manifest.json").read_text() == (
        committed / "manifest.json"
    ).read_text()
    for entry in MANIFEST:
        fresh = (tmp_path / entry["file"]).read_bytes()
        assert fresh == (committed / entry["file"]).read_bytes(), entry["file"]


def test_manifest_lists_every_file_with_valid_expected_values() -> None:
    on_disk = {p.name for p in samples.SAMPLES_DIR.iterdir()} - {"manifest.json"}
    assert on_disk == {entry["file"] for entry in MANIFEST}
    for entry in MANIFEST:
        assert set(entry) == {"file", "type", "expected"}
        spec = get_spec(entry["type"])
        assert spec is not None, entry["type"]
        spec.model.model_validate(entry["expected"])
        # Every field of the type is printed, so every one can be checked.
        assert set(entry["expected"]) == set(spec.model.model_fields)


def test_every_type_in_png_and_pdf_and_varied_layouts() -> None:
    assert {entry["type"] for entry in MANIFEST} == DEMO_TYPES
    suffixes = {Path(entry["file"]).suffix for entry in MANIFEST}
    assert suffixes == {".png", ".pdf"}
    layouts = {sample.layout for sample in samples.SAMPLES}
    assert len(layouts) == len(samples.SAMPLES)
    for slug in DEMO_TYPES - {"keirsey", "generic"}:
        kinds = {Path(e["file"]).suffix for e in MANIFEST if e["type"] == slug}
        assert kinds == {".png", ".pdf"}, slug


def text_layer_pages(name: str) -> list[bool]:
    reader = PdfReader(io.BytesIO((samples.SAMPLES_DIR / name).read_bytes()))
    return [len(page.extract_text().strip()) > 0 for page in reader.pages]


def test_pdfs_with_a_text_layer_and_scanned_pdfs() -> None:
    pdfs = {
        e["file"]: text_layer_pages(e["file"]) for e in MANIFEST if ".pdf" in e["file"]
    }
    assert pdfs["riasec-a.pdf"] == [True]
    assert pdfs["sixteen-personalities-b.pdf"] == [True]
    assert pdfs["big-five-b.pdf"] == [False]
    assert pdfs["hexaco-b.pdf"] == [False]
    assert pdfs["strengths-profile-b.pdf"] == [True, False]


@pytest.mark.parametrize("entry", MANIFEST, ids=lambda e: e["file"])
def test_samples_are_small_valid_uploads(entry: dict[str, str]) -> None:
    content = (samples.SAMPLES_DIR / entry["file"]).read_bytes()
    assert len(content) < 300 * 1024
    info = inspect_bytes(content)
    expected = "application/pdf" if entry["file"].endswith(".pdf") else "image/png"
    assert info.content_type == expected


def test_values_printed_are_the_values_in_the_manifest() -> None:
    sample = next(s for s in samples.SAMPLES if s.file == "riasec-a.pdf")
    entry = next(e for e in MANIFEST if e["file"] == sample.file)
    text = PdfReader(io.BytesIO(samples.render(sample)[0])).pages[0].extract_text()
    assert f"Your code: {entry['expected']['code']}" in text
    assert f"Social (S) {entry['expected']['social']}/100" in text


def test_raster_text_uses_noto_sans_from_its_package() -> None:
    font = noto_sans(20)
    assert Path(font.path).is_relative_to(fontpkg_noto_sans.ROOT)
    assert font.getname()[0] == "Noto Sans"
