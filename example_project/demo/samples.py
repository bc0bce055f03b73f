"""Generate the demo's sample result documents and their manifest.

    python -m example_project.demo.samples [--out DIR]

Writes PNG and PDF result sheets of every demo document type into
``example_project/demo/samples/`` with ``manifest.json``, which lists each
file, its document type and the values printed on it. Raster pages are drawn
with Pillow in Noto Sans (from the ``fontpkg-noto-sans`` package). PDF pages
are either real text (Helvetica, written by ``sample_pdf``) or scans: a
raster page, tinted, tilted and blurred a little, stored as a JPEG image.
Every value comes from a seeded generator, so the output is the same on every
run.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import sample_data, sample_layouts
from .sample_canvas import Canvas, PdfCanvas, RasterCanvas
from .sample_pdf import PdfDocument, PdfPage

PageKind = Literal["text", "scan"]

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
PNG_SCALE = 2.0
SCAN_SCALE = 2.0


@dataclass(frozen=True)
class Sample:
    file: str
    type: str
    values: Callable[[str], dict[str, Any]]
    layout: sample_layouts.Layout
    #: For PDFs, how each page is made; the last kind repeats.
    pages: tuple[PageKind, ...] = ("text",)
    #: Degrees a scanned page is turned by.
    tilt: float = 0.0

    @property
    def name(self) -> str:
        return Path(self.file).stem


SAMPLES = (
    Sample(
        "sixteen-personalities-a.png",
        "sixteen-personalities",
        sample_data.sixteen_personalities,
        sample_layouts.sixteen_band,
    ),
    Sample(
        "sixteen-personalities-b.pdf",
        "sixteen-personalities",
        sample_data.sixteen_personalities,
        sample_layouts.sixteen_table,
    ),
    Sample(
        "big-five-a.png", "big-five", sample_data.big_five, sample_layouts.big_five_bars
    ),
    Sample(
        "big-five-b.pdf",
        "big-five",
        lambda name: sample_data.big_five(name, decimals=True),
        sample_layouts.big_five_columns,
        pages=("scan",),
        tilt=0.4,
    ),
    Sample(
        "keirsey-a.png", "keirsey", sample_data.keirsey, sample_layouts.keirsey_cards
    ),
    Sample("riasec-a.pdf", "riasec", sample_data.riasec, sample_layouts.riasec_lines),
    Sample("riasec-b.png", "riasec", sample_data.riasec, sample_layouts.riasec_bars),
    Sample(
        "strengths-profile-a.png",
        "strengths-profile",
        sample_data.strengths_profile,
        sample_layouts.strengths_columns,
    ),
    Sample(
        "strengths-profile-b.pdf",
        "strengths-profile",
        sample_data.strengths_profile,
        sample_layouts.strengths_two_pages,
        pages=("text", "scan"),
        tilt=-0.3,
    ),
    Sample("hexaco-a.png", "hexaco", sample_data.hexaco, sample_layouts.hexaco_grid),
    Sample(
        "hexaco-b.pdf",
        "hexaco",
        sample_data.hexaco,
        sample_layouts.hexaco_cards,
        pages=("scan",),
        tilt=0.25,
    ),
    Sample(
        "generic-a.png",
        "generic",
        sample_data.generic_disc,
        sample_layouts.generic_table,
    ),
)


def render_png(sample: Sample, values: dict[str, Any]) -> bytes:
    canvases: list[RasterCanvas] = []

    def new_page(width: float, height: float) -> Canvas:
        if canvases:
            raise ValueError(f"{sample.file}: a PNG has one page.")
        canvases.append(RasterCanvas(width, height, PNG_SCALE))
        return canvases[0]

    sample.layout(new_page, values)
    return canvases[0].png()


def render_pdf(sample: Sample, values: dict[str, Any]) -> bytes:
    document = PdfDocument()
    scans: list[tuple[PdfPage, RasterCanvas]] = []

    def new_page(width: float, height: float) -> Canvas:
        index = len(document.pages)
        kind = sample.pages[min(index, len(sample.pages) - 1)]
        page = document.add_page(width, height)
        if kind == "text":
            return PdfCanvas(page)
        canvas = RasterCanvas(width, height, SCAN_SCALE)
        scans.append((page, canvas))
        return canvas

    sample.layout(new_page, values)
    for page, canvas in scans:
        jpeg, width, height = canvas.scanned_jpeg(sample.tilt)
        page.image(jpeg, (width, height), (0, 0, page.width, page.height))
    return document.to_bytes()


def render(sample: Sample) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes and the values printed on it."""
    values = sample.values(sample.name)
    if sample.file.endswith(".png"):
        return render_png(sample, values), values
    return render_pdf(sample, values), values


def generate(out: Path) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for sample in SAMPLES:
        content, values = render(sample)
        (out / sample.file).write_bytes(content)
        manifest.append({"file": sample.file, "type": sample.type, "expected": values})
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR)
    args = parser.parse_args(argv)
    manifest = generate(args.out)
    for entry in manifest:
        size = (args.out / entry["file"]).stat().st_size
        print(f"{entry['file']:<32} {entry['type']:<22} {size / 1024:7.1f} KiB")
    print(f"{len(manifest)} documents and manifest.json in {args.out}")


if __name__ == "__main__":
    main()
