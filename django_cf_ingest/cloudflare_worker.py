"""Writing out the Cloudflare Worker that consumes the ingest queue.

The Worker's sources ship in the package under ``worker/src``; its
``wrangler.toml`` is rendered from ``worker/wrangler.template.toml`` with the
site's settings: the queue and dead-letter queue, the R2 bucket and the Workers
AI binding for Stage 2, and the vars the Worker reads. The shared secret is
never written: the operator sets it with ``wrangler secret put``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from django.conf import settings as django_settings
from django.urls import NoReverseMatch, get_script_prefix, reverse

from .conf import IngestSettings

WORKER_DIR = Path(__file__).resolve().parent / "worker"
SOURCE_DIR = WORKER_DIR / "src"
TEMPLATE = WORKER_DIR / "wrangler.template.toml"

#: The runtime date the Worker is written and tested against.
COMPATIBILITY_DATE = "2026-04-20"
#: Secrets the Worker needs; set each with ``wrangler secret put``.
SECRETS = ("INTERNAL_API_SECRET",)

# Worker and queue names: lowercase letters, digits and dashes, at most 63.
NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Queues accept per-message delays up to 12 hours under every documented limit.
MAX_DELAY_SECONDS = 43200
DEFAULT_NAME = "cf-ingest-consumer"
# Retries of a report to the site from the dead-letter queue.
DEAD_LETTER_MAX_RETRIES = 10


class WorkerConfigError(ValueError):
    """The Worker cannot be written with these settings."""


@dataclass(frozen=True)
class WorkerOptions:
    name: str
    queue: str
    dead_letter_queue: str
    stage: int
    base_url: str
    endpoint_path: str
    bucket: str = ""
    key_prefix: str = ""
    max_batch_size: int = 10
    max_batch_timeout: int = 5
    max_concurrency: int | None = None
    parallel_messages: int = 6
    max_retries: int = 4
    retry_base_delay: float = 2.0
    retry_max_delay: float = 3600.0
    http_timeout: float = 120.0
    sign_requests: bool = False
    model: str = "@cf/meta/llama-3.2-11b-vision-instruct"

    def validate(self) -> None:
        for label, value in (
            ("Worker name", self.name),
            ("queue", self.queue),
            ("dead-letter queue", self.dead_letter_queue),
        ):
            if not NAME_PATTERN.match(value):
                raise WorkerConfigError(
                    f"The {label} {value!r} is not valid: use lowercase letters, "
                    "digits and dashes (at most 63)."
                )
        if self.queue == self.dead_letter_queue:
            raise WorkerConfigError("The dead-letter queue must differ from the queue.")
        if self.stage not in (1, 2):
            raise WorkerConfigError("The stage is 1 or 2.")
        if self.stage == 2 and not self.bucket:
            raise WorkerConfigError(
                "Stage 2 reads uploads from R2: name the bucket (--bucket), or use "
                "an S3 storage with a bucket_name for the uploads."
            )
        if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", self.base_url):
            raise WorkerConfigError(
                f"INTERNAL_INGEST_BASE_URL {self.base_url!r} is not an http(s) URL."
            )
        _check_range("max_batch_size", self.max_batch_size, 1, 100)
        _check_range("max_batch_timeout", self.max_batch_timeout, 0, 60)
        _check_range("max_retries", self.max_retries, 0, 100)
        _check_range("parallel messages", self.parallel_messages, 1, 100)
        if self.max_concurrency is not None:
            _check_range("max_concurrency", self.max_concurrency, 1, 250)

    def warnings(self) -> list[str]:
        notes = []
        host = re.sub(r"^https?://([^/:]+).*$", r"\1", self.base_url).lower()
        if host in ("127.0.0.1", "localhost", "0.0.0.0", "[::1]"):  # noqa: S104
            notes.append(
                f"INTERNAL_INGEST_BASE_URL is {self.base_url}: a deployed Worker "
                "cannot reach it. Pass --base-url with the site's public origin."
            )
        elif self.base_url.startswith("http://"):
            notes.append(
                "INTERNAL_INGEST_BASE_URL is plain http: the shared secret would "
                "cross the internet unencrypted. Use https."
            )
        return notes


def _check_range(label: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise WorkerConfigError(f"{label} must be from {low} to {high}, not {value}.")


def endpoint_path(config: IngestSettings) -> str:
    """Path of the internal endpoints under the site's root, both slashes on.

    Taken from the URL configuration when the app's URLs are included, so a
    site that mounts them under a prefix of its own gets the right path.
    """
    try:
        dead = reverse("cf_ingest:dead")
    except NoReverseMatch:
        return "/" + config.INTERNAL_URL_PREFIX.strip("/") + "/"
    prefix = get_script_prefix()
    if dead.startswith(prefix):
        dead = "/" + dead[len(prefix) :]
    return dead[: -len("dead")]


def _queue_name(value: Any) -> str:
    name = str(value or "").strip()
    # wrangler.toml names queues; a 32-hex queue id cannot be used there.
    return "" if re.fullmatch(r"[0-9a-f]{32}", name) else name


def settings_queue_names(config: IngestSettings) -> tuple[str, str]:
    """The queue and dead-letter queue named in ``QUEUE["OPTIONS"]``, if any."""
    options: dict[str, Any] = dict(config.QUEUE.get("OPTIONS") or {})
    return _queue_name(options.get("QUEUE")), _queue_name(
        options.get("DEAD_LETTER_QUEUE")
    )


def settings_storage(config: IngestSettings) -> tuple[str, str]:
    """Bucket and location of the upload storage, when it is an S3 (R2) one."""
    storage: dict[str, Any] = getattr(django_settings, "STORAGES", {}).get(
        config.STORAGE, {}
    )
    options = storage.get("OPTIONS") or {}
    return str(options.get("bucket_name") or ""), str(options.get("location") or "")


def options_from_settings(config: IngestSettings, **given: Any) -> WorkerOptions:
    """Worker options from the settings; ``given`` values (not None) win."""
    chosen = {key: value for key, value in given.items() if value is not None}
    queue, dead_letter_queue = settings_queue_names(config)
    queue = chosen.pop("queue", queue)
    if not queue:
        raise WorkerConfigError(
            "No queue name in the settings (CF_INGEST['QUEUE']['OPTIONS']['QUEUE'] "
            "holds an id, or the database queue is configured): pass --queue."
        )
    bucket, location = settings_storage(config)
    values: dict[str, Any] = {
        "name": DEFAULT_NAME,
        "queue": queue,
        "dead_letter_queue": dead_letter_queue or f"{queue}-dlq",
        "stage": 2 if config.USE_EDGE_INGEST else 1,
        "base_url": config.INTERNAL_INGEST_BASE_URL.rstrip("/"),
        "endpoint_path": endpoint_path(config),
        "bucket": bucket,
        "key_prefix": location.strip("/"),
        "max_retries": min(100, max(0, config.MAX_ATTEMPTS - 1)),
        "retry_base_delay": min(config.RETRY_BASE_DELAY, MAX_DELAY_SECONDS),
        "retry_max_delay": min(config.RETRY_MAX_DELAY, MAX_DELAY_SECONDS),
        "http_timeout": config.HTTP_TIMEOUT,
        "sign_requests": config.REQUIRE_SIGNATURE,
        "model": config.WORKERS_AI_MODEL,
    }
    values.update(chosen)
    options = WorkerOptions(**values)
    options.validate()
    return options


def _toml_string(value: str) -> str:
    # JSON's string escapes are a subset of TOML's basic-string escapes.
    return json.dumps(value, ensure_ascii=True)


def _seconds(value: float) -> str:
    return _toml_string(f"{value:g}")


def render_wrangler_toml(options: WorkerOptions) -> str:
    stage2 = ""
    if options.stage == 2:
        stage2 = (
            "\n# Stage 2: uploads are read from R2 and extracted with Workers AI.\n"
            "[[r2_buckets]]\n"
            'binding = "R2"\n'
            f"bucket_name = {_toml_string(options.bucket)}\n"
            "\n[ai]\n"
            'binding = "AI"\n'
        )
    concurrency = "# max_concurrency: unset, so the consumer autoscales."
    if options.max_concurrency is not None:
        concurrency = f"max_concurrency = {options.max_concurrency}"
    template = Template(TEMPLATE.read_text(encoding="utf-8"))
    return template.substitute(
        name=_toml_string(options.name),
        compatibility_date=_toml_string(COMPATIBILITY_DATE),
        base_url=_toml_string(options.base_url),
        endpoint_path=_toml_string(options.endpoint_path),
        sign_requests=_toml_string(str(options.sign_requests).lower()),
        use_edge_ingest=_toml_string(str(options.stage == 2).lower()),
        model=_toml_string(options.model),
        dead_letter_queue=_toml_string(options.dead_letter_queue),
        max_retries_var=_toml_string(str(options.max_retries)),
        retry_base_delay=_seconds(options.retry_base_delay),
        retry_max_delay=_seconds(options.retry_max_delay),
        http_timeout=_seconds(options.http_timeout),
        parallel_messages=_toml_string(str(options.parallel_messages)),
        key_prefix=_toml_string(options.key_prefix),
        queue=_toml_string(options.queue),
        max_batch_size=options.max_batch_size,
        max_batch_timeout=options.max_batch_timeout,
        max_retries=options.max_retries,
        retry_delay=max(0, math.ceil(options.retry_base_delay)),
        max_concurrency=concurrency,
        dead_letter_max_retries=DEAD_LETTER_MAX_RETRIES,
        stage2_bindings=stage2,
    )


def existing_files(target: Path) -> list[Path]:
    """Files that writing the Worker into ``target`` would replace."""
    candidates = [target / "wrangler.toml", target / "README.md"]
    candidates += [target / "src" / path.name for path in SOURCE_DIR.glob("*.js")]
    return [path for path in candidates if path.exists()]


def write_worker(target: Path, options: WorkerOptions) -> list[Path]:
    """Write the Worker's sources and ``wrangler.toml`` into ``target``."""
    source_target = target / "src"
    source_target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(SOURCE_DIR.glob("*.js")):
        destination = source_target / path.name
        shutil.copyfile(path, destination)
        written.append(destination)
    readme = target / "README.md"
    shutil.copyfile(WORKER_DIR / "README.md", readme)
    written.append(readme)
    config = target / "wrangler.toml"
    config.write_text(render_wrangler_toml(options), encoding="utf-8")
    written.append(config)
    return written
