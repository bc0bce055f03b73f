"""The uploads listing, the upload form, the document views and who may see
them, in the Wagtail admin."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from bs4 import BeautifulSoup
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from PIL import Image

from django_cf_ingest.models import DocumentType, OutboxMessage, Upload, UploadStatus

from .admin_factories import (
    add_run,
    client_for,
    editor_client,
    make_pdf,
    make_upload,
    make_user,
)
from .conftest import make_png

pytestmark = pytest.mark.django_db

LISTING = "/admin/ingest/uploads/"


def names(response: Any) -> list[str]:
    """File names in the listing, in order."""
    soup = BeautifulSoup(response.content, "html.parser")
    return [
        cell.get_text(strip=True)
        for cell in soup.select("table.listing tbody td.title .title-wrapper")
    ]


@pytest.fixture
def listing_data() -> dict[str, Upload]:
    uploader = make_user("carla")
    now = timezone.now()
    low = make_upload("low.png", uploaded_by=uploader)
    add_run(low, confidence=0.35, provider="ocr", model="rapidocr-3")
    high = make_upload("high.png", "hexaco", status=UploadStatus.APPROVED)
    add_run(
        high,
        {
            "honesty_humility": 1.0,
            "emotionality": 2.0,
            "extraversion": 3.0,
            "agreeableness": 4.0,
            "conscientiousness": 5.0,
            "openness": 6.0,
        },
        confidence=0.95,
    )
    dead = make_upload("dead.pdf", content=make_pdf(1), status=UploadStatus.DEAD)
    old = make_upload("old.png", status=UploadStatus.QUEUED)
    Upload.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=40))
    return {"low": low, "high": high, "dead": dead, "old": old}


def test_listing_shows_uploads_with_badges_thumbnails_and_runs(
    listing_data: dict[str, Upload],
) -> None:
    _, client = editor_client()

    response = client.get(LISTING)

    assert response.status_code == 200
    assert names(response) == ["dead.pdf", "high.png", "low.png", "old.png"]
    soup = BeautifulSoup(response.content, "html.parser")
    badges = [b.get_text(strip=True) for b in soup.select(".cf-ingest-badge")]
    assert {"Needs review", "Approved", "Dead", "Queued"} <= set(badges)
    low = listing_data["low"]
    assert soup.select_one(f'img[src="/admin/ingest/uploads/{low.pk}/thumbnail.png"]')
    text = soup.select_one("table.listing").get_text(" ", strip=True)
    assert "rapidocr-3" in text
    assert "35%" in text
    assert "Carla" in text
    # The bulk actions of the framework are offered.
    assert b"/admin/bulk/cf_ingest/upload/approve/" in response.content
    assert b"/admin/bulk/cf_ingest/upload/rerun/" in response.content


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=needs_review", ["low.png"]),
        ("status=dead&status=approved", ["dead.pdf", "high.png"]),
        ("provider=ocr", ["low.png"]),
        ("model=gemini-2.5-flash", ["high.png"]),
        ("confidence_min=0.5", ["high.png"]),
        ("confidence_max=0.5", ["low.png"]),
        ("q=LOW", ["low.png"]),
        ("q=carla", ["low.png"]),
        ("ordering=latest_confidence", ["low.png", "high.png", "dead.pdf", "old.png"]),
        ("ordering=-original_name", ["old.png", "low.png", "high.png", "dead.pdf"]),
    ],
)
def test_listing_filters_searches_and_sorts(
    listing_data: dict[str, Upload], query: str, expected: list[str]
) -> None:
    _, client = editor_client()

    response = client.get(f"{LISTING}?{query}")

    assert response.status_code == 200
    assert names(response) == expected


def test_listing_filters_by_document_type_and_date(
    listing_data: dict[str, Upload],
) -> None:
    _, client = editor_client()
    hexaco = listing_data["high"].document_type_id
    since = (timezone.now() - timedelta(days=7)).date().isoformat()

    by_type = client.get(f"{LISTING}?document_type={hexaco}")
    recent = client.get(f"{LISTING}?created_at_from={since}")
    old = client.get(f"{LISTING}?created_at_to={since}")

    assert names(by_type) == ["high.png"]
    assert names(recent) == ["dead.pdf", "high.png", "low.png"]
    assert names(old) == ["old.png"]


def test_results_fragment_and_csv_export(listing_data: dict[str, Upload]) -> None:
    _, client = editor_client()

    fragment = client.get(f"{LISTING}results/?status=needs_review")
    export = client.get(f"{LISTING}?export=csv&status=approved")

    assert fragment.status_code == 200
    assert names(fragment) == ["low.png"]
    assert b"<html" not in fragment.content
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][:4] == ["ID", "File", "Document type", "Status"]
    assert rows[1][1:4] == ["high.png", "HEXACO", "approved"]


def test_upload_one_document_through_the_form() -> None:
    user, client = editor_client()
    form = client.get(f"{LISTING}new/")
    assert form.status_code == 200
    assert b"Big Five" in form.content

    big_five = DocumentType.objects.get(slug="big-five")
    response = client.post(
        f"{LISTING}new/",
        {
            "document_type": big_five.pk,
            "documents": SimpleUploadedFile("scan.png", make_png("scan")),
        },
    )

    upload = Upload.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{LISTING}{upload.pk}/"
    assert (upload.original_name, upload.uploaded_by, upload.content_type) == (
        "scan.png",
        user,
        "image/png",
    )
    assert upload.document_type == big_five
    assert OutboxMessage.objects.filter(upload=upload).count() == 1


def test_upload_many_documents_and_refuse_a_bad_one() -> None:
    _, client = editor_client()

    response = client.post(
        f"{LISTING}new/",
        {
            "document_type": DocumentType.objects.get(slug="hexaco").pk,
            "documents": [
                SimpleUploadedFile("one.png", make_png("one")),
                SimpleUploadedFile("notes.txt", b"just some text"),
                SimpleUploadedFile("two.pdf", make_pdf(1)),
            ],
        },
    )

    assert response.status_code == 200
    assert sorted(Upload.objects.values_list("original_name", flat=True)) == [
        "one.png",
        "two.pdf",
    ]
    content = response.content.decode()
    assert "notes.txt: The file is not a supported image or PDF." in content
    assert "2 documents uploaded and queued for extraction." in content


def test_upload_form_needs_a_file() -> None:
    _, client = editor_client()

    response = client.post(f"{LISTING}new/", {"document_type": ""})

    assert response.status_code == 200
    assert Upload.objects.count() == 0
    assert b"This field is required." in response.content


def test_document_views_serve_pictures_and_the_file() -> None:
    viewer = make_user("viewer", "cf_ingest.view_upload")
    client = client_for(viewer)
    image = make_upload("sheet.png")
    pdf = make_upload("sheet.pdf", content=make_pdf(2))

    original = client.get(f"{LISTING}{image.pk}/file/")
    thumbnail = client.get(f"{LISTING}{image.pk}/thumbnail.png")
    page_two = client.get(f"{LISTING}{pdf.pk}/pages/2.png")
    pdf_thumbnail = client.get(f"{LISTING}{pdf.pk}/thumbnail.png")
    missing = client.get(f"{LISTING}{pdf.pk}/pages/3.png")

    assert original.status_code == 200
    assert original["Content-Type"] == "image/png"
    assert original["Content-Disposition"].startswith("inline")
    with image.file.open("rb") as stream:
        assert b"".join(original.streaming_content) == stream.read()
    for response in (thumbnail, page_two, pdf_thumbnail):
        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
        assert "private" in response["Cache-Control"]
    with Image.open(io.BytesIO(thumbnail.content)) as picture:
        assert picture.width <= 160
    assert missing.status_code == 404


def test_document_view_redirects_to_a_signed_url(monkeypatch: Any) -> None:
    from django_cf_ingest import storage

    _, client = editor_client()
    upload = make_upload()
    signed = "https://bucket.example/cf_ingest/sheet.png?X-Amz-Signature=abc"
    monkeypatch.setattr(storage, "preview_url", lambda u: signed)

    response = client.get(f"{LISTING}{upload.pk}/file/")

    assert response.status_code == 302
    assert response["Location"] == signed


@pytest.mark.parametrize(
    "path",
    [
        "",
        "results/",
        "new/",
        "{pk}/",
        "{pk}/file/",
        "{pk}/thumbnail.png",
        "{pk}/pages/1.png",
    ],
)
def test_users_without_view_permission_get_403(path: str) -> None:
    upload = make_upload()
    url = LISTING + path.format(pk=upload.pk)
    outsider = client_for(make_user("outsider"))
    reviewer = client_for(make_user("reviewer", "cf_ingest.review_upload"))

    for client in (outsider, reviewer):
        response = client.get(url)
        assert response.status_code == 403
        if not path.endswith((".png", "file/")):
            assert b"You do not have permission" in response.content


def test_upload_form_needs_the_add_permission() -> None:
    viewer = client_for(make_user("viewer", "cf_ingest.view_upload"))

    assert viewer.get(f"{LISTING}new/").status_code == 403
    response = viewer.post(
        f"{LISTING}new/",
        {"documents": SimpleUploadedFile("a.png", make_png())},
    )
    assert response.status_code == 403
    assert Upload.objects.count() == 0
    assert b"Upload documents" not in viewer.get(LISTING).content


def test_anonymous_users_are_sent_to_log_in() -> None:
    response = Client().get(LISTING)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_menu_shows_only_what_the_user_may_open() -> None:
    outsider = client_for(make_user("outsider")).get("/admin/").content
    viewer = client_for(make_user("viewer", "cf_ingest.view_upload")).get("/admin/")
    _, editor = editor_client()
    editor_home = editor.get("/admin/").content

    assert b"/admin/ingest/" not in outsider
    assert b"cf-ingest-summary" not in outsider
    assert b"/admin/ingest/uploads/" in viewer.content
    assert b"/admin/ingest/usage/" in viewer.content
    assert b"/admin/ingest/dead-letters/" not in viewer.content
    assert b"/admin/ingest/dead-letters/" in editor_home


def test_the_three_permissions_can_be_granted_to_groups() -> None:
    from .admin_factories import permission

    client = client_for(make_user("root", superuser=True))

    page = client.get("/admin/groups/new/").content.decode()

    for codename in ("view_upload", "review_upload", "replay_upload"):
        pk = permission(f"cf_ingest.{codename}").pk
        assert f'name="permissions" value="{pk}"' in page
    assert "Can review, correct, approve and reject extractions" in page
    assert "Can re-run and replay uploads" in page
