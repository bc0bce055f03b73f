from __future__ import annotations

import random

from ..conf import get_settings


def retry_delay(attempts: int, hint: float | None = None) -> float:
    """Exponential backoff with jitter, never shorter than the server's hint."""
    config = get_settings()
    ceiling = min(
        config.RETRY_MAX_DELAY, config.RETRY_BASE_DELAY * 2 ** max(0, attempts - 1)
    )
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    if hint is not None:
        delay = max(delay, hint)
    return round(min(delay, config.RETRY_MAX_DELAY), 3)
