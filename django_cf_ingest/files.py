"""Inspection of uploaded files: size, sha256 and a content type sniffed from
the bytes. What the client claimed the file is plays no part."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import IO

from PIL import Image, UnidentifiedImageError

from .conf import get_settings
from .exceptions import UploadRejected

CHUNK_SIZE = 1024 * 1024
PDF_MAGIC = b"%PDF-"


@dataclass(frozen=True)
class FileInfo:
    content_type: str
    size: int
    sha256: str


def _hash_and_size(stream: IO[bytes], max_size: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        size += len(chunk)
        if size > max_size:
            raise UploadRejected(
                f"The file is larger than the maximum of {max_size:,} bytes.",
                code="too_large",
            )
        digest.update(chunk)
    return digest.hexdigest(), size


def _sniff_pdf(stream: IO[bytes]) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    max_pages = get_settings().MAX_PDF_PAGES
    try:
        reader = PdfReader(stream, strict=False)
        if reader.is_encrypted:
            raise UploadRejected("The PDF is encrypted.", code="encrypted")
        pages = len(reader.pages)
    except UploadRejected:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UploadRejected(f"The PDF is corrupt: {exc}", code="corrupt") from exc
    if pages == 0:
        raise UploadRejected("The PDF has no pages.", code="corrupt")
    if pages > max_pages:
        raise UploadRejected(
            f"The PDF has {pages} pages; the maximum is {max_pages}.",
            code="too_many_pages",
        )
    return "application/pdf"


def _sniff_image(stream: IO[bytes]) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                image_format = image.format
                image.verify()
            # verify() does not decode pixels; a truncated body only shows on load.
            stream.seek(0)
            with Image.open(stream) as image:
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadRejected(
            "The image has too many pixels.", code="too_large"
        ) from exc
    except UnidentifiedImageError as exc:
        raise UploadRejected(
            "The file is not a supported image or PDF.", code="unsupported_type"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected(f"The image is corrupt: {exc}", code="corrupt") from exc
    mime = Image.MIME.get(image_format or "")
    if not mime:
        raise UploadRejected("The image format is not supported.", "unsupported_type")
    return mime


def inspect_file(stream: IO[bytes]) -> FileInfo:
    """Check a file and describe it, or raise ``UploadRejected`` saying why."""
    config = get_settings()
    stream.seek(0)
    sha256, size = _hash_and_size(stream, config.MAX_UPLOAD_SIZE)
    if size == 0:
        raise UploadRejected("The file is empty.", code="empty")

    stream.seek(0)
    head = stream.read(1024)
    stream.seek(0)
    content_type = _sniff_pdf(stream) if PDF_MAGIC in head else _sniff_image(stream)
    stream.seek(0)

    if content_type not in config.ALLOWED_CONTENT_TYPES:
        raise UploadRejected(
            f"Files of type {content_type} are not accepted.", code="unsupported_type"
        )
    return FileInfo(content_type=content_type, size=size, sha256=sha256)


def inspect_bytes(data: bytes) -> FileInfo:
    return inspect_file(io.BytesIO(data))
