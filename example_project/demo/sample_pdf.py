"""A small PDF writer for the sample documents.

It writes pages with a real text layer (the standard Helvetica fonts, which
every PDF reader has, so nothing is embedded), filled rectangles, lines and
JPEG images. Output carries no dates or random identifiers, so the same
drawing gives the same bytes every time.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

FONTS = {"regular": "Helvetica", "bold": "Helvetica-Bold"}
_FONT_KEYS = {"regular": "F1", "bold": "F2"}

Color = tuple[int, int, int]


def _escape(text: str) -> bytes:
    raw = text.encode("cp1252")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _rgb(color: Color) -> str:
    return " ".join(f"{channel / 255:.3f}" for channel in color)


@dataclass
class PdfPage:
    """One page, drawn in points with the origin at the top left."""

    width: float
    height: float
    operations: list[str] = field(default_factory=list)
    images: list[tuple[str, bytes, int, int]] = field(default_factory=list)

    def _y(self, y: float) -> float:
        return self.height - y

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: Color) -> None:
        self.operations.append(
            f"{_rgb(fill)} rg {x0:.2f} {self._y(y1):.2f} "
            f"{x1 - x0:.2f} {y1 - y0:.2f} re f"
        )

    def line(
        self, x0: float, y0: float, x1: float, y1: float, color: Color, width: float
    ) -> None:
        self.operations.append(
            f"{_rgb(color)} RG {width:.2f} w {x0:.2f} {self._y(y0):.2f} m "
            f"{x1:.2f} {self._y(y1):.2f} l S"
        )

    def text(
        self,
        x: float,
        baseline: float,
        text: str,
        size: float,
        weight: str,
        fill: Color,
    ) -> None:
        font = _FONT_KEYS[weight]
        self.operations.append(
            f"BT /{font} {size:.2f} Tf {_rgb(fill)} rg "
            f"1 0 0 1 {x:.2f} {self._y(baseline):.2f} Tm ("
            + _escape(text).decode("latin-1")
            + ") Tj ET"
        )

    def image(
        self, jpeg: bytes, pixels: tuple[int, int], box: tuple[float, ...]
    ) -> None:
        """Place a JPEG image (its bytes and pixel size) into ``box``."""
        name = f"Im{len(self.images) + 1}"
        self.images.append((name, jpeg, *pixels))
        x0, y0, x1, y1 = box
        self.operations.append(
            f"q {x1 - x0:.2f} 0 0 {y1 - y0:.2f} {x0:.2f} {self._y(y1):.2f} cm "
            f"/{name} Do Q"
        )


class PdfDocument:
    def __init__(self) -> None:
        self.pages: list[PdfPage] = []

    def add_page(self, width: float, height: float) -> PdfPage:
        page = PdfPage(width, height)
        self.pages.append(page)
        return page

    def to_bytes(self) -> bytes:
        objects: list[bytes] = []

        def reserve() -> int:
            objects.append(b"")
            return len(objects)

        catalog, pages_id = reserve(), reserve()
        font_ids = {}
        for weight, base in FONTS.items():
            font_ids[weight] = reserve()
            objects[font_ids[weight] - 1] = (
                f"<< /Type /Font /Subtype /Type1 /BaseFont /{base} "
                "/Encoding /WinAnsiEncoding >>"
            ).encode()
        fonts = " ".join(
            f"/{_FONT_KEYS[weight]} {number} 0 R" for weight, number in font_ids.items()
        )

        kids = []
        for page in self.pages:
            page_id, content_id = reserve(), reserve()
            kids.append(page_id)
            xobjects = []
            for name, jpeg, width, height in page.images:
                image_id = reserve()
                header = (
                    f"<< /Type /XObject /Subtype /Image /Width {width} "
                    f"/Height {height} /ColorSpace /DeviceRGB /BitsPerComponent 8 "
                    f"/Filter /DCTDecode /Length {len(jpeg)} >>"
                ).encode()
                objects[image_id - 1] = header + b"\nstream\n" + jpeg + b"\nendstream"
                xobjects.append(f"/{name} {image_id} 0 R")
            resources = f"/Font << {fonts} >>"
            if xobjects:
                resources += f" /XObject << {' '.join(xobjects)} >>"
            objects[page_id - 1] = (
                f"<< /Type /Page /Parent {pages_id} 0 R "
                f"/MediaBox [0 0 {page.width:.2f} {page.height:.2f}] "
                f"/Resources << {resources} >> /Contents {content_id} 0 R >>"
            ).encode()
            stream = zlib.compress("\n".join(page.operations).encode("latin-1"), 9)
            objects[content_id - 1] = (
                f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
                + stream
                + b"\nendstream"
            )

        objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode()
        objects[pages_id - 1] = (
            f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] "
            f"/Count {len(kids)} >>"
        ).encode()
        return _serialise(objects, catalog)


def _serialise(objects: list[bytes], root: int) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root {root} 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)
