"""Turning an uploaded file into pages of positioned text.

Images are recognised with OCR. A PDF page with a text layer is read from
that layer (pypdf); a page without one (a scan) is rendered (pypdfium2) and
recognised like an image. The decision is made page by page.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from ...exceptions import MissingExtra, PermanentProviderError
from .layout import TextBox

logger = logging.getLogger("django_cf_ingest.providers.ocr")

Recognise = Callable[[Image.Image], list[TextBox]]

PDF_MAGIC = b"%PDF-"
#: A page whose text layer has fewer letters and digits than this is a scan.
MIN_TEXT_LAYER_CHARS = 16
#: Longest side, in pixels, that images are recognised at.
MAX_SIDE = 2400
MIN_SIDE = 1000
#: Text-layer pages are laid out on a grid of this many pixels per character
#: column and per line, close to what OCR measures on a page rendered at 2x.
COLUMN_WIDTH = 10.0
LINE_PITCH = 28.0
LINE_HEIGHT = 20.0

#: PDFium keeps global state and is not safe to call from two threads at once.
_pdfium_lock = threading.Lock()
#: A run of text: words apart by at most two spaces.
_RUN = re.compile(r"\S+(?: {1,2}\S+)*")


@dataclass
class Page:
    boxes: list[TextBox]
    #: "text" when read from the PDF's text layer, "ocr" when recognised.
    source: Literal["text", "ocr"]


def read_pages(
    content: bytes, recognise: Recognise, *, max_pages: int, render_dpi: float
) -> list[Page]:
    """Pages of text boxes in ``content``; raises ``PermanentProviderError``
    for files that are neither a readable image nor a readable PDF."""
    if not content:
        raise PermanentProviderError("The file is empty.")
    if PDF_MAGIC in content[:1024]:
        return _read_pdf(content, recognise, max_pages, render_dpi)
    return [Page(recognise(image), "ocr") for image in _images(content, max_pages)]


def prepare(image: Image.Image) -> Image.Image:
    """An RGB image on white, upright, at a size OCR reads well."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    else:
        image = image.convert("RGB")
    longest = max(image.size)
    if longest > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    elif longest < MIN_SIDE:
        factor = MIN_SIDE / longest
        size = (round(image.width * factor), round(image.height * factor))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def _images(content: bytes, max_pages: int) -> list[Image.Image]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as source:
                # TIFF holds multi-page scans; other formats' frames are animation.
                frames = (
                    getattr(source, "n_frames", 1) if source.format == "TIFF" else 1
                )
                images = []
                for frame in range(min(frames, max_pages)):
                    source.seek(frame)
                    source.load()
                    images.append(prepare(source))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PermanentProviderError("The image has too many pixels.") from exc
    except UnidentifiedImageError as exc:
        raise PermanentProviderError(
            "The file is neither an image nor a PDF the ocr provider can read."
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PermanentProviderError(f"The image cannot be decoded: {exc}") from exc
    return images


def _read_pdf(
    content: bytes, recognise: Recognise, max_pages: int, render_dpi: float
) -> list[Page]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(content), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise PermanentProviderError("The PDF is encrypted.")
        count = len(reader.pages)
    except PermanentProviderError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise PermanentProviderError(f"The PDF cannot be read: {exc}") from exc
    if count == 0:
        raise PermanentProviderError("The PDF has no pages.")

    pages = []
    for number in range(min(count, max_pages)):
        boxes = _text_layer(reader, number)
        if boxes is not None:
            pages.append(Page(boxes, "text"))
        else:
            image = _render(content, number, render_dpi)
            pages.append(Page(recognise(image), "ocr"))
    return pages


def _text_layer(reader: Any, number: int) -> list[TextBox] | None:
    """The page's text layer as boxes, or None when the page has none.

    pypdf's layout mode lays the text out on a character grid; each run of
    text separated by three or more spaces becomes a box on that grid.
    """
    try:
        text = reader.pages[number].extract_text(extraction_mode="layout")
    except Exception as exc:  # A broken text layer is read as a scan instead.
        logger.debug(
            "pdf text layer unreadable page=%s error=%s", number, type(exc).__name__
        )
        return None
    if sum(ch.isalnum() for ch in text) < MIN_TEXT_LAYER_CHARS:
        return None
    boxes = []
    for line_number, line in enumerate(text.splitlines()):
        top = line_number * LINE_PITCH
        for run in _RUN.finditer(line):
            boxes.append(
                TextBox(
                    run.group(),
                    run.start() * COLUMN_WIDTH,
                    top,
                    run.end() * COLUMN_WIDTH,
                    top + LINE_HEIGHT,
                )
            )
    return boxes


def _render(content: bytes, number: int, dpi: float) -> Image.Image:
    try:
        import pypdfium2
    except ImportError as exc:
        raise MissingExtra("The ocr provider", "ocr") from exc

    with _pdfium_lock:
        try:
            document = pypdfium2.PdfDocument(content)
        except pypdfium2.PdfiumError as exc:
            raise PermanentProviderError(f"The PDF cannot be rendered: {exc}") from exc
        try:
            page = document[number]
            width, height = page.get_size()
            scale = min(dpi / 72, MAX_SIDE / max(width, height, 1))
            bitmap = page.render(scale=scale)
            image = bitmap.to_pil().convert("RGB")
            page.close()
        except pypdfium2.PdfiumError as exc:
            raise PermanentProviderError(f"The PDF cannot be rendered: {exc}") from exc
        finally:
            document.close()
    return prepare(image)
