"""Turning an upload's bytes into something a vision model accepts.

Vendors take a few image formats inline; other images (GIF, TIFF) are
converted to PNG here, first frame only. PDFs are either sent as they are or
rendered page by page to PNG with pypdfium2 (the ``ocr`` extra).
"""

from __future__ import annotations

import base64
import io

from PIL import Image, UnidentifiedImageError

from ..exceptions import PermanentProviderError

PDF = "application/pdf"
#: Resolution of rendered PDF pages: twice 72 dpi reads small print well.
PDF_RENDER_SCALE = 2.0


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode("ascii")


def data_url(content: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{b64(content)}"


def to_png(content: bytes) -> bytes:
    """The image's first frame as PNG."""
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.seek(0)
            frame = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PermanentProviderError(f"The image cannot be read: {exc}") from exc
    buffer = io.BytesIO()
    frame.save(buffer, format="PNG")
    return buffer.getvalue()


def image_for(
    content: bytes, content_type: str, accepted: frozenset[str]
) -> tuple[bytes, str]:
    """The image as is when the vendor accepts its type, else as PNG."""
    if content_type in accepted:
        return content, content_type
    return to_png(content), "image/png"


def pdf_pages_as_png(content: bytes, max_pages: int) -> list[bytes]:
    """The first ``max_pages`` pages of a PDF rendered to PNG."""
    try:
        import pypdfium2
    except ImportError as exc:
        raise PermanentProviderError(
            'Rendering PDF pages needs pypdfium2: pip install "django-cf-ingest[ocr]"'
        ) from exc
    try:
        document = pypdfium2.PdfDocument(content)
    except pypdfium2.PdfiumError as exc:
        raise PermanentProviderError(f"The PDF cannot be read: {exc}") from exc
    pages = []
    try:
        for index in range(min(len(document), max_pages)):
            page = document[index]
            try:
                bitmap = page.render(scale=PDF_RENDER_SCALE)
                image = bitmap.to_pil()
            finally:
                page.close()
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            pages.append(buffer.getvalue())
    finally:
        document.close()
    return pages
