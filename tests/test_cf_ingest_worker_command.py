"""``manage.py cf_ingest_worker``: the Worker it writes, and what wrangler
makes of it."""

from __future__ import annotations

import io
import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from django_cf_ingest import registry
from django_cf_ingest.cloudflare_worker import COMPATIBILITY_DATE, SOURCE_DIR
from django_cf_ingest.providers.workers_ai import response_format, system_prompt

from .worker_runtime import (
    ROOT,
    SKIP_REASON,
    WRANGLER,
    node_env,
    node_modules_present,
)

PROMPT_CHECK = ROOT / "tests" / "workerd" / "prompt-check.mjs"

SECRET = "site-secret-that-must-stay-out-of-files-0123"


@pytest.fixture
def worker_settings(ingest_settings: Any) -> None:
    ingest_settings(
        INTERNAL_SECRETS=[SECRET, "older-secret-also-kept-out-0123456"],
        INTERNAL_INGEST_BASE_URL="https://ingest.example.org/",
        QUEUE={
            "BACKEND": "django_cf_ingest.queues.cloudflare.CloudflareBackend",
            "OPTIONS": {
                "ACCOUNT_ID": "0123456789abcdef0123456789abcdef",
                "API_TOKEN": "token-that-stays-out-of-files",
                "QUEUE": "site-ingest",
                "CONSUMER": "worker",
            },
        },
        MAX_ATTEMPTS=6,
        RETRY_BASE_DELAY=2.5,
        RETRY_MAX_DELAY=90000.0,
        HTTP_TIMEOUT=45.0,
        WORKERS_AI_MODEL="@cf/meta/llama-3.2-11b-vision-instruct",
    )


def write(folder: Path, *args: str, **options: Any) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "cf_ingest_worker", str(folder), *args, stdout=out, stderr=err, **options
    )
    return out.getvalue(), err.getvalue()


def read_config(folder: Path) -> dict[str, Any]:
    return tomllib.loads((folder / "wrangler.toml").read_text())


def test_stage1_config_comes_from_the_settings(
    worker_settings: None, tmp_path: Path
) -> None:
    out, err = write(tmp_path / "w")

    config = read_config(tmp_path / "w")
    assert config["name"] == "cf-ingest-consumer"
    assert config["main"] == "src/index.js"
    assert config["compatibility_date"] == COMPATIBILITY_DATE
    assert config["vars"] == {
        "INTERNAL_INGEST_BASE_URL": "https://ingest.example.org",
        "INTERNAL_INGEST_PATH": "/internal/ingest/",
        "SIGN_REQUESTS": "false",
        "USE_EDGE_INGEST": "false",
        "WORKERS_AI_MODEL": "@cf/meta/llama-3.2-11b-vision-instruct",
        "WORKERS_AI_JSON_MODE": "true",
        "DEAD_LETTER_QUEUE": "site-ingest-dlq",
        "MAX_RETRIES": "5",
        "RETRY_BASE_DELAY_SECONDS": "2.5",
        "RETRY_MAX_DELAY_SECONDS": "43200",
        "HTTP_TIMEOUT_SECONDS": "45",
        "PARALLEL_MESSAGES": "6",
        "R2_KEY_PREFIX": "",
    }
    ingest, dead = config["queues"]["consumers"]
    assert ingest == {
        "queue": "site-ingest",
        "max_batch_size": 10,
        "max_batch_timeout": 5,
        "max_retries": 5,
        "dead_letter_queue": "site-ingest-dlq",
        "retry_delay": 3,
    }
    assert dead["queue"] == "site-ingest-dlq"
    assert "dead_letter_queue" not in dead
    assert "ai" not in config
    assert "r2_buckets" not in config
    assert "wrangler secret put INTERNAL_API_SECRET" in out
    assert "npx wrangler queues create site-ingest-dlq" in out
    assert err == ""


def test_stage2_adds_r2_and_ai_and_options_override(
    worker_settings: None, tmp_path: Path
) -> None:
    write(
        tmp_path / "w",
        stage=2,
        bucket="uploads-bucket",
        name="edge-consumer",
        queue="other-queue",
        dlq="other-dead",
        batch_size=25,
        batch_timeout=2,
        concurrency=4,
        parallel=3,
    )

    config = read_config(tmp_path / "w")
    assert config["name"] == "edge-consumer"
    assert config["vars"]["USE_EDGE_INGEST"] == "true"
    assert config["vars"]["DEAD_LETTER_QUEUE"] == "other-dead"
    assert config["vars"]["PARALLEL_MESSAGES"] == "3"
    assert config["r2_buckets"] == [{"binding": "R2", "bucket_name": "uploads-bucket"}]
    assert config["ai"] == {"binding": "AI"}
    ingest = config["queues"]["consumers"][0]
    assert ingest["queue"] == "other-queue"
    assert (ingest["max_batch_size"], ingest["max_batch_timeout"]) == (25, 2)
    assert ingest["max_concurrency"] == 4


def test_stage2_takes_bucket_and_location_from_the_upload_storage(
    worker_settings: None, settings: Any, tmp_path: Path
) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": "site-uploads", "location": "media/"},
        },
    }

    write(tmp_path / "w", stage=2)

    config = read_config(tmp_path / "w")
    assert config["r2_buckets"] == [{"binding": "R2", "bucket_name": "site-uploads"}]
    assert config["vars"]["R2_KEY_PREFIX"] == "media"


def test_no_secret_is_written(worker_settings: None, tmp_path: Path) -> None:
    write(tmp_path / "w", stage=2, bucket="b")

    written = [p for p in (tmp_path / "w").rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"wrangler.toml", "README.md", "index.js"}
    for path in written:
        text = path.read_text()
        assert SECRET not in text
        assert "older-secret" not in text
        assert "token-that-stays-out" not in text
    assert sorted(p.name for p in (tmp_path / "w" / "src").iterdir()) == sorted(
        p.name for p in SOURCE_DIR.glob("*.js")
    )


def test_signature_setting_turns_signing_on(
    worker_settings: None, ingest_settings: Any, tmp_path: Path
) -> None:
    ingest_settings(REQUIRE_SIGNATURE=True)

    write(tmp_path / "w")

    assert read_config(tmp_path / "w")["vars"]["SIGN_REQUESTS"] == "true"


def test_existing_files_need_force(worker_settings: None, tmp_path: Path) -> None:
    write(tmp_path / "w")
    (tmp_path / "w" / "wrangler.toml").write_text("# edited\n")

    with pytest.raises(CommandError, match="--force"):
        write(tmp_path / "w")
    assert (tmp_path / "w" / "wrangler.toml").read_text() == "# edited\n"

    write(tmp_path / "w", "--force")
    assert read_config(tmp_path / "w")["name"] == "cf-ingest-consumer"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stage": 2}, "bucket"),
        ({"queue": "Bad_Name"}, "not valid"),
        ({"dlq": "site-ingest"}, "must differ"),
        ({"batch_size": 101}, "max_batch_size"),
        ({"base_url": "ftp://example.org"}, "http"),
    ],
)
def test_bad_options_are_refused(
    worker_settings: None, tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        write(tmp_path / "w", **options)
    assert not (tmp_path / "w").exists()


def test_a_dead_letter_queue_named_in_the_settings_is_used(
    worker_settings: None, ingest_settings: Any, settings: Any, tmp_path: Path
) -> None:
    queue = settings.CF_INGEST["QUEUE"]
    options = {**queue["OPTIONS"], "DEAD_LETTER_QUEUE": "site-dead"}
    ingest_settings(QUEUE={**queue, "OPTIONS": options})

    write(tmp_path / "w")

    assert read_config(tmp_path / "w")["vars"]["DEAD_LETTER_QUEUE"] == "site-dead"


def test_a_queue_id_is_not_a_name(ingest_settings: Any, tmp_path: Path) -> None:
    ingest_settings(
        QUEUE={
            "BACKEND": "django_cf_ingest.queues.cloudflare.CloudflareBackend",
            "OPTIONS": {"QUEUE": "0123456789abcdef0123456789abcdef"},
        }
    )

    with pytest.raises(CommandError, match="--queue"):
        write(tmp_path / "w")


def test_a_queue_is_needed(ingest_settings: Any, tmp_path: Path) -> None:
    ingest_settings(
        QUEUE={"BACKEND": "django_cf_ingest.queues.database.DatabaseBackend"}
    )

    with pytest.raises(CommandError, match="--queue"):
        write(tmp_path / "w")


def test_a_local_base_url_is_warned_about(
    worker_settings: None, tmp_path: Path
) -> None:
    _, err = write(tmp_path / "w", base_url="http://127.0.0.1:8000")

    assert "cannot reach it" in err


@pytest.mark.worker
@pytest.mark.skipif(not node_modules_present(), reason=SKIP_REASON)
@pytest.mark.parametrize("stage", [1, 2])
def test_wrangler_accepts_the_written_worker(
    worker_settings: None, tmp_path: Path, stage: int
) -> None:
    folder = tmp_path / "w"
    write(folder, stage=stage, bucket="uploads-bucket")

    result = subprocess.run(
        [str(WRANGLER), "deploy", "--dry-run", "--outdir", str(tmp_path / "out")],
        cwd=folder,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "--dry-run: exiting now." in output
    assert "env.INTERNAL_INGEST_BASE_URL" in output
    # Wrangler warns about unknown or misplaced keys; there must be none,
    # apart from its note that an AI binding is always remote.
    warnings = [
        line
        for line in output.splitlines()
        if "WARNING" in line and "AI bindings always access remote" not in line
    ]
    assert warnings == []
    assert ("env.AI" in output) == (stage == 2)
    assert ("env.R2 (uploads-bucket)" in output) == (stage == 2)
    bundle = (tmp_path / "out" / "index.js").read_text()
    assert "X-Internal-Secret" in bundle
    assert SECRET not in bundle


@pytest.mark.worker
@pytest.mark.skipif(not node_modules_present(), reason=SKIP_REASON)
def test_the_worker_asks_the_model_what_the_site_would() -> None:
    specs = [spec for spec in registry.all_specs() if spec.json_schema]
    types = [
        {"instructions": spec.instructions, "schema": spec.json_schema}
        for spec in specs
    ]

    result = subprocess.run(
        ["node", str(PROMPT_CHECK), str(SOURCE_DIR / "prompt.js")],
        input=json.dumps(types),
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    answers = json.loads(result.stdout)
    assert len(answers) == len(specs) >= 6
    for spec, answer in zip(specs, answers, strict=True):
        assert answer["systemPrompt"] == system_prompt(
            spec.instructions, spec.json_schema
        ), spec.slug
        assert answer["responseFormat"] == response_format(spec.json_schema)
