"""The dead letters: listing, replay and discard."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from bs4 import BeautifulSoup
from django.utils import timezone

from django_cf_ingest.models import OutboxMessage, Upload, UploadStatus

from .admin_factories import client_for, editor_client, make_upload, make_user

pytestmark = pytest.mark.django_db

DEAD_LETTERS = "/admin/ingest/dead-letters/"


def names(response: Any) -> list[str]:
    soup = BeautifulSoup(response.content, "html.parser")
    return sorted(
        cell.get_text(strip=True)
        for cell in soup.select("table.listing tbody td.title .title-wrapper")
    )


@pytest.fixture
def letters() -> dict[str, Upload]:
    dead = make_upload(
        "dead.png",
        status=UploadStatus.DEAD,
        attempts=5,
        last_error="TransientProviderError: 503 after 5 attempts",
    )
    failed = make_upload(
        "failed.png",
        "keirsey",
        status=UploadStatus.FAILED,
        attempts=1,
        last_error="PermanentProviderError: refused",
    )
    discarded = make_upload(
        "discarded.png",
        status=UploadStatus.DEAD,
        discarded_at=timezone.now(),
        discard_reason="Duplicate of dead.png",
    )
    fine = make_upload("fine.png")
    return {"dead": dead, "failed": failed, "discarded": discarded, "fine": fine}


def action_url(action: str, *uploads: Upload, **params: str) -> str:
    query = [("id", str(u.pk)) for u in uploads] + list(params.items())
    return f"{DEAD_LETTERS}{action}/?{urlencode(query)}"


def test_listing_shows_dead_and_failed_with_error_and_attempts(
    letters: dict[str, Upload],
) -> None:
    _, client = editor_client()

    response = client.get(DEAD_LETTERS)

    assert response.status_code == 200
    assert names(response) == ["dead.png", "failed.png"]
    table = BeautifulSoup(response.content, "html.parser").select_one("table.listing")
    text = table.get_text(" ", strip=True)
    assert "TransientProviderError: 503 after 5 attempts" in text
    assert "PermanentProviderError: refused" in text
    dead_row = table.find("span", string="dead.png").find_parent("tr")
    assert "5" in [td.get_text(strip=True) for td in dead_row.find_all("td")]


def test_discarded_ones_are_shown_when_asked_for(letters: dict[str, Upload]) -> None:
    _, client = editor_client()

    discarded = client.get(f"{DEAD_LETTERS}?discarded=yes")
    everything = client.get(f"{DEAD_LETTERS}?discarded=")
    failed_only = client.get(f"{DEAD_LETTERS}?status=failed")
    searched = client.get(f"{DEAD_LETTERS}?q=503&discarded=")

    assert names(discarded) == ["discarded.png"]
    assert "Duplicate of dead.png" in discarded.content.decode()
    assert names(everything) == ["dead.png", "discarded.png", "failed.png"]
    assert names(failed_only) == ["failed.png"]
    assert names(searched) == ["dead.png"]


def test_replay_one_after_confirming(letters: dict[str, Upload]) -> None:
    _, client = editor_client()
    url = action_url("replay", letters["dead"], next=DEAD_LETTERS)

    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "dead.png" in confirm.content.decode()
    assert Upload.objects.get(pk=letters["dead"].pk).status == UploadStatus.DEAD

    response = client.post(url)

    assert response.status_code == 302
    assert response["Location"] == DEAD_LETTERS
    dead = Upload.objects.get(pk=letters["dead"].pk)
    assert (dead.status, dead.attempts, dead.last_error) == ("queued", 0, "")
    assert OutboxMessage.objects.filter(upload=dead).count() == 2


def test_replay_many_leaves_other_uploads_alone(letters: dict[str, Upload]) -> None:
    _, client = editor_client()

    client.post(action_url("replay", *letters.values()))

    assert Upload.objects.get(pk=letters["fine"].pk).status == "needs_review"
    assert set(
        Upload.objects.filter(status=UploadStatus.QUEUED).values_list(
            "original_name", flat=True
        )
    ) == {"dead.png", "failed.png", "discarded.png"}


def test_replay_all_in_the_listing_follows_its_filters(
    letters: dict[str, Upload],
) -> None:
    _, client = editor_client()

    client.post(f"{DEAD_LETTERS}replay/?status=failed&id=all")

    assert Upload.objects.get(pk=letters["failed"].pk).status == UploadStatus.QUEUED
    assert Upload.objects.get(pk=letters["dead"].pk).status == UploadStatus.DEAD


def test_discard_needs_a_reason(letters: dict[str, Upload]) -> None:
    user, client = editor_client()
    url = action_url("discard", letters["dead"], letters["failed"])

    form = client.get(url)
    assert b'name="reason"' in form.content

    refused = client.post(url, {"reason": "   "})
    assert refused.status_code == 200
    assert b"This field is required." in refused.content
    assert Upload.objects.get(pk=letters["dead"].pk).discarded_at is None

    response = client.post(url, {"reason": "Test uploads from the old site"})

    assert response.status_code == 302
    for key in ("dead", "failed"):
        upload = Upload.objects.get(pk=letters[key].pk)
        assert upload.status in (UploadStatus.DEAD, UploadStatus.FAILED)
        assert upload.discard_reason == "Test uploads from the old site"
        assert upload.discarded_by == user
        assert upload.discarded_at is not None
    assert names(client.get(DEAD_LETTERS)) == []


def test_discard_skips_uploads_already_discarded_or_not_dead(
    letters: dict[str, Upload],
) -> None:
    _, client = editor_client()

    page = client.get(action_url("discard", letters["discarded"], letters["fine"]))

    assert b"None of the chosen uploads can be discarded" in page.content
    assert b'name="reason"' not in page.content


@pytest.mark.parametrize("path", ["", "results/", "replay/", "discard/"])
def test_dead_letters_need_view_and_replay(
    letters: dict[str, Upload], path: str
) -> None:
    url = f"{DEAD_LETTERS}{path}?id={letters['dead'].pk}"
    for perms in (
        ("cf_ingest.view_upload", "cf_ingest.review_upload"),
        ("cf_ingest.replay_upload",),
        (),
    ):
        client = client_for(make_user("u" + str(len(perms)), *perms))
        assert client.get(url).status_code == 403
        assert client.post(url, {"reason": "x"}).status_code == 403
    dead = Upload.objects.get(pk=letters["dead"].pk)
    assert (dead.status, dead.discarded_at) == (UploadStatus.DEAD, None)
