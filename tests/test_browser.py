"""The editors' screens in real headless Chromium, against a live server.

The browser is Debian's ``chromium`` package driven by Playwright. Data is
written straight to the database (uploads with their runs), so no provider
runs unless a test runs one. Screenshots of the listing, the review screen
and the dashboard go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from django_cf_ingest.models import (
    Correction,
    Extraction,
    ProviderCall,
    Stage,
    Upload,
    UploadStatus,
)
from django_cf_ingest.pipeline import process_upload

from . import fake_provider
from .admin_factories import (
    EDITOR_PERMISSIONS,
    PASSWORD,
    add_run,
    make_upload,
    make_user,
)
from .conftest import make_png

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("CF_INGEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"

if not shutil.which(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls
    # the tests make between browser steps are still synchronous.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1440, "height": 1000}, base_url=live_server.url
    )
    context.set_default_timeout(15000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def fake_chain(ingest_settings: Any) -> None:
    ingest_settings(
        PROVIDERS={
            "google": {"BACKEND": "tests.fake_provider.FakeProvider"},
            "fake": {"BACKEND": "tests.fake_provider.FakeProvider"},
        },
        PROVIDER_CHAIN=["google"],
    )
    fake_provider.calls.clear()


DEMO_SAMPLES = Path(__file__).resolve().parent.parent / "example_project" / "demo"
DEMO_SAMPLES = DEMO_SAMPLES / "samples"


def demo_values(file: str) -> dict[str, Any]:
    manifest = json.loads((DEMO_SAMPLES / "manifest.json").read_text())
    entry = next(e for e in manifest if e["file"] == file)
    return {
        key: float(value) if isinstance(value, int) else value
        for key, value in entry["expected"].items()
    }


def demo_upload(
    file: str, editor: Any, status: str = UploadStatus.NEEDS_REVIEW, **fields: Any
) -> Upload:
    manifest = json.loads((DEMO_SAMPLES / "manifest.json").read_text())
    document_type = next(e["type"] for e in manifest if e["file"] == file)
    return make_upload(
        file,
        document_type,
        content=(DEMO_SAMPLES / file).read_bytes(),
        status=status,
        uploaded_by=editor,
        **fields,
    )


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """Save what the browser shows, once every image on the page has loaded."""
    page.wait_for_function(
        "[...document.images].every(image => image.complete)", timeout=15000
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if not full_page:
        page.screenshot(path=str(path))
        return path
    # The admin scrolls inside its main element, not the document: grow the
    # viewport to the tallest scrolling area for a picture of the whole page.
    viewport = page.viewport_size
    height = page.evaluate(
        "Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": viewport["width"], "height": min(height, 6000)})
    page.screenshot(path=str(path))
    page.set_viewport_size(viewport)
    return path


def log_in(page: Any, username: str) -> None:
    page.goto("/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))


def sample_data(editor: Any) -> dict[str, Upload]:
    """A listing worth looking at: the demo's sample documents in every
    status, with runs from several providers."""
    now = timezone.now()
    uploads: dict[str, Upload] = {}

    review = demo_upload("big-five-a.png", editor)
    printed = demo_values("big-five-a.png")
    add_run(
        review,
        {**printed, "openness": printed["openness"] + 100},
        confidence=0.41,
        valid=False,
        errors=["openness: Input should be less than or equal to 100"],
        provider="ocr",
        model="rapidocr-3",
        tokens=(0, 0),
        cost="0",
        latency_ms=850,
        created_at=now - timedelta(minutes=30),
    )
    # The second run misread one score: the editor has something to correct.
    add_run(review, {**printed, "openness": printed["openness"] - 10}, confidence=0.84)
    # A colleague already fixed another score.
    Correction.objects.create(
        upload=review,
        field="agreeableness",
        value=printed["agreeableness"],
        editor=make_user("maria", *EDITOR_PERMISSIONS),
        created_at=now - timedelta(minutes=5),
    )
    Extraction.objects.filter(upload=review, provider="google").update(
        data={**printed, "openness": printed["openness"] - 10, "agreeableness": 8.0}
    )
    uploads["review"] = review

    pdf = demo_upload("hexaco-b.pdf", editor)
    add_run(
        pdf,
        demo_values("hexaco-b.pdf"),
        confidence=0.93,
        provider="workers_ai",
        model="@cf/meta/llama-3.2-11b-vision-instruct",
        tokens=(2210, 96),
        cost="0.000174",
    )
    uploads["pdf"] = pdf

    generic = demo_upload("generic-a.png", editor)
    add_run(
        generic,
        demo_values("generic-a.png"),
        confidence=0.58,
        provider="ocr",
        model="rapidocr-3",
        tokens=(0, 0),
        cost="0",
    )
    uploads["generic"] = generic

    approved = demo_upload(
        "sixteen-personalities-a.png", editor, status=UploadStatus.APPROVED
    )
    add_run(approved, demo_values("sixteen-personalities-a.png"), confidence=0.97)
    Upload.objects.filter(pk=approved.pk).update(reviewed_by=editor, reviewed_at=now)
    uploads["approved"] = approved

    rejected = demo_upload(
        "sixteen-personalities-b.pdf",
        editor,
        status=UploadStatus.REJECTED,
        review_note="Two result sheets scanned as one.",
    )
    add_run(rejected, demo_values("sixteen-personalities-b.pdf"), confidence=0.74)
    uploads["rejected"] = rejected

    dead = demo_upload(
        "riasec-b.png",
        editor,
        status=UploadStatus.DEAD,
        attempts=5,
        last_error="TransientProviderError: 503 from the provider after 5 attempts",
    )
    ProviderCall.objects.create(
        upload=dead,
        provider="google",
        model="gemini-2.5-flash",
        stage=Stage.IN_PROCESS,
        status=ProviderCall.Status.ERROR,
        error_class="TransientProviderError",
        error_message="503 Service Unavailable",
        latency_ms=30000,
    )
    uploads["dead"] = dead
    uploads["failed"] = demo_upload(
        "keirsey-a.png",
        editor,
        status=UploadStatus.FAILED,
        attempts=1,
        last_error="PermanentProviderError: the model refused the document",
    )
    uploads["queued"] = demo_upload(
        "strengths-profile-a.png", editor, status=UploadStatus.QUEUED
    )
    return uploads


def test_editor_filters_the_listing_and_opens_a_review(page: Any) -> None:
    editor = make_user("editor", *EDITOR_PERMISSIONS)
    sheets = sample_data(editor)
    log_in(page, "editor")

    page.get_by_role("button", name="Ingest").click()
    page.get_by_role("link", name="Uploads", exact=True).click()
    page.wait_for_url("**/admin/ingest/uploads/")
    rows = page.locator("table.listing tbody tr")
    assert rows.count() == 8
    assert page.locator(".cf-ingest-thumb").first.is_visible()
    screenshot(page, "listing")

    page.get_by_role("button", name="Show filters").click()
    page.locator(".w-drilldown__toggle", has_text="Status").click()
    page.get_by_role("checkbox", name="Dead").check()
    page.wait_for_url(re.compile(r"status=dead"))
    page.wait_for_function(
        "document.querySelectorAll('table.listing tbody tr').length === 1"
    )
    assert "riasec-b.png" in page.locator("table.listing tbody").inner_text()

    page.goto("/admin/ingest/uploads/?q=big-five")
    page.get_by_role("link", name="big-five-a.png").click()
    page.wait_for_url(f"**/admin/ingest/uploads/{sheets['review'].pk}/")
    page.locator(".cf-ingest-page img").first.wait_for()
    assert page.locator(".cf-ingest-page img").evaluate("img => img.naturalWidth") > 0
    assert "Provider calls of the latest run" in page.content()
    screenshot(page, "review")
    screenshot(page, "review-full", full_page=True)


def test_editor_corrects_a_field_and_approves(page: Any) -> None:
    editor = make_user("editor", *EDITOR_PERMISSIONS)
    upload = sample_data(editor)["review"]
    log_in(page, "editor")

    page.goto(f"/admin/ingest/uploads/{upload.pk}/")
    printed = demo_values("big-five-a.png")["openness"]
    page.fill("input[name=data-openness]", str(int(printed)))
    page.get_by_role("button", name="Save and approve").click()

    page.get_by_text("approved.").first.wait_for()
    upload.refresh_from_db()
    assert upload.status == UploadStatus.APPROVED
    assert upload.reviewed_by == editor
    correction = Correction.objects.get(upload=upload, editor=editor)
    assert (correction.field, correction.value, correction.editor) == (
        "openness",
        printed,
        editor,
    )


def test_a_rerun_keeps_the_correction(page: Any, fake_chain: None) -> None:
    editor = make_user("editor", *EDITOR_PERMISSIONS)
    upload = sample_data(editor)["review"]
    log_in(page, "editor")
    page.goto(f"/admin/ingest/uploads/{upload.pk}/")
    page.fill("input[name=data-neuroticism]", "35")
    page.get_by_role("button", name="Save corrections").click()
    page.get_by_text("1 correction saved.").wait_for()

    page.select_option("select[name=provider]", "fake")
    page.get_by_role("button", name="Re-run").click()
    page.get_by_text("queued to run again with fake").wait_for()
    upload.refresh_from_db()
    assert upload.status == UploadStatus.QUEUED
    assert upload.requested_chain == ["fake"]

    # The queue's consumer would do this; the test runs the delivery itself.
    process_upload(upload.pk)
    page.reload()
    field = page.locator("[data-field=neuroticism]")
    assert field.locator("input").input_value() == "35"
    assert "Corrected to" in field.inner_text()
    assert "fake-1" in page.locator("#cf-ingest-history-section").inner_text()


def test_editor_replays_a_dead_upload(page: Any) -> None:
    editor = make_user("editor", *EDITOR_PERMISSIONS)
    dead = sample_data(editor)["dead"]
    log_in(page, "editor")

    page.goto("/admin/ingest/dead-letters/")
    assert "503 from the provider" in page.locator("table.listing").inner_text()
    screenshot(page, "dead-letters")
    page.locator(f"input[data-object-id='{dead.pk}']").check()
    page.locator("[data-bulk-action-footer] a", has_text="Replay").click()
    page.wait_for_url(re.compile(r"/dead-letters/replay/"))
    page.get_by_role("button", name=re.compile(r"Replay 1 upload")).click()

    page.get_by_text("1 upload queued to run again.").wait_for()
    dead.refresh_from_db()
    assert dead.status == UploadStatus.QUEUED
    assert dead.attempts == 0


def test_dashboard_panel(page: Any) -> None:
    editor = make_user("editor", *EDITOR_PERMISSIONS)
    sample_data(editor)
    log_in(page, "editor")

    panel = page.locator("#cf-ingest-summary-section")
    panel.wait_for()
    text = panel.inner_text()
    assert "Needs review" in text
    assert "Failures, last 24 hours" in text
    panel.scroll_into_view_if_needed()
    screenshot(page, "dashboard")


def test_a_user_without_permission_is_refused(page: Any) -> None:
    make_user("outsider")
    upload = make_upload("private.png", content=make_png("private"))
    log_in(page, "outsider")

    assert page.get_by_role("button", name="Ingest").count() == 0
    response = page.goto(f"/admin/ingest/uploads/{upload.pk}/")
    assert response is not None
    assert response.status == 403
    assert "You do not have permission" in page.content()
    image = page.goto(f"/admin/ingest/uploads/{upload.pk}/pages/1.png")
    assert image is not None
    assert image.status == 403
