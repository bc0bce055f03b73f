"""Stage 1 delivery: POST each upload to the site's internal ingest endpoint.

This is the request the Cloudflare Worker makes, made from a management
command instead: ``POST <INTERNAL_INGEST_BASE_URL>/<INTERNAL_URL_PREFIX><id>``
with ``X-Internal-Secret`` (signed when ``REQUIRE_SIGNATURE`` is on). The site
runs the pipeline and its status code says what to do with the message:

========================  ====================================================
Response                  Decision
========================  ====================================================
2xx                       ack
404 ``unknown_upload``    ack and drop the message
404, anything else        retry: the URL reaches something that is not the
                          endpoint (a wrong base URL or prefix), and dropping
                          every message would lose them all
409                       retry after ``Retry-After``, if given
422                       ack; the site marked the upload ``failed``
429, 503                  retry after ``Retry-After``
401, 403                  a configuration error: logged at ERROR, retried later
other 5xx, network error  retry
anything else             retry, logged at ERROR
========================  ====================================================

One ``httpx.Client`` is shared by the worker's threads; its connection pool
holds as many connections as there are threads.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..models import Stage
from ..retry_after import parse_retry_after
from .handlers import Decision, Handler
from .site import SiteClient

logger = logging.getLogger("django_cf_ingest.consumer")

#: Delay before trying again after an answer that points to a configuration error.
CONFIGURATION_RETRY_DELAY = 60.0


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the base URL of the internal endpoint, or None."""
    if not url.strip():
        return "INTERNAL_INGEST_BASE_URL is empty."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "INTERNAL_INGEST_BASE_URL is not a valid URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "INTERNAL_INGEST_BASE_URL is not an absolute http(s) URL."
    if parts.query or parts.fragment:
        return "INTERNAL_INGEST_BASE_URL has a query string or a fragment."
    if parts.username or parts.password:
        return "INTERNAL_INGEST_BASE_URL carries credentials."
    return None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error_code(data: dict[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return error["code"][:100]
    return ""


def decide(upload_id: int, response: httpx.Response) -> Decision:
    """The queue action for the endpoint's answer about one upload."""
    status = response.status_code
    data = _json(response)
    code = _error_code(data)
    delay = parse_retry_after(response.headers.get("Retry-After"))
    reason = f"HTTP {status} {code}".strip()

    if 200 <= status < 300:
        return _done(upload_id, data)
    if status == 404 and code == "unknown_upload":
        logger.warning("unknown upload, message dropped upload=%s", upload_id)
        return Decision("ack", "not_found", reason=reason)
    if status == 404:
        logger.error(
            "the ingest URL is not the internal endpoint (404 without its error "
            "code); check INTERNAL_INGEST_BASE_URL and INTERNAL_URL_PREFIX "
            "upload=%s",
            upload_id,
        )
        return Decision("retry", "misrouted", CONFIGURATION_RETRY_DELAY, reason)
    if status == 409:
        return Decision("retry", "busy", delay, reason)
    if status == 422:
        return Decision("ack", "failed", reason=reason)
    if status in (429, 503):
        if code == "not_configured":
            logger.error(
                "the site has no internal secret configured and refuses every "
                "call; set INTERNAL_SECRETS on the site upload=%s",
                upload_id,
            )
        outcome = "rate_limited" if status == 429 else (code or "unavailable")
        return Decision("retry", outcome, delay, reason)
    if status in (401, 403):
        logger.error(
            "the internal endpoint refused the consumer's credentials status=%s "
            "code=%s upload=%s; the consumer's first INTERNAL_SECRETS entry must "
            "be one of the site's (and REQUIRE_SIGNATURE must match)",
            status,
            code or "-",
            upload_id,
        )
        return Decision("retry", "unauthorized", CONFIGURATION_RETRY_DELAY, reason)
    if status >= 500:
        return Decision("retry", "server_error", delay, reason)
    logger.error(
        "unexpected answer from the internal endpoint status=%s code=%s upload=%s",
        status,
        code or "-",
        upload_id,
    )
    return Decision("retry", "unexpected_status", delay, reason)


def _done(upload_id: int, data: dict[str, Any]) -> Decision:
    outcome = data.get("status")
    if outcome not in ("done", "already_done"):
        outcome = "done"
    logger.debug(
        "ingested upload=%s extraction=%s provider=%s model=%s confidence=%s",
        upload_id,
        data.get("extractionId"),
        data.get("provider"),
        data.get("model"),
        data.get("confidence"),
    )
    return Decision("ack", outcome)


class Stage1Handler(Handler):
    """Delivers uploads to the internal ingest endpoint over HTTP."""

    stage = Stage.STAGE1

    def __init__(self, concurrency: int = 4) -> None:
        self.site = SiteClient(
            stage="Stage 1", purpose="posts uploads to it", concurrency=concurrency
        )

    def url(self, upload_id: int) -> str:
        return self.site.url(str(upload_id))

    def request_headers(self, url: str, body: bytes) -> dict[str, str]:
        return self.site.headers("POST", url, body)

    def handle(self, upload_id: int) -> Decision:
        url = self.url(upload_id)
        # The nonce makes every request, and so every signature, unique.
        body = json.dumps({"uploadId": upload_id, "nonce": secrets.token_hex(16)})
        content = body.encode()
        try:
            response = self.site.http.post(
                url, content=content, headers=self.request_headers(url, content)
            )
        except httpx.TimeoutException as exc:
            return Decision("retry", "timeout", reason=type(exc).__name__)
        except httpx.HTTPError as exc:
            logger.warning(
                "internal endpoint unreachable upload=%s error=%s",
                upload_id,
                type(exc).__name__,
            )
            return Decision("retry", "network_error", reason=type(exc).__name__)
        return decide(upload_id, response)

    def close(self) -> None:
        self.site.close()
