"""The optional failure webhook (Slack-compatible JSON)."""

from __future__ import annotations

import logging

import httpx

from .conf import get_settings

logger = logging.getLogger("django_cf_ingest.notify")


def notify_dead(upload_id: int, reason: str, attempts: int | None) -> None:
    url = get_settings().FAILURE_WEBHOOK_URL
    if not url:
        return
    text = (
        f"Upload {upload_id} could not be processed after {attempts or '?'} "
        f"attempt(s): {reason[:300]}"
    )
    try:
        httpx.post(url, json={"text": text}, timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("failure webhook failed error=%s", type(exc).__name__)
