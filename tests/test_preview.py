"""Page images of uploads, and signed preview URLs for S3-compatible storage."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from django_cf_ingest.models import Upload
from django_cf_ingest.preview import (
    PreviewUnavailable,
    page_count,
    render_page,
)
from django_cf_ingest.storage import preview_url

from .admin_factories import make_pdf, make_upload
from .conftest import make_png

pytestmark = pytest.mark.django_db


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def test_image_is_drawn_as_png_no_wider_than_asked() -> None:
    upload = make_upload(content=make_png("wide", size=(1000, 300)))

    assert page_count(upload) == 1
    assert png_size(render_page(upload, 1, width=500)) == (500, 150)
    assert png_size(render_page(upload, 1, width=2000)) == (1000, 300)
    with pytest.raises(PreviewUnavailable):
        render_page(upload, 2)


def test_pdf_pages_are_rendered() -> None:
    upload = make_upload("sheet.pdf", content=make_pdf(pages=3))

    assert upload.content_type == "application/pdf"
    assert page_count(upload) == 3
    width, height = png_size(render_page(upload, 3, width=400))
    assert width == 400
    assert height > width
    with pytest.raises(PreviewUnavailable):
        render_page(upload, 4)


def test_missing_file_is_unavailable() -> None:
    upload = make_upload(content=make_png("a file that goes missing"))
    upload.file.storage.delete(upload.file.name)

    with pytest.raises(PreviewUnavailable):
        render_page(upload)


def test_no_preview_url_for_local_storage() -> None:
    upload = make_upload()

    assert preview_url(upload) is None


def test_signed_preview_url_for_s3_storage() -> None:
    from storages.backends.s3 import S3Storage

    upload = Upload(file="cf_ingest/2026/01/abc/sheet.png", content_type="image/png")
    upload.file.storage = S3Storage(
        bucket_name="uploads",
        endpoint_url="https://account.r2.cloudflarestorage.com",
        access_key="AKIAEXAMPLE",
        secret_key="not-a-real-secret",
        region_name="auto",
        querystring_auth=True,
    )

    url = preview_url(upload)

    assert url is not None
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.netloc == "account.r2.cloudflarestorage.com"
    assert parts.path.endswith("/cf_ingest/2026/01/abc/sheet.png")
    assert "X-Amz-Signature" in query
    assert query["X-Amz-Expires"] == ["300"]
    assert query["response-content-type"] == ["image/png"]
