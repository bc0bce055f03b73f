"""Pictures of uploaded documents for people: page images and the file itself.

Both admin sites show documents through views that check the viewer's
permission first; nothing here hands out a storage URL. Images are re-encoded
as PNG (so TIFF and other formats browsers cannot show still display), and
PDF pages are rendered with pypdfium2 when it is installed.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from PIL import Image, ImageOps

if TYPE_CHECKING:
    from .models import Upload

logger = logging.getLogger("django_cf_ingest.preview")

PDF = "application/pdf"
#: Width in pixels of a page on the review screen, and of a listing thumbnail.
PAGE_WIDTH = 1400
THUMBNAIL_WIDTH = 160
#: How long a drawn page stays in the cache.
CACHE_SECONDS = 3600


class PreviewUnavailable(Exception):
    """The document cannot be drawn here (a missing file or renderer)."""


def can_render_pdf() -> bool:
    try:
        import pypdfium2  # noqa: F401
    except ImportError:
        return False
    return True


def _read(upload: Upload) -> bytes:
    try:
        with upload.file.open("rb") as stream:
            return stream.read()
    except (FileNotFoundError, OSError) as exc:
        raise PreviewUnavailable("The upload's file cannot be read.") from exc


def page_count(upload: Upload) -> int:
    """How many pages the review screen shows: one for an image."""
    if upload.content_type != PDF:
        return 1
    from pypdf import PdfReader

    try:
        with upload.file.open("rb") as stream:
            return len(PdfReader(stream, strict=False).pages)
    except Exception as exc:
        raise PreviewUnavailable("The PDF cannot be read.") from exc


def _png(image: Image.Image) -> bytes:
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _render_image(data: bytes, width: int) -> bytes:
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        if image.width > width:
            height = max(1, round(image.height * width / image.width))
            image = image.resize((width, height), Image.Resampling.LANCZOS)
        return _png(image)


def _render_pdf_page(data: bytes, number: int, width: int) -> bytes:
    try:
        import pypdfium2 as pdfium
    except ImportError as exc:
        raise PreviewUnavailable("pypdfium2 is not installed.") from exc
    document = pdfium.PdfDocument(data)
    try:
        if not 1 <= number <= len(document):
            raise PreviewUnavailable(f"The PDF has no page {number}.")
        page = document[number - 1]
        try:
            page_width, _height = page.get_size()
            bitmap = page.render(scale=width / page_width if page_width else 1)
            return _png(bitmap.to_pil())
        finally:
            page.close()
    finally:
        document.close()


def render_page(upload: Upload, number: int = 1, *, width: int = PAGE_WIDTH) -> bytes:
    """Page ``number`` (from 1) of the upload as PNG bytes, at most ``width``
    pixels wide for images and exactly that wide for PDF pages.

    Pictures are kept in the default cache under the file's hash, so a
    listing's thumbnails are drawn once rather than on every visit.
    """
    key = f"cf_ingest:page:{upload.sha256}:{number}:{width}" if upload.sha256 else ""
    if key:
        cached = cache.get(key)
        if isinstance(cached, bytes):
            return cached
    picture = _render(upload, number, width)
    if key:
        cache.set(key, picture, CACHE_SECONDS)
    return picture


def _render(upload: Upload, number: int, width: int) -> bytes:
    data = _read(upload)
    if upload.content_type == PDF:
        return _render_pdf_page(data, number, width)
    if number != 1:
        raise PreviewUnavailable(f"An image has no page {number}.")
    try:
        return _render_image(data, width)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PreviewUnavailable("The image cannot be drawn.") from exc


def png_response(data: bytes) -> HttpResponse:
    response = HttpResponse(data, content_type="image/png")
    # Private: the picture is of a private document, for this viewer only.
    response["Cache-Control"] = "private, max-age=600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def file_response(upload: Upload) -> FileResponse:
    """The upload's file, to be shown inline in the browser."""
    try:
        stream = upload.file.open("rb")
    except (FileNotFoundError, OSError) as exc:
        raise PreviewUnavailable("The upload's file cannot be read.") from exc
    response = FileResponse(
        stream,
        content_type=upload.content_type or "application/octet-stream",
        filename=upload.original_name or "document",
        as_attachment=False,
    )
    response["Cache-Control"] = "private, max-age=600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def original_response(upload: Upload) -> HttpResponseBase:
    """The upload's file for a viewer already allowed to see it: a redirect to
    a short-lived signed URL where the storage signs, else the file streamed
    by this process. Raises ``Http404`` when the file cannot be read."""
    from .storage import preview_url

    signed = preview_url(upload)
    if signed:
        return HttpResponseRedirect(signed)
    try:
        return file_response(upload)
    except PreviewUnavailable as exc:
        raise Http404(str(exc)) from exc
