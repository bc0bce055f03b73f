"""Stage 2 delivery (edge extraction): this consumer calls the model itself.

For each upload it:

1. asks the site for the upload's metadata, ``GET <prefix>meta/<id>``, which
   also claims the upload for this delivery;
2. reads the file from the upload storage: on S3 or R2 with boto3, through
   the client django-storages builds from the site's storage settings
   (endpoint, keys, region, the R2 checksum settings), streamed into a
   temporary file that stays in memory only while it is small;
3. calls Workers AI over REST with the model and request the metadata gives,
   the image streamed into the request body as base64;
4. reports the answer, or the failure, with ``POST <prefix>complete``, echoing
   the delivery token. The site validates and saves it.

The site's answers decide the queue action as in Stage 1 (see
``consumer.stage1``): 2xx ack, 404 ack and drop, 409 and 429/503 retry,
422 ack, 401/403 a configuration error, retried. A failure of the model call
is reported to the site, which records it in the usage ledger and answers
retry (429/503) or give up (422), the same classification as Stage 1.

Memory stays bounded whatever the file's size: the file is held once, on disk
above ``SPOOL_MAX_SIZE``, and read back in chunks while the request is sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import httpx
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import Storage

from ..conf import SETTING_NAME, get_settings
from ..exceptions import ProviderError, TransientProviderError
from ..models import Stage
from ..providers import load_provider
from ..providers.workers_ai import WorkersAIProvider, image_input, run_fields
from ..storage import get_upload_storage
from .handlers import Decision, Handler
from .site import SiteClient
from .stage1 import CONFIGURATION_RETRY_DELAY, decide

logger = logging.getLogger("django_cf_ingest.consumer")

PROVIDER = "workers_ai"
#: A file larger than this is spooled to disk rather than held in memory.
SPOOL_MAX_SIZE = 2 * 1024 * 1024
READ_CHUNK = 256 * 1024
#: Tries of the final report when the site cannot be reached: the model call
#: it carries has been paid for.
REPORT_ATTEMPTS = 3
#: Fields of the metadata this consumer cannot work without.
META_FIELDS = {
    "storageKey": str,
    "mime": str,
    "typeSlug": str,
    "deliveryToken": str,
    "schema": dict,
}


class FileProblem(Exception):
    """The upload's file could not be read or prepared for the model."""

    def __init__(self, code: str, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient


def s3_object(storage: Storage, name: str) -> tuple[Any, str, str] | None:
    """The boto3 client, bucket and key of a file on a django-storages S3
    storage; None for any other storage."""
    try:
        from storages.backends.s3 import S3Storage
        from storages.utils import clean_name
    except ImportError:
        return None
    if not isinstance(storage, S3Storage):
        return None
    client = storage.connection.meta.client
    return client, storage.bucket_name, storage._normalize_name(clean_name(name))


def _s3_chunks(client: Any, bucket: str, key: str) -> Iterator[bytes]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            raise FileProblem(
                "file_missing", "The upload's file is missing.", transient=False
            ) from exc
        logger.error("storage refused the read code=%s", code or "-")
        raise FileProblem(
            "storage_error", f"The storage refused the read: {code}", transient=True
        ) from exc
    except BotoCoreError as exc:
        raise FileProblem(
            "storage_unavailable",
            f"The storage could not be reached: {type(exc).__name__}",
            transient=True,
        ) from exc
    body = response["Body"]
    try:
        yield from body.iter_chunks(READ_CHUNK)
    except (BotoCoreError, OSError) as exc:
        raise FileProblem(
            "storage_unavailable",
            f"Reading the file failed: {type(exc).__name__}",
            transient=True,
        ) from exc
    finally:
        body.close()


def _storage_chunks(storage: Storage, name: str) -> Iterator[bytes]:
    try:
        stream = storage.open(name, "rb")
    except FileNotFoundError as exc:
        raise FileProblem(
            "file_missing", "The upload's file is missing.", transient=False
        ) from exc
    except OSError as exc:
        raise FileProblem(
            "storage_unavailable", f"Reading the file failed: {exc}", transient=True
        ) from exc
    with stream:
        while chunk := stream.read(READ_CHUNK):
            yield chunk


def file_chunks(storage: Storage, name: str) -> Iterator[bytes]:
    """The stored file's bytes, a chunk at a time."""
    location = s3_object(storage, name)
    if location is not None:
        return _s3_chunks(*location)
    return _storage_chunks(storage, name)


@contextmanager
def spooled_file(
    chunks: Iterator[bytes], *, size: int | None = None, sha256: str | None = None
) -> Iterator[IO[bytes]]:
    """The chunks in one temporary file, checked against the size and hash
    the site recorded for the upload."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_SIZE) as spool:
        digest = hashlib.sha256()
        total = 0
        for chunk in chunks:
            spool.write(chunk)
            digest.update(chunk)
            total += len(chunk)
        if (size and total != size) or (sha256 and digest.hexdigest() != sha256):
            raise FileProblem(
                "file_changed",
                "The stored file is not the one that was uploaded.",
                transient=False,
            )
        spool.seek(0)
        yield spool


class Stage2Handler(Handler):
    """Runs Workers AI from the consumer and reports back to the site."""

    stage = Stage.STAGE2

    def __init__(self, concurrency: int = 4) -> None:
        config = get_settings()
        self.site = SiteClient(
            stage="Stage 2",
            purpose="asks the site for metadata and reports back there",
            concurrency=concurrency,
        )
        provider = load_provider(PROVIDER, config.provider_options(PROVIDER))
        if not isinstance(provider, WorkersAIProvider):
            raise ImproperlyConfigured(
                f'Stage 2 calls Workers AI: {SETTING_NAME}["PROVIDERS"]'
                f'["{PROVIDER}"] must be the Workers AI provider.'
            )
        if not provider.account_id or not provider.api_token:
            raise ImproperlyConfigured(
                f'Stage 2 calls Workers AI: set {SETTING_NAME}["PROVIDERS"]'
                f'["{PROVIDER}"] ACCOUNT_ID and API_TOKEN (CF_ACCOUNT_ID and '
                "CF_API_TOKEN in the example settings)."
            )
        self.provider = provider
        self.storage = get_upload_storage()

    # The site's endpoints ---------------------------------------------------

    def fetch_meta(self, upload_id: int) -> dict[str, Any] | Decision:
        """The upload's metadata, with this delivery's claim; or what to do
        with the message when there is nothing to run."""
        url = self.site.url(f"meta/{upload_id}")
        if self.site.sign:
            # A fresh nonce makes every signed GET, and so its signature, unique.
            url += f"?nonce={secrets.token_hex(16)}"
        try:
            response = self.site.http.get(
                url, headers=self.site.headers("GET", url, b"")
            )
        except httpx.HTTPError as exc:
            return self._unreachable(upload_id, exc)
        if response.status_code != 200:
            return decide(upload_id, response)
        try:
            meta = response.json()
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            logger.error("metadata is not a JSON object upload=%s", upload_id)
            return Decision("retry", "bad_meta", CONFIGURATION_RETRY_DELAY, "bad meta")
        if meta.get("done"):
            return Decision("ack", "already_done")
        missing = [
            k for k, kind in META_FIELDS.items() if not isinstance(meta.get(k), kind)
        ]
        if missing:
            logger.error(
                "metadata lacks fields upload=%s fields=%s",
                upload_id,
                ",".join(missing),
            )
            return Decision("retry", "bad_meta", CONFIGURATION_RETRY_DELAY, "bad meta")
        return meta

    def report(self, upload_id: int, body: dict[str, Any]) -> Decision:
        """POST the run's result; the answer decides the message's fate."""
        url = self.site.url("complete")
        for attempt in range(1, REPORT_ATTEMPTS + 1):
            # A fresh nonce makes every request, and so every signature, unique.
            content = json.dumps(
                {**body, "nonce": secrets.token_hex(16)}, ensure_ascii=False
            ).encode()
            try:
                response = self.site.http.post(
                    url,
                    content=content,
                    headers=self.site.headers("POST", url, content),
                )
            except httpx.HTTPError as exc:
                if attempt == REPORT_ATTEMPTS:
                    return self._unreachable(upload_id, exc)
                time.sleep(0.5 * attempt)
                continue
            return decide(upload_id, response)
        raise AssertionError("unreachable")

    def _unreachable(self, upload_id: int, exc: httpx.HTTPError) -> Decision:
        logger.warning(
            "site unreachable upload=%s error=%s", upload_id, type(exc).__name__
        )
        outcome = "timeout" if isinstance(exc, httpx.TimeoutException) else "network"
        return Decision("retry", outcome, reason=type(exc).__name__)

    # The run ------------------------------------------------------------------

    def run(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Read the file, call the model, and return the ``complete`` body."""
        model = str(meta.get("model") or get_settings().WORKERS_AI_MODEL)
        body: dict[str, Any] = {
            "uploadId": meta.get("uploadId"),
            "typeId": meta.get("typeId"),
            "typeSlug": meta["typeSlug"],
            "deliveryToken": meta["deliveryToken"],
            "provider": PROVIDER,
            "model": model,
        }
        json_mode = meta.get("jsonMode")
        fields = run_fields(
            instructions=str(meta.get("instructions") or ""),
            schema=meta["schema"],
            max_tokens=int(meta.get("maxTokens") or get_settings().MAX_TOKENS),
            json_mode=(
                json_mode
                if isinstance(json_mode, bool)
                else self.provider.json_mode(model)
            ),
        )
        chunks = file_chunks(self.storage, meta["storageKey"])
        size, sha256 = meta.get("size"), meta.get("sha256")
        started = time.monotonic()
        try:
            with spooled_file(
                chunks,
                size=size if isinstance(size, int) else None,
                sha256=sha256 if isinstance(sha256, str) else None,
            ) as spool:
                image, image_size = self._image(spool, meta["mime"])
                started = time.monotonic()
                output = self.provider.run(model, fields, image, image_size)
        except FileProblem as exc:
            return {**body, "status": "error", "error": _file_error(exc)}
        except ProviderError as exc:
            return {
                **body,
                "status": "error",
                "usage": {"tokensIn": exc.tokens_in, "tokensOut": exc.tokens_out},
                "latencyMs": _since(started),
                "error": _model_error(exc),
            }
        body.update(
            status="ok",
            usage={
                "tokensIn": output.usage.tokens_in,
                "tokensOut": output.usage.tokens_out,
            },
            latencyMs=_since(started),
        )
        if isinstance(output.data, dict):
            body["resultsJson"] = output.data
        else:
            body["rawText"] = output.text
        return body

    def _image(self, spool: IO[bytes], mime: str) -> tuple[IO[bytes], int]:
        try:
            return image_input(spool, mime, pdf_pages=self.provider.pdf_pages)
        except ProviderError as exc:
            raise FileProblem("unreadable_file", str(exc), transient=False) from exc

    def handle(self, upload_id: int) -> Decision:
        meta = self.fetch_meta(upload_id)
        if isinstance(meta, Decision):
            return meta
        body = self.run(meta)
        logger.info(
            "edge run upload=%s status=%s code=%s",
            upload_id,
            body["status"],
            body.get("error", {}).get("code", "-"),
        )
        return self.report(upload_id, body)

    def close(self) -> None:
        self.site.close()
        self.provider.close()


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _file_error(exc: FileProblem) -> dict[str, Any]:
    return {
        "code": "transient" if exc.transient else "permanent",
        "message": f"{exc.code}: {exc}",
        "transient": exc.transient,
        "source": "file",
    }


def _model_error(exc: ProviderError) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": exc.code,
        "message": str(exc),
        "transient": isinstance(exc, TransientProviderError),
        "source": "model",
    }
    if isinstance(exc, TransientProviderError) and exc.retry_after is not None:
        error["retryAfter"] = exc.retry_after
    return error
