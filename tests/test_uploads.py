from __future__ import annotations

import hashlib
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from PIL import Image

from django_cf_ingest.models import DocumentType, OutboxMessage, Upload, UploadStatus
from django_cf_ingest.services import create_upload

from .conftest import make_png

pytestmark = pytest.mark.django_db


def test_content_type_is_sniffed_from_the_bytes(png_bytes: bytes) -> None:
    upload = create_upload(io.BytesIO(png_bytes), "big-five", name="scores.pdf")

    assert upload.content_type == "image/png"
    assert upload.size == len(png_bytes)
    assert upload.sha256 == hashlib.sha256(png_bytes).hexdigest()
    assert upload.original_name == "scores.pdf"
    with upload.file.open("rb") as stored:
        assert stored.read() == png_bytes


def test_jpeg_and_pdf_are_recognised() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (50, 50), "white").save(buffer, format="JPEG")
    jpeg = create_upload(io.BytesIO(buffer.getvalue()), "big-five", name="a.png")
    pdf_buffer = io.BytesIO()
    Image.new("RGB", (50, 50), "white").save(pdf_buffer, format="PDF")
    pdf = create_upload(io.BytesIO(pdf_buffer.getvalue()), "big-five", name="a.jpg")

    assert jpeg.content_type == "image/jpeg"
    assert pdf.content_type == "application/pdf"


@pytest.mark.parametrize(
    ("payload", "code", "words"),
    [
        (b"", "empty", "empty"),
        (b"hello, this is plain text", "unsupported_type", "not a supported"),
        (make_png()[:200], "corrupt", "corrupt"),
        (b"%PDF-1.7\n garbage that is no pdf", "corrupt", "corrupt"),
    ],
)
def test_bad_files_are_refused_and_not_queued(
    payload: bytes, code: str, words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        create_upload(io.BytesIO(payload), "big-five", name="bad.png")

    assert caught.value.error_dict["file"][0].code == code
    assert words in str(caught.value)
    assert not Upload.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_oversized_file_is_refused(ingest_settings, png_bytes: bytes) -> None:
    ingest_settings(MAX_UPLOAD_SIZE=100)

    with pytest.raises(ValidationError, match="larger than the maximum of 100 bytes"):
        create_upload(io.BytesIO(png_bytes), "big-five", name="big.png")
    assert not OutboxMessage.objects.exists()


def test_type_outside_the_allowed_list_is_refused(ingest_settings) -> None:
    ingest_settings(ALLOWED_CONTENT_TYPES=["application/pdf"])

    with pytest.raises(ValidationError, match="image/png are not accepted"):
        create_upload(io.BytesIO(make_png()), "big-five", name="a.png")


def test_objects_create_validates_too(png_bytes: bytes) -> None:
    doc_type = DocumentType.objects.get(slug="big-five")
    upload = Upload.objects.create(
        document_type=doc_type, file=ContentFile(png_bytes, name="direct.png")
    )

    assert upload.content_type == "image/png"
    assert OutboxMessage.objects.filter(upload=upload).count() == 1
    with pytest.raises(ValidationError):
        Upload.objects.create(
            document_type=doc_type, file=ContentFile(b"nope", name="nope.png")
        )


def test_rolled_back_upload_leaves_no_message(png_bytes: bytes) -> None:
    def upload_then_fail() -> None:
        with transaction.atomic():
            create_upload(io.BytesIO(png_bytes), "big-five", name="a.png")
            raise RuntimeError("the view failed after the upload")

    with pytest.raises(RuntimeError):
        upload_then_fail()

    assert not Upload.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_new_upload_starts_uploaded(png_bytes: bytes) -> None:
    # Inside the test's transaction nothing has committed, so nothing relayed.
    upload = create_upload(io.BytesIO(png_bytes), "big-five", name="a.png")

    assert upload.status == UploadStatus.UPLOADED
    message = OutboxMessage.objects.get(upload=upload)
    assert message.body == {"uploadId": upload.pk}
    assert message.sent_at is None
