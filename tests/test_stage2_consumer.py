"""The Stage 2 consumer end to end: the site's endpoints on a live server, the
uploads on R2 (moto's S3 server), Workers AI played by a local fake."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from django_cf_ingest.consumer.handlers import Decision
from django_cf_ingest.consumer.stage1 import Stage1Handler
from django_cf_ingest.consumer.stage2 import Stage2Handler
from django_cf_ingest.management.commands.cf_ingest_consume import Command
from django_cf_ingest.models import (
    Extraction,
    ProviderCall,
    QueueMessage,
    Stage,
    Upload,
    UploadStatus,
)
from django_cf_ingest.providers.workers_ai import pdf_image
from django_cf_ingest.registry import get_spec
from example_project.demo.samples import SAMPLES_DIR

from .cloudflare_support import CloudflareSite, cloudflare
from .conftest import make_png
from .fakes.r2 import SECRET_KEY
from .fakes.server import FakeResponse
from .fakes.workers_ai import (
    API_TOKEN,
    FakeWorkersAI,
    cf_answer,
    cf_error,
    decoded_image,
)
from .stage2_support import (
    BIG_FIVE,
    MODEL,
    SECRET,
    R2Bucket,
    fake_r2,
    new_upload,
    r2,
    use_workers_ai,
    workers_ai,
)
from .subprocess_env import ROOT, child_env

__all__ = ["cloudflare", "fake_r2", "r2", "use_workers_ai", "workers_ai"]


@pytest.fixture
def edge(
    ingest_settings: Any, live_server: Any, r2: R2Bucket, use_workers_ai: FakeWorkersAI
) -> FakeWorkersAI:
    """Everything Stage 2 talks to: the site, R2 and Workers AI."""
    ingest_settings(INTERNAL_INGEST_BASE_URL=live_server.url)
    return use_workers_ai


def handle(upload: Upload) -> Decision:
    handler = Stage2Handler(concurrency=1)
    try:
        return handler.handle(upload.pk)
    finally:
        handler.close()


def test_success_reads_r2_calls_the_model_and_reports(
    edge: FakeWorkersAI, r2: R2Bucket
) -> None:
    content = make_png("Openness 71")
    upload = new_upload(content)
    edge.enqueue(cf_answer(BIG_FIVE))

    decision = handle(upload)

    upload.refresh_from_db()
    extraction = Extraction.objects.get(upload=upload)
    call = ProviderCall.objects.get(upload=upload)
    assert decision == Decision("ack", "done")
    assert upload.status == UploadStatus.NEEDS_REVIEW
    assert (extraction.stage, extraction.is_valid) == (Stage.STAGE2, True)
    assert extraction.data == BIG_FIVE
    assert (call.stage, call.status, call.tokens_in, call.tokens_out) == (
        Stage.STAGE2,
        "ok",
        1620,
        48,
    )
    request = edge.last
    assert request.path.endswith(f"/ai/run/{MODEL}")
    assert request.headers["authorization"] == f"Bearer {API_TOKEN}"
    assert request.json["image"] == base64.b64encode(content).decode()
    assert request.json["response_format"]["type"] == "json_schema"
    assert r2.fake.rejected() == []


def test_json_in_prose_without_json_mode(
    edge: FakeWorkersAI, ingest_settings: Any
) -> None:
    ingest_settings(PROVIDERS={"workers_ai": edge.options(JSON_MODE=False)})
    edge.enqueue(cf_answer("Sure:\n```json\n" + json.dumps(BIG_FIVE) + "\n```"))
    upload = new_upload()

    decision = handle(upload)

    assert decision.action == "ack"
    assert "response_format" not in edge.last.json
    extraction = Extraction.objects.get(upload=upload)
    assert extraction.is_valid
    assert extraction.data == BIG_FIVE


def test_schema_invalid_output_is_kept_for_review(edge: FakeWorkersAI) -> None:
    edge.enqueue(cf_answer({**BIG_FIVE, "openness": 170}))
    upload = new_upload()

    decision = handle(upload)

    upload.refresh_from_db()
    extraction = Extraction.objects.get(upload=upload)
    assert decision == Decision("ack", "done")
    assert upload.status == UploadStatus.NEEDS_REVIEW
    assert not extraction.is_valid
    assert ProviderCall.objects.get(upload=upload).status == "invalid"


def test_rate_limit_is_retried_after_the_given_delay(edge: FakeWorkersAI) -> None:
    edge.enqueue(cf_error(429, 3040, "Out of capacity", headers={"Retry-After": "7"}))
    upload = new_upload()

    decision = handle(upload)

    upload.refresh_from_db()
    call = ProviderCall.objects.get(upload=upload)
    assert (decision.action, decision.outcome, decision.delay) == (
        "retry",
        "rate_limited",
        7,
    )
    assert upload.status == UploadStatus.FAILED
    assert (call.stage, call.status, call.error_class) == (
        Stage.STAGE2,
        "error",
        "RateLimited",
    )
    # The next delivery claims it again at once and succeeds.
    assert handle(upload) == Decision("ack", "done")


def test_licence_not_accepted_fails_the_upload(
    edge: FakeWorkersAI, ingest_settings: Any
) -> None:
    edge.licence_accepted = False
    upload = new_upload()

    decision = handle(upload)

    upload.refresh_from_db()
    assert (decision.action, decision.outcome) == ("ack", "failed")
    assert upload.status == UploadStatus.FAILED
    assert '{"prompt": "agree"}' in upload.last_error
    assert API_TOKEN not in upload.last_error
    assert ProviderCall.objects.get(upload=upload).error_class == "LicenceNotAccepted"


def test_missing_file_fails_without_calling_the_model(
    edge: FakeWorkersAI, r2: R2Bucket
) -> None:
    upload = new_upload()
    r2.fake.client().delete_object(Bucket=r2.name, Key=upload.file.name)

    decision = handle(upload)

    upload.refresh_from_db()
    assert (decision.action, decision.outcome) == ("ack", "failed")
    assert upload.status == UploadStatus.FAILED
    assert "file_missing" in upload.last_error
    assert edge.requests == []
    assert not ProviderCall.objects.exists()


def test_a_finished_upload_is_acked_without_a_model_call(edge: FakeWorkersAI) -> None:
    upload = new_upload()
    handle(upload)
    edge.clear()

    assert handle(upload) == Decision("ack", "already_done")
    assert edge.requests == []
    assert Extraction.objects.filter(upload=upload).count() == 1


def test_pdf_is_rendered_before_the_call(edge: FakeWorkersAI) -> None:
    page = Image.new("RGB", (300, 200), "white")
    buffer = io.BytesIO()
    page.save(buffer, format="PDF")
    upload = new_upload(buffer.getvalue(), name="sheet.pdf")

    assert handle(upload).action == "ack"

    image = Image.open(io.BytesIO(decoded_image(edge.last)))
    assert image.format == "PNG"
    assert image.size == (600, 400)


def test_signed_requests(edge: FakeWorkersAI, ingest_settings: Any) -> None:
    ingest_settings(REQUIRE_SIGNATURE=True)
    upload = new_upload()

    assert handle(upload) == Decision("ack", "done")


def test_model_timeout_is_transient(edge: FakeWorkersAI, ingest_settings: Any) -> None:
    ingest_settings(PROVIDERS={"workers_ai": edge.options(TIMEOUT=0.3)})
    edge.enqueue(FakeResponse(delay=1.5, json={}))
    upload = new_upload()

    decision = handle(upload)

    upload.refresh_from_db()
    assert decision.action == "retry"
    assert upload.status == UploadStatus.FAILED
    assert ProviderCall.objects.get(upload=upload).error_class == (
        "TransientProviderError"
    )


def test_stage_2_is_chosen_by_flag_or_setting(
    edge: FakeWorkersAI, ingest_settings: Any
) -> None:
    options = {"stage": None, "in_process": False, "concurrency": 2}
    ingest_settings(USE_EDGE_INGEST=True)
    assert isinstance(Command()._handler(options), Stage2Handler)
    ingest_settings(USE_EDGE_INGEST=False)
    assert isinstance(Command()._handler({**options, "stage": "2"}), Stage2Handler)


def test_stage_2_needs_workers_ai_credentials(ingest_settings: Any) -> None:
    ingest_settings(PROVIDERS={"workers_ai": {"ACCOUNT_ID": "a"}})
    with pytest.raises(ImproperlyConfigured, match="API_TOKEN"):
        Stage2Handler()


# Stage 1 and Stage 2 leave the same rows --------------------------------------


EXTRACTION_FIELDS_APART = {"id", "upload", "created_at", "stage", "delivery_token"}
CALL_FIELDS_APART = {"id", "upload", "extraction", "created_at", "stage", "latency_ms"}
UPLOAD_FIELDS = (
    "status",
    "attempts",
    "last_error",
    "content_type",
    "size",
    "sha256",
    "processing_started_at",
)


def _row(instance: Any, apart: set[str]) -> dict[str, Any]:
    return {
        field.name: getattr(instance, field.attname)
        for field in instance._meta.concrete_fields
        if field.name not in apart
    }


@pytest.mark.parametrize("answer", ["object", "prose"])
def test_stage_1_and_stage_2_end_in_the_same_state(
    edge: FakeWorkersAI, ingest_settings: Any, answer: str
) -> None:
    content = make_png("Openness 71, Neuroticism 22")
    first, second = new_upload(content), new_upload(content)
    response: Any = BIG_FIVE
    if answer == "prose":
        ingest_settings(PROVIDERS={"workers_ai": edge.options(JSON_MODE=False)})
        response = "The scores:\n```json\n" + json.dumps(BIG_FIVE) + "\n```"
    edge.enqueue(cf_answer(response), cf_answer(response))

    stage1 = Stage1Handler(concurrency=1)
    assert stage1.handle(first.pk) == Decision("ack", "done")
    stage1.close()
    assert handle(second) == Decision("ack", "done")

    one, two = (Extraction.objects.get(upload=u) for u in (first, second))
    call_one, call_two = (ProviderCall.objects.get(upload=u) for u in (first, second))
    assert (one.stage, two.stage) == (Stage.STAGE1, Stage.STAGE2)
    assert (call_one.stage, call_two.stage) == (Stage.STAGE1, Stage.STAGE2)
    assert _row(one, EXTRACTION_FIELDS_APART) == _row(two, EXTRACTION_FIELDS_APART)
    assert _row(call_one, CALL_FIELDS_APART) == _row(call_two, CALL_FIELDS_APART)
    first.refresh_from_db()
    second.refresh_from_db()
    assert [getattr(first, f) for f in UPLOAD_FIELDS] == [
        getattr(second, f) for f in UPLOAD_FIELDS
    ]
    # The model got the same request, byte for byte, from the server and the edge.
    assert edge.requests[0].body == edge.requests[1].body


# The command in its own process ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("queue", ["database", "cloudflare"])
def test_consume_command_runs_stage_2_on_the_sample_documents(
    edge: FakeWorkersAI,
    r2: R2Bucket,
    live_server: Any,
    ingest_settings: Any,
    request: pytest.FixtureRequest,
    queue: str,
) -> None:
    overrides: dict[str, Any] = {
        "INTERNAL_INGEST_BASE_URL": live_server.url,
        "PROVIDERS": {"workers_ai": edge.options()},
    }
    cloudflare: CloudflareSite | None = None
    if queue == "cloudflare":
        # Published to, and pulled from, the Queues emulator over REST.
        cloudflare = request.getfixturevalue("cloudflare")
        overrides["QUEUE"] = cloudflare.queue_settings()
        ingest_settings(QUEUE=overrides["QUEUE"])
    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text())
    uploads, expected, answers = [], {}, {}
    for sample in manifest:
        content = (SAMPLES_DIR / sample["file"]).read_bytes()
        upload = new_upload(content, slug=sample["type"], name=sample["file"])
        uploads.append(upload)
        expected[upload.pk] = (
            get_spec(sample["type"])
            .model.model_validate(sample["expected"])
            .model_dump(mode="json")
        )
        # A model that reads every sheet right: the answer for the image it gets.
        image = pdf_image(content, 1) if sample["file"].endswith(".pdf") else content
        answers[hashlib.sha256(image).hexdigest()] = sample["expected"]

    def read_right(request: Any) -> FakeResponse:
        return cf_answer(answers[hashlib.sha256(decoded_image(request)).hexdigest()])

    edge.enqueue(*[read_right] * len(uploads))
    env = {**child_env(**overrides), **r2.fake.environment(r2.name)}
    env.pop("CF_AI_INGEST_QUEUE_ID", None)

    consumer = subprocess.run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "cf_ingest_consume",
            "--stage",
            "2",
            "--drain",
            "--concurrency",
            "3",
            "--poll-interval",
            "0.1",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    output = consumer.stdout + consumer.stderr
    assert consumer.returncode == 0, output
    assert f"acked={len(uploads)}" in output
    for secret in (SECRET, API_TOKEN, SECRET_KEY):
        assert secret not in output
    assert not QueueMessage.objects.exists()
    if cloudflare is not None:
        assert cloudflare.messages() == []
        operations = {r.operation for r in cloudflare.emulator.recorded()}
        assert operations & {"queues-push-message", "queues-push-messages"}
        assert {"queues-pull-messages", "queues-ack-messages"} <= operations
    extractions = Extraction.objects.filter(upload__in=uploads)
    assert len(extractions) == len(uploads)
    assert {e.stage for e in extractions} == {Stage.STAGE2}
    assert {e.upload_id: e.data for e in extractions} == expected
    assert all(e.is_valid for e in extractions)
    assert set(
        Upload.objects.filter(pk__in=[u.pk for u in uploads]).values_list(
            "status", flat=True
        )
    ) == {UploadStatus.NEEDS_REVIEW}
    assert len(edge.requests) == len(uploads)
    assert r2.fake.rejected() == []
