"""The review screen: what it shows, its actions, and who may use them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from bs4 import BeautifulSoup
from django.utils import timezone

from django_cf_ingest.models import (
    Correction,
    OutboxMessage,
    ProviderCall,
    Stage,
    Upload,
    UploadStatus,
)
from django_cf_ingest.pipeline import process_upload

from . import fake_provider
from .admin_factories import (
    BIG_FIVE,
    add_run,
    client_for,
    editor_client,
    make_pdf,
    make_upload,
    make_user,
)

pytestmark = pytest.mark.django_db


def review_url(upload: Upload, action: str = "") -> str:
    return f"/admin/ingest/uploads/{upload.pk}/" + (f"{action}/" if action else "")


def soup_of(response: Any) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def form_data(values: dict[str, Any], action: str = "save") -> dict[str, Any]:
    data = {f"data-{name}": value for name, value in values.items()}
    data["action"] = action
    return data


@pytest.fixture
def reviewed() -> Upload:
    """An upload with two runs, a failed call, and a correction."""
    now = timezone.now()
    upload = make_upload("sheet.png")
    add_run(
        upload,
        {**BIG_FIVE, "openness": 142.0},
        confidence=0.41,
        valid=False,
        errors=["openness: Input should be less than or equal to 100"],
        provider="ocr",
        model="rapidocr-3",
        tokens=(0, 0),
        cost="0",
        created_at=now - timedelta(hours=1),
    )
    ProviderCall.objects.create(
        upload=upload,
        provider="workers_ai",
        model="@cf/meta/llama-3.2-11b-vision-instruct",
        stage=Stage.IN_PROCESS,
        status=ProviderCall.Status.ERROR,
        error_class="TransientProviderError",
        error_message="503 Service Unavailable",
        latency_ms=30000,
        created_at=now - timedelta(minutes=30),
    )
    add_run(
        upload,
        confidence=0.88,
        tokens=(1234, 56),
        cost="0.000510",
        latency_ms=2345,
    )
    Correction.objects.create(
        upload=upload,
        field="neuroticism",
        value=35.0,
        editor=make_user("maria"),
    )
    return upload


def test_review_screen_shows_document_fields_and_runs(reviewed: Upload) -> None:
    _, client = editor_client()

    response = client.get(review_url(reviewed))

    assert response.status_code == 200
    soup = soup_of(response)
    assert soup.select_one(f'img[src="{review_url(reviewed)}pages/1.png"]')
    # Each field: the current value in the form, the machine value beside it.
    openness = soup.select_one("[data-field=openness]")
    assert openness.select_one("input")["value"] == "42"
    assert openness.select_one("input")["max"] == "100"
    assert openness.select_one("[data-machine-value]").get_text() == "42"
    neuroticism = soup.select_one("[data-field=neuroticism]")
    assert neuroticism.select_one("input")["value"] == "35"
    assert neuroticism.select_one("[data-machine-value]").get_text() == "33"
    assert "Corrected to 35 by Maria" in neuroticism.get_text(" ", strip=True)
    text = soup.get_text(" ", strip=True)
    assert "Needs review" in text
    assert "google · gemini-2.5-flash" in text
    assert "88% threshold 70%" in text
    # Calls of the latest run with tokens, cost and latency.
    calls = soup.select_one("#cf-ingest-calls-section").get_text(" ", strip=True)
    assert "1,234" in calls
    assert "$0.000510" in calls
    assert "2,345 ms" in calls
    # The history has both runs, and the call that kept no result.
    history = soup.select_one("#cf-ingest-history-section").get_text(" ", strip=True)
    assert "rapidocr-3" in history
    assert "gemini-2.5-flash" in history
    assert "1 error" in history
    assert "TransientProviderError: 503 Service Unavailable" in history
    assert "Maria" in soup.select_one("#cf-ingest-corrections-section").get_text()
    # All actions are there for an editor.
    assert soup.find("button", string="Save and approve")
    assert soup.select_one(f'form[action="{review_url(reviewed, "reject")}"]')
    assert soup.select_one(f'form[action="{review_url(reviewed, "rerun")}"]')


def test_validation_errors_of_the_latest_run_are_shown() -> None:
    upload = make_upload()
    add_run(
        upload,
        {**BIG_FIVE, "openness": 142.0},
        valid=False,
        errors=["openness: Input should be less than or equal to 100"],
    )
    _, client = editor_client()

    text = soup_of(client.get(review_url(upload))).get_text(" ", strip=True)

    assert "Validation errors of the latest run" in text
    assert "openness: Input should be less than or equal to 100" in text
    assert "Does not match the schema" in text


def test_pdf_pages_are_all_shown() -> None:
    upload = make_upload("sheet.pdf", content=make_pdf(3))
    _, client = editor_client()

    soup = soup_of(client.get(review_url(upload)))

    sources = [img["src"] for img in soup.select(".cf-ingest-page img")]
    assert sources == [f"{review_url(upload)}pages/{n}.png" for n in (1, 2, 3)]


def test_image_on_signed_storage_uses_the_signed_url(monkeypatch: Any) -> None:
    from django_cf_ingest.wagtail.views import review

    signed = "https://bucket.example/sheet.png?X-Amz-Signature=abc"
    monkeypatch.setattr(review, "preview_url", lambda upload: signed)
    upload = make_upload()
    _, client = editor_client()

    soup = soup_of(client.get(review_url(upload)))

    assert [img["src"] for img in soup.select(".cf-ingest-page img")] == [signed]
    assert "/media/" not in str(soup)


@pytest.mark.parametrize(
    ("slug", "field", "widget"),
    [
        ("sixteen-personalities", "variant", "select"),
        ("riasec", "top_letters", "textarea"),
        ("strengths-profile", "top_strengths", "textarea"),
        ("generic", "scores", "textarea"),
        ("keirsey", "type_code", "input"),
    ],
)
def test_fields_follow_the_schema(slug: str, field: str, widget: str) -> None:
    upload = make_upload(document_type=slug)
    _, client = editor_client()

    soup = soup_of(client.get(review_url(upload)))

    element = soup.select_one(f"[data-field={field}] {widget}")
    assert element is not None
    assert element["name"] == f"data-{field}"


def test_save_corrections_keeps_machine_output_and_attributes_editor(
    reviewed: Upload,
) -> None:
    user, client = editor_client()
    values = {**BIG_FIVE, "neuroticism": 35, "openness": 44}

    response = client.post(review_url(reviewed), form_data(values))

    assert response.status_code == 302
    assert response["Location"] == review_url(reviewed)
    new = Correction.objects.filter(upload=reviewed, editor=user)
    assert list(new.values_list("field", "value")) == [("openness", 44.0)]
    reviewed.refresh_from_db()
    assert reviewed.status == UploadStatus.NEEDS_REVIEW
    assert reviewed.latest_extraction.data["openness"] == 42.0
    assert reviewed.corrected_data()["openness"] == 44.0
    page = client.get(review_url(reviewed)).content.decode()
    assert "1 correction saved." in page


def test_approve_saves_corrections_and_approves(reviewed: Upload) -> None:
    user, client = editor_client()

    response = client.post(
        review_url(reviewed), form_data({**BIG_FIVE, "agreeableness": 71}, "approve")
    )

    assert response.status_code == 302
    reviewed.refresh_from_db()
    assert reviewed.status == UploadStatus.APPROVED
    assert reviewed.reviewed_by == user
    assert reviewed.reviewed_at is not None
    assert reviewed.corrected_data()["agreeableness"] == 71.0


def test_approve_goes_on_to_the_next_upload_to_review(reviewed: Upload) -> None:
    waiting = make_upload("next.png")
    _, client = editor_client()

    response = client.post(
        review_url(reviewed),
        form_data({**BIG_FIVE, "neuroticism": 35}, "approve"),
    )

    assert response["Location"] == review_url(waiting)


def test_values_outside_the_schema_are_refused(reviewed: Upload) -> None:
    _, client = editor_client()

    response = client.post(
        review_url(reviewed), form_data({**BIG_FIVE, "openness": 150}, "approve")
    )

    assert response.status_code == 200
    assert "less than or equal to 100" in response.content.decode()
    reviewed.refresh_from_db()
    assert reviewed.status == UploadStatus.NEEDS_REVIEW
    assert not Correction.objects.filter(upload=reviewed, field="openness").exists()


def test_pattern_enum_and_json_fields_are_validated() -> None:
    upload = make_upload(document_type="generic")
    add_run(upload, {"result_type": "MBTI", "summary": "", "scores": []})
    _, client = editor_client()

    bad = client.post(
        review_url(upload),
        form_data({"result_type": "MBTI", "scores": '[{"name": "E"}]'}),
    )
    good = client.post(
        review_url(upload),
        form_data({"result_type": "MBTI", "scores": '[{"name": "E", "score": "61"}]'}),
    )

    assert bad.status_code == 200
    assert "0.score: Field required" in bad.content.decode()
    assert good.status_code == 302
    assert upload.corrected_data()["scores"] == [{"name": "E", "score": 61.0}]


def test_approve_needs_a_finished_run() -> None:
    upload = make_upload(status=UploadStatus.QUEUED)
    _, client = editor_client()

    client.post(review_url(upload), form_data(BIG_FIVE, "approve"))

    upload.refresh_from_db()
    assert upload.status == UploadStatus.QUEUED
    assert not Correction.objects.exists()


def test_reject_needs_a_reason(reviewed: Upload) -> None:
    user, client = editor_client()

    client.post(review_url(reviewed, "reject"), {"reason": ""})
    reviewed.refresh_from_db()
    assert reviewed.status == UploadStatus.NEEDS_REVIEW

    response = client.post(
        review_url(reviewed, "reject"), {"reason": "Two sheets in one scan."}
    )
    reviewed.refresh_from_db()
    assert response.status_code == 302
    assert reviewed.status == UploadStatus.REJECTED
    assert reviewed.review_note == "Two sheets in one scan."
    assert reviewed.reviewed_by == user


def test_rerun_with_a_chosen_provider(reviewed: Upload, ingest_settings: Any) -> None:
    ingest_settings(
        PROVIDERS={"ocr": {}, "google": {"API_KEY": "x"}}, PROVIDER_CHAIN=["ocr"]
    )
    _, client = editor_client()
    options = soup_of(client.get(review_url(reviewed))).select(
        "select[name=provider] option"
    )
    assert [o["value"] for o in options] == ["", "ocr", "google"]

    response = client.post(review_url(reviewed, "rerun"), {"provider": "google"})

    assert response.status_code == 302
    reviewed.refresh_from_db()
    assert reviewed.status == UploadStatus.QUEUED
    assert reviewed.requested_chain == ["google"]
    assert OutboxMessage.objects.filter(upload=reviewed).count() == 2


def test_rerun_refuses_an_unknown_provider_and_a_busy_upload(
    reviewed: Upload,
) -> None:
    _, client = editor_client()

    client.post(review_url(reviewed, "rerun"), {"provider": "nonesuch"})
    reviewed.refresh_from_db()
    assert reviewed.status == UploadStatus.NEEDS_REVIEW

    Upload.objects.filter(pk=reviewed.pk).update(status=UploadStatus.PROCESSING)
    response = client.post(review_url(reviewed, "rerun"), {"provider": ""}, follow=True)
    reviewed.refresh_from_db()
    assert reviewed.status == UploadStatus.PROCESSING
    assert "being processed right now" in response.content.decode()


def test_corrections_survive_a_rerun(reviewed: Upload, ingest_settings: Any) -> None:
    ingest_settings(
        PROVIDERS={"fake": {"BACKEND": "tests.fake_provider.FakeProvider"}},
        PROVIDER_CHAIN=["fake"],
    )
    fake_provider.calls.clear()
    _, client = editor_client()
    client.post(review_url(reviewed), form_data({**BIG_FIVE, "openness": 44}))

    client.post(review_url(reviewed, "rerun"), {"provider": "fake"})
    process_upload(reviewed.pk)

    reviewed.refresh_from_db()
    assert reviewed.latest_extraction.provider == "fake"
    assert reviewed.latest_extraction.data["openness"] == 1
    soup = soup_of(client.get(review_url(reviewed)))
    openness = soup.select_one("[data-field=openness]")
    assert openness.select_one("input")["value"] == "44"
    assert openness.select_one("[data-machine-value]").get_text() == "1"
    conscientiousness = soup.select_one("[data-field=conscientiousness] input")
    assert conscientiousness["value"] == "1"


def test_viewer_sees_a_read_only_screen_and_cannot_act(reviewed: Upload) -> None:
    client = client_for(make_user("viewer", "cf_ingest.view_upload"))

    soup = soup_of(client.get(review_url(reviewed)))

    assert soup.select_one("[data-field=openness] input").has_attr("disabled")
    assert not soup.find("button", string="Save and approve")
    assert not soup.select_one("form[action$='/reject/']")
    assert not soup.select_one("form[action$='/rerun/']")
    for action, data in (
        ("", form_data(BIG_FIVE, "approve")),
        ("reject", {"reason": "no"}),
        ("rerun", {"provider": ""}),
    ):
        assert client.post(review_url(reviewed, action), data).status_code == 403
    reviewed.refresh_from_db()
    assert reviewed.status == UploadStatus.NEEDS_REVIEW


def test_review_and_replay_are_separate_permissions(reviewed: Upload) -> None:
    reviewer = client_for(
        make_user("reviewer", "cf_ingest.view_upload", "cf_ingest.review_upload")
    )
    replayer = client_for(
        make_user("replayer", "cf_ingest.view_upload", "cf_ingest.replay_upload")
    )

    assert reviewer.post(review_url(reviewed, "rerun"), {}).status_code == 403
    assert (
        replayer.post(review_url(reviewed), form_data(BIG_FIVE, "approve")).status_code
        == 403
    )
    assert replayer.post(review_url(reviewed, "rerun"), {}).status_code == 302
    reviewed.refresh_from_db()
    assert reviewed.status == UploadStatus.QUEUED


def test_actions_need_post_and_a_csrf_token(reviewed: Upload) -> None:
    user = make_user("editor2", "cf_ingest.view_upload", "cf_ingest.review_upload")
    client = client_for(user, enforce_csrf=True)

    assert client.get(review_url(reviewed, "reject")).status_code == 405
    response = client.post(review_url(reviewed), form_data(BIG_FIVE, "approve"))
    assert response.status_code == 403
    reviewed.refresh_from_db()
    assert reviewed.status == UploadStatus.NEEDS_REVIEW

    page = client.get(review_url(reviewed))
    token = soup_of(page).select_one("input[name=csrfmiddlewaretoken]")["value"]
    data = {**form_data(BIG_FIVE, "approve"), "csrfmiddlewaretoken": token}
    assert client.post(review_url(reviewed), data).status_code == 302
    reviewed.refresh_from_db()
    assert reviewed.status == UploadStatus.APPROVED


def test_unknown_upload_is_404() -> None:
    _, client = editor_client()

    assert client.get("/admin/ingest/uploads/999999/").status_code == 404


def test_cost_and_tokens_of_a_run_add_up() -> None:
    upload = make_upload()
    extraction = add_run(upload, tokens=(100, 10), cost="0.001", latency_ms=100)
    ProviderCall.objects.create(
        upload=upload,
        extraction=extraction,
        provider="google",
        model="gemini-2.5-flash",
        stage=Stage.IN_PROCESS,
        purpose="reask",
        tokens_in=200,
        tokens_out=20,
        cost=Decimal("0.002"),
        latency_ms=300,
        status=ProviderCall.Status.OK,
    )
    _, client = editor_client()

    history = soup_of(client.get(review_url(upload))).select_one(".cf-ingest-current")

    text = history.get_text(" ", strip=True)
    assert "330" in text
    assert "$0.003000" in text
    assert "400 ms" in text


def test_pdf_is_embedded_when_pages_cannot_be_drawn(monkeypatch: Any) -> None:
    from django_cf_ingest.wagtail.views import review

    monkeypatch.setattr(review, "can_render_pdf", lambda: False)
    upload = make_upload("sheet.pdf", content=make_pdf(2))
    _, client = editor_client()

    soup = soup_of(client.get(review_url(upload)))

    assert soup.select_one("iframe.cf-ingest-pdf")["src"] == review_url(upload, "file")
    assert not soup.select(".cf-ingest-page img")
