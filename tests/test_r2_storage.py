"""Uploads on R2 through django-storages, against moto's S3 server."""

from __future__ import annotations

import io
import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from botocore.config import Config
from django.core.exceptions import ImproperlyConfigured
from PIL import Image
from storages.backends.s3 import S3Storage

from django_cf_ingest.consumer.stage2 import file_chunks, s3_object
from django_cf_ingest.storage import get_upload_storage, preview_url

from .conftest import make_png
from .fakes.r2 import FakeR2
from .stage2_support import R2Bucket, fake_r2, new_upload, r2

__all__ = ["fake_r2", "r2"]

pytestmark = pytest.mark.django_db


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: side x side random RGB pixels."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def test_bucket_in_region_auto(fake_r2: FakeR2) -> None:
    bucket = fake_r2.create_bucket()
    location = fake_r2.client().get_bucket_location(Bucket=bucket)
    assert location["LocationConstraint"] == "auto"


def test_uploads_are_stored_through_django_storages(r2: R2Bucket) -> None:
    content = make_png("on R2")

    upload = new_upload(content)

    assert isinstance(upload.file.storage, S3Storage)
    assert r2.key_exists(upload.file.name)
    stored = r2.fake.client().get_object(Bucket=r2.name, Key=upload.file.name)
    assert stored["Body"].read() == content
    puts = [r for r in r2.fake.requests if r.method == "PUT"]
    assert puts
    assert not [
        name
        for request in puts
        for name in request.headers
        if name == "x-amz-acl" or name.startswith("x-amz-grant-")
    ]


def test_no_header_r2_rejects_is_sent(r2: R2Bucket) -> None:
    small = new_upload(make_png("small"))
    # Above boto3's 8 MB threshold: a multipart upload.
    large = new_upload(noise_png(1800), name="large.png")
    chunks = b"".join(file_chunks(get_upload_storage(), large.file.name))
    preview = preview_url(small)
    assert preview is not None
    httpx.get(preview).raise_for_status()

    requests = r2.fake.requests
    assert any("uploads" in parse_qs(r.query, keep_blank_values=True) for r in requests)
    assert any(r.method == "GET" and r.path.endswith(large.file.name) for r in requests)
    assert len(chunks) == large.size
    assert r2.fake.rejected() == []


def test_the_check_sees_what_default_boto3_sends(r2: R2Bucket) -> None:
    """Without the R2 settings, boto3 sends the checksums R2 refuses."""
    client = r2.fake.client(Config(signature_version="s3v4"))

    client.put_object(Bucket=r2.name, Key="default.bin", Body=b"x" * 100)
    client.get_object(Bucket=r2.name, Key="default.bin")["Body"].read()

    rejected = r2.fake.rejected()
    assert [method for method, _path, _found in rejected] == ["PUT", "GET"]
    assert "x-amz-sdk-checksum-algorithm" in rejected[0][2]
    assert "x-amz-checksum-mode" in rejected[1][2]


def test_consumer_reads_the_key_through_the_storage_client(r2: R2Bucket) -> None:
    content = noise_png(300)
    upload = new_upload(content)
    storage = get_upload_storage()

    client, bucket, key = s3_object(storage, upload.file.name) or (None, "", "")

    assert bucket == r2.name
    assert key == upload.file.name
    config = client.meta.config
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert client.meta.region_name == "auto"
    assert b"".join(file_chunks(storage, upload.file.name)) == content


def test_preview_url_is_signed_and_short_lived(r2: R2Bucket) -> None:
    content = make_png("preview")
    upload = new_upload(content)

    url = preview_url(upload)

    assert url is not None
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}" == r2.fake.endpoint_url
    assert query["X-Amz-Expires"] == ["300"]
    assert "X-Amz-Signature" in query
    assert "auto" in query["X-Amz-Credential"][0]
    answer = httpx.get(url)
    assert answer.content == content
    assert answer.headers["content-type"] == "image/png"


def test_preview_url_is_none_on_local_storage() -> None:
    assert preview_url(new_upload()) is None


def test_example_settings_put_uploads_on_r2(monkeypatch: Any) -> None:
    from example_project.settings import _storages

    monkeypatch.setenv("R2_BUCKET", "uploads")
    monkeypatch.setenv("CF_ACCOUNT_ID", "abc123")
    monkeypatch.setenv("R2_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("R2_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("R2_ACCOUNT_ID", raising=False)

    default = _storages()["default"]

    options = default["OPTIONS"]
    assert default["BACKEND"] == "storages.backends.s3.S3Storage"
    assert options["endpoint_url"] == "https://abc123.r2.cloudflarestorage.com"
    assert options["region_name"] == "auto"
    assert options["default_acl"] is None
    assert options["querystring_auth"] is True
    assert "custom_domain" not in options
    config = options["client_config"]
    assert config.signature_version == "s3v4"
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"

    monkeypatch.setenv("R2_ACCOUNT_ID", "def456")
    assert _storages()["default"]["OPTIONS"]["endpoint_url"] == (
        "https://def456.r2.cloudflarestorage.com"
    )
    monkeypatch.setenv("R2_ENDPOINT_URL", "https://eu.example")
    assert _storages()["default"]["OPTIONS"]["endpoint_url"] == "https://eu.example"

    for name in ("R2_ENDPOINT_URL", "R2_ACCOUNT_ID", "CF_ACCOUNT_ID"):
        monkeypatch.delenv(name)
    with pytest.raises(ImproperlyConfigured, match="R2_ACCOUNT_ID"):
        _storages()
