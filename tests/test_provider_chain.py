"""The provider chain end to end: ``process_upload`` with Gemini and an
OpenAI-compatible server (both local fakes) configured through ``CF_INGEST``.
Every call, failed or not, must be in the usage ledger."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from django_cf_ingest.models import Extraction, ProviderCall, Upload, UploadStatus
from django_cf_ingest.pipeline import Result, process_upload
from django_cf_ingest.services import create_upload
from tests.conftest import make_png
from tests.fakes import gemini, openai_compat
from tests.fakes.fixtures import SCORES
from tests.fakes.gemini import FakeGemini, gemini_answer, google_error
from tests.fakes.openai_compat import FakeOpenAI, openai_answer, openai_error
from tests.fakes.server import FakeResponse

pytestmark = pytest.mark.django_db

PRICES = {
    "google": {"gemini-2.5-flash": {"input": 0.30, "output": 2.50}},
    "openai": {"gpt-4o-mini": {"input": 0.15, "output": 0.60}},
}
#: (1290 * 0.30 + 60 * 2.50) per million tokens.
GOOGLE_COST = Decimal("0.000537")
#: (900 * 0.15 + 50 * 0.60) per million tokens.
OPENAI_COST = Decimal("0.000165")

PARTIAL = {"openness": 41.25, "conscientiousness": None}

Configure = Callable[..., None]


@pytest.fixture
def configure(
    ingest_settings: Callable[..., None],
    fake_gemini: FakeGemini,
    fake_openai: FakeOpenAI,
) -> Configure:
    def apply(chain: tuple[str, ...] = ("google", "openai"), **overrides: Any) -> None:
        ingest_settings(
            PROVIDERS={
                "google": {
                    "API_KEY": gemini.API_KEY,
                    "BASE_URL": fake_gemini.url,
                    "TIMEOUT": 5,
                },
                "openai": {
                    "API_KEY": openai_compat.API_KEY,
                    "BASE_URL": fake_openai.url + "/v1",
                    "TIMEOUT": 5,
                },
            },
            PROVIDER_CHAIN=list(chain),
            PRICES=PRICES,
            CONFIDENCE_THRESHOLD=0.7,
            **overrides,
        )

    return apply


def new_upload(slug: str = "big-five", content: bytes | None = None) -> Upload:
    return create_upload(io.BytesIO(content or make_png()), slug, name="sheet.png")


def ledger(upload: Upload) -> list[ProviderCall]:
    return list(ProviderCall.objects.filter(upload=upload).order_by("id"))


def rows(upload: Upload) -> list[tuple[str, str, str]]:
    return [(c.provider, c.purpose, c.status) for c in ledger(upload)]


def assert_every_call_recorded(upload: Upload, *servers: Any) -> None:
    sent = sum(len(server.requests) for server in servers)
    assert sent == ProviderCall.objects.filter(upload=upload).count()


def gemini_ok(data: Any = SCORES, **kwargs: Any) -> FakeResponse:
    return FakeResponse(json=gemini_answer(data, **kwargs))


def openai_ok(data: Any = SCORES) -> FakeResponse:
    return FakeResponse(
        json=openai_answer(data, prompt_tokens=900, completion_tokens=50)
    )


def test_low_confidence_falls_back_and_keeps_the_better_result(
    configure: Configure, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    configure(REASK_ON_INVALID=False)
    fake_gemini.enqueue(gemini_ok(PARTIAL))
    fake_openai.enqueue(openai_ok())
    upload = new_upload()

    outcome = process_upload(upload.pk)

    assert outcome.result == Result.DONE
    assert (outcome.provider, outcome.model) == ("openai", "gpt-4o-mini")
    assert outcome.confidence == 1.0
    upload.refresh_from_db()
    assert upload.status == UploadStatus.NEEDS_REVIEW
    extraction = Extraction.objects.get(upload=upload)
    assert extraction.data == SCORES
    assert extraction.is_valid
    assert extraction.provider == "openai"

    primary, fallback = ledger(upload)
    assert (primary.provider, primary.model, primary.purpose, primary.status) == (
        "google",
        "gemini-2.5-flash",
        "primary",
        "invalid",
    )
    assert (primary.tokens_in, primary.tokens_out, primary.cost) == (
        1290,
        60,
        GOOGLE_COST,
    )
    assert "Field required" in primary.error_message
    assert (fallback.provider, fallback.model, fallback.purpose, fallback.status) == (
        "openai",
        "gpt-4o-mini",
        "fallback",
        "ok",
    )
    assert (fallback.tokens_in, fallback.tokens_out, fallback.cost) == (
        900,
        50,
        OPENAI_COST,
    )
    assert primary.extraction_id == fallback.extraction_id == extraction.pk
    assert set(extraction.provider_calls.all()) == {primary, fallback}
    assert all(call.latency_ms >= 0 for call in (primary, fallback))
    assert_every_call_recorded(upload, fake_gemini, fake_openai)


def test_valid_but_sparse_answer_falls_back(
    configure: Configure, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    configure()
    # One field of three: valid, but a confidence of 0.33 is under generic's 0.5.
    fake_gemini.enqueue(gemini_ok({"result_type": "Big Five"}))
    full = {
        "result_type": "Big Five",
        "summary": "Open and calm.",
        "scores": [{"name": "Openness", "score": 41.25}],
    }
    fake_openai.enqueue(openai_ok(full))
    upload = new_upload("generic")

    outcome = process_upload(upload.pk)

    assert outcome.provider == "openai"
    assert Extraction.objects.get(upload=upload).data == full
    assert rows(upload) == [
        ("google", "primary", "ok"),
        ("openai", "fallback", "ok"),
    ]


def test_confident_primary_stops_the_chain(
    configure: Configure, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    configure()
    fake_gemini.enqueue(gemini_ok())
    upload = new_upload()

    outcome = process_upload(upload.pk)

    assert outcome.provider == "google"
    assert fake_openai.requests == []
    [call] = ledger(upload)
    assert (call.purpose, call.status, call.cost) == ("primary", "ok", GOOGLE_COST)


def test_best_result_is_kept_when_the_fallback_is_worse(
    configure: Configure, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    configure()
    fake_gemini.enqueue(gemini_ok({"result_type": "Big Five"}))
    fake_openai.enqueue(openai_ok({}))
    upload = new_upload("generic")

    outcome = process_upload(upload.pk)

    assert outcome.provider == "google"
    assert outcome.confidence == pytest.approx(0.3333, abs=1e-4)
    assert Extraction.objects.get(upload=upload).data["result_type"] == "Big Five"
    assert len(ledger(upload)) == 2


def test_invalid_output_is_asked_again_with_the_errors(
    configure: Configure, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    configure(chain=("google",))
    wrong = {**SCORES, "openness": 141}
    fake_gemini.enqueue(gemini_ok(wrong), gemini_ok())
    upload = new_upload()

    outcome = process_upload(upload.pk)

    assert outcome.result == Result.DONE
    assert outcome.is_valid
    assert Extraction.objects.get(upload=upload).data == SCORES
    assert rows(upload) == [("google", "primary", "invalid"), ("google", "reask", "ok")]
    first, reask = fake_gemini.requests
    assert len(first.json["contents"]) == 1
    _, previous, follow_up = reask.json["contents"]
    assert previous == {"role": "model", "parts": [{"text": json.dumps(wrong)}]}
    assert (
        "- openness: Input should be less than or equal to 100"
        in follow_up["parts"][0]["text"]
    )
    assert_every_call_recorded(upload, fake_gemini, fake_openai)


def test_still_invalid_after_the_reask_needs_review(
    configure: Configure, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    configure(chain=("google",))
    fake_gemini.enqueue(gemini_ok(PARTIAL), gemini_ok(PARTIAL))
    upload = new_upload()

    outcome = process_upload(upload.pk)

    assert outcome.result == Result.DONE
    assert outcome.is_valid is False
    upload.refresh_from_db()
    assert upload.status == UploadStatus.NEEDS_REVIEW
    assert upload.last_error == "invalid output"
    extraction = Extraction.objects.get(upload=upload)
    assert not extraction.is_valid
    assert "extraversion: Field required" in extraction.validation_errors
    assert rows(upload) == [
        ("google", "primary", "invalid"),
        ("google", "reask", "invalid"),
    ]
    assert all(c.extraction_id == extraction.pk for c in ledger(upload))


def test_answer_that_is_not_json_is_asked_again(
    configure: Configure, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    configure(chain=("google",))
    fake_gemini.enqueue(gemini_ok("The scores are high.", output_tokens=7), gemini_ok())
    upload = new_upload()

    outcome = process_upload(upload.pk)

    assert outcome.is_valid
    invalid, ok = ledger(upload)
    assert (invalid.purpose, invalid.status, invalid.error_class) == (
        "primary",
        "invalid",
        "InvalidOutputError",
    )
    # The tokens of the unusable answer were still paid for.
    assert (invalid.tokens_in, invalid.tokens_out) == (1290, 7)
    assert invalid.cost > 0
    assert (ok.purpose, ok.status) == ("reask", "ok")
    follow_up = fake_gemini.requests[1].json["contents"][2]["parts"][0]["text"]
    assert "not JSON" in follow_up


def test_transient_failure_leaves_the_upload_to_retry(
    configure: Configure, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    configure(chain=("google",))
    fake_gemini.enqueue(google_error(503, "UNAVAILABLE", "The model is overloaded."))
    upload = new_upload()

    outcome = process_upload(upload.pk)

    assert outcome.result == Result.RETRY
    assert outcome.error_code == "transient"
    upload.refresh_from_db()
    assert upload.status == UploadStatus.FAILED
    assert "UNAVAILABLE" in upload.last_error
    assert not Extraction.objects.filter(upload=upload).exists()
    [call] = ledger(upload)
    assert (call.provider, call.purpose, call.status, call.error_class) == (
        "google",
        "primary",
        "error",
        "TransientProviderError",
    )
    assert call.extraction_id is None
    assert call.cost == 0
    assert_every_call_recorded(upload, fake_gemini, fake_openai)


def test_rate_limit_carries_retry_after(
    configure: Configure, fake_gemini: FakeGemini
) -> None:
    configure(chain=("google",))
    fake_gemini.enqueue(
        google_error(
            429, "RESOURCE_EXHAUSTED", "Quota exceeded.", headers={"Retry-After": "30"}
        )
    )
    upload = new_upload()

    outcome = process_upload(upload.pk)

    assert outcome.result == Result.RETRY
    assert (outcome.error_code, outcome.retry_after) == ("rate_limited", 30.0)
    assert rows(upload) == [("google", "primary", "error")]
    assert ledger(upload)[0].error_class == "RateLimited"


def test_timeout_is_retried(
    configure: Configure, fake_gemini: FakeGemini, ingest_settings: Any
) -> None:
    configure(chain=("google",))
    ingest_settings(
        PROVIDERS={
            "google": {
                "API_KEY": gemini.API_KEY,
                "BASE_URL": fake_gemini.url,
                "TIMEOUT": 0.3,
            }
        }
    )
    fake_gemini.enqueue(FakeResponse(json=gemini_answer(SCORES), delay=3))
    upload = new_upload()

    outcome = process_upload(upload.pk)

    assert outcome.result == Result.RETRY
    [call] = ledger(upload)
    assert (call.status, call.error_class) == ("error", "TransientProviderError")
    assert "timed out" in call.error_message


def test_permanent_failure_fails_the_upload(
    configure: Configure, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    configure(chain=("google",))
    fake_gemini.enqueue(google_error(403, "PERMISSION_DENIED", "Permission denied."))
    upload = new_upload()

    outcome = process_upload(upload.pk)

    assert outcome.result == Result.FAILED
    assert outcome.error_code == "permanent"
    upload.refresh_from_db()
    assert upload.status == UploadStatus.FAILED
    [call] = ledger(upload)
    assert (call.status, call.error_class) == ("error", "PermanentProviderError")
    assert_every_call_recorded(upload, fake_gemini, fake_openai)


def test_failed_primary_falls_back_and_both_calls_are_linked(
    configure: Configure, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    configure()
    fake_gemini.enqueue(google_error(500, "INTERNAL", "An internal error occurred."))
    fake_openai.enqueue(openai_ok())
    upload = new_upload()

    outcome = process_upload(upload.pk)

    assert (outcome.result, outcome.provider) == (Result.DONE, "openai")
    extraction = Extraction.objects.get(upload=upload)
    assert rows(upload) == [
        ("google", "primary", "error"),
        ("openai", "fallback", "ok"),
    ]
    assert {c.extraction_id for c in ledger(upload)} == {extraction.pk}
    assert_every_call_recorded(upload, fake_gemini, fake_openai)


def test_all_providers_failing_retries_if_any_failure_was_transient(
    configure: Configure, fake_gemini: FakeGemini, fake_openai: FakeOpenAI
) -> None:
    configure()
    fake_gemini.enqueue(google_error(400, "INVALID_ARGUMENT", "Bad image."))
    fake_openai.enqueue(openai_error(503, "Overloaded.", type="server_error"))
    upload = new_upload()

    outcome = process_upload(upload.pk)

    assert outcome.result == Result.RETRY
    assert [(c.provider, c.status, c.error_class) for c in ledger(upload)] == [
        ("google", "error", "PermanentProviderError"),
        ("openai", "error", "TransientProviderError"),
    ]
    assert_every_call_recorded(upload, fake_gemini, fake_openai)


def test_logs_hold_no_keys_document_or_model_output(
    configure: Configure,
    fake_gemini: FakeGemini,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure()
    content = make_png("Openness 41.25 Neuroticism 30.75")
    wrong = {**SCORES, "openness": 141.5}
    fake_gemini.enqueue(
        gemini_ok(wrong),
        google_error(
            401, "UNAUTHENTICATED", f"Key {gemini.API_KEY} expired", headers={}
        ),
    )
    fake_openai.enqueue(openai_ok())
    upload = new_upload(content=content)

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django_cf_ingest")
    outcome = process_upload(upload.pk)

    assert outcome.provider == "openai"
    assert rows(upload) == [
        ("google", "primary", "invalid"),
        ("google", "reask", "error"),
        ("openai", "fallback", "ok"),
    ]
    ours = [r for r in caplog.records if r.name.startswith("django_cf_ingest")]
    assert any("provider response provider=google" in r.getMessage() for r in ours)
    assert any("provider call failed" in r.getMessage() for r in ours)

    logged = "\n".join(
        [caplog.text]
        + [r.getMessage() for r in caplog.records]
        + [repr(r.args) for r in caplog.records]
    )
    encoded = base64.b64encode(content).decode("ascii")
    forbidden = {
        "gemini key": gemini.API_KEY,
        "openai key": openai_compat.API_KEY,
        "file base64 (start)": encoded[:40],
        "file base64 (middle)": encoded[len(encoded) // 2 : len(encoded) // 2 + 40],
        "wrong output": json.dumps(wrong),
        "final output": json.dumps(SCORES),
        "a value read": "141.5",
    }
    leaked = [name for name, value in forbidden.items() if value in logged]
    assert leaked == []
    # The key echoed in the vendor's error message is not in the ledger either.
    assert gemini.API_KEY not in ledger(upload)[1].error_message


@pytest.mark.parametrize(
    ("name", "expected"),
    [("google", "cf_ingest.E030"), ("openai", "cf_ingest.E031")],
)
def test_system_check_names_the_missing_key(
    ingest_settings: Callable[..., None], name: str, expected: str
) -> None:
    from django_cf_ingest.checks import check_settings

    ingest_settings(PROVIDERS={name: {}}, PROVIDER_CHAIN=[name])

    ids = [message.id for message in check_settings()]

    assert expected in ids


def test_system_check_reports_unknown_provider_options(
    ingest_settings: Callable[..., None],
) -> None:
    from django_cf_ingest.checks import check_settings

    ingest_settings(
        PROVIDERS={"google": {"API_KEY": "k", "APIKEY": "typo"}},
        PROVIDER_CHAIN=["google"],
    )

    [message] = [m for m in check_settings() if "APIKEY" in m.msg]

    assert message.id == "cf_ingest.E013"
