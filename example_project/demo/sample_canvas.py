"""Drawing surfaces for the sample documents.

A layout draws in points, origin at the top left, on a ``Canvas``. The same
layout can land on a raster page (Pillow, Noto Sans from the
``fontpkg-noto-sans`` package) or on a PDF page with a real text layer.
"""

from __future__ import annotations

import io
from functools import cache
from typing import Literal, Protocol

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .sample_pdf import Color, PdfPage

Weight = Literal["regular", "bold"]
Anchor = Literal["left", "right", "centre"]

INK: Color = (33, 37, 41)


@cache
def noto_sans(size: float, weight: Weight = "regular") -> ImageFont.FreeTypeFont:
    """Noto Sans at ``size`` pixels, from the font package, never the system."""
    import fontpkg.pil

    return fontpkg.pil.truetype(
        "Noto Sans", size, weight=700 if weight == "bold" else 400
    )


def measure(text: str, size: float, weight: Weight = "regular") -> float:
    """Width of ``text`` in points (measured at 10x for sub-point precision)."""
    return float(noto_sans(size * 10, weight).getlength(text)) / 10


class Canvas(Protocol):
    width: float
    height: float

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: Color) -> None: ...

    def line(
        self, x0: float, y0: float, x1: float, y1: float, color: Color, width: float
    ) -> None: ...

    def text(
        self,
        x: float,
        top: float,
        text: str,
        size: float,
        weight: Weight = "regular",
        fill: Color = INK,
        anchor: Anchor = "left",
    ) -> None: ...


def _left(x: float, width: float, anchor: Anchor) -> float:
    if anchor == "right":
        return x - width
    if anchor == "centre":
        return x - width / 2
    return x


class RasterCanvas:
    """A Pillow image; ``scale`` pixels per point."""

    def __init__(
        self, width: float, height: float, scale: float, paper: Color = (255, 255, 255)
    ) -> None:
        self.width, self.height, self.scale = width, height, scale
        self.image = Image.new(
            "RGB", (round(width * scale), round(height * scale)), paper
        )
        self.draw = ImageDraw.Draw(self.image)

    def _px(self, value: float) -> int:
        return round(value * self.scale)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: Color) -> None:
        box = (self._px(x0), self._px(y0), self._px(x1) - 1, self._px(y1) - 1)
        self.draw.rectangle(box, fill=fill)

    def line(
        self, x0: float, y0: float, x1: float, y1: float, color: Color, width: float
    ) -> None:
        points = [(self._px(x0), self._px(y0)), (self._px(x1), self._px(y1))]
        self.draw.line(points, fill=color, width=max(1, self._px(width)))

    def text(
        self,
        x: float,
        top: float,
        text: str,
        size: float,
        weight: Weight = "regular",
        fill: Color = INK,
        anchor: Anchor = "left",
    ) -> None:
        left = _left(x, measure(text, size, weight), anchor)
        font = noto_sans(round(size * self.scale), weight)
        self.draw.text((self._px(left), self._px(top)), text, font=font, fill=fill)

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()

    def scanned_jpeg(self, tilt: float, quality: int = 70) -> tuple[bytes, int, int]:
        """The page as a scanner would give it: tinted, a little skewed and soft."""
        paper = (246, 244, 238)
        tinted = Image.blend(self.image, Image.new("RGB", self.image.size, paper), 0.12)
        skewed = tinted.rotate(
            tilt, resample=Image.Resampling.BICUBIC, fillcolor=paper, expand=False
        )
        soft = skewed.filter(ImageFilter.GaussianBlur(0.6))
        buffer = io.BytesIO()
        soft.save(buffer, format="JPEG", quality=quality, optimize=True)
        return buffer.getvalue(), soft.width, soft.height


class PdfCanvas:
    """A PDF page whose text is real text (Helvetica), in points."""

    #: Cap height plus a little: from the top of the line box to the baseline.
    ASCENT = 0.78

    def __init__(self, page: PdfPage) -> None:
        self.page = page
        self.width, self.height = page.width, page.height

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: Color) -> None:
        self.page.rect(x0, y0, x1, y1, fill)

    def line(
        self, x0: float, y0: float, x1: float, y1: float, color: Color, width: float
    ) -> None:
        self.page.line(x0, y0, x1, y1, color, width)

    def text(
        self,
        x: float,
        top: float,
        text: str,
        size: float,
        weight: Weight = "regular",
        fill: Color = INK,
        anchor: Anchor = "left",
    ) -> None:
        # Helvetica runs a little narrower than Noto Sans.
        left = _left(x, measure(text, size, weight) * 0.95, anchor)
        self.page.text(left, top + size * self.ASCENT, text, size, weight, fill)


def wrap(text: str, width: float, size: float, weight: Weight = "regular") -> list[str]:
    """Break ``text`` into lines no wider than ``width`` points."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        attempt = f"{current} {word}".strip()
        if current and measure(attempt, size, weight) > width:
            lines.append(current)
            current = word
        else:
            current = attempt
    if current:
        lines.append(current)
    return lines
