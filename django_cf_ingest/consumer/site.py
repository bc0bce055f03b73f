"""The consumers' HTTP client for the site's internal endpoints."""

from __future__ import annotations

import httpx
from django.core.exceptions import ImproperlyConfigured

from .. import __version__
from ..conf import SETTING_NAME, get_settings
from ..internal.auth import SECRET_HEADER, configured_secrets, signed_headers


class SiteClient:
    """Authenticated calls to ``INTERNAL_INGEST_BASE_URL``, as the Worker makes
    them: the first configured secret, and a signature when the site requires
    one. ``stage`` and ``purpose`` only word the configuration errors."""

    def __init__(self, *, stage: str, purpose: str, concurrency: int = 4) -> None:
        from .stage1 import base_url_problem

        config = get_settings()
        accepted = configured_secrets()
        if not accepted:
            raise ImproperlyConfigured(
                f'{stage} needs {SETTING_NAME}["INTERNAL_SECRETS"]: the consumer '
                "sends the first one to the internal endpoints."
            )
        problem = base_url_problem(config.INTERNAL_INGEST_BASE_URL)
        if problem:
            raise ImproperlyConfigured(
                f"{problem} {stage} {purpose}: set "
                f'{SETTING_NAME}["INTERNAL_INGEST_BASE_URL"] to the site\'s origin.'
            )
        self.secret = accepted[0]
        self.sign = config.REQUIRE_SIGNATURE
        self.base_url = config.INTERNAL_INGEST_BASE_URL.rstrip("/") + "/"
        self.prefix = config.INTERNAL_URL_PREFIX.lstrip("/")
        size = max(1, concurrency)
        self.http = httpx.Client(
            timeout=httpx.Timeout(config.HTTP_TIMEOUT),
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            headers={"User-Agent": f"django-cf-ingest/{__version__} {stage.lower()}"},
            follow_redirects=False,
        )

    def url(self, endpoint: str) -> str:
        """The URL of an endpoint under the prefix, e.g. ``"42"`` or ``"complete"``."""
        return f"{self.base_url}{self.prefix}{endpoint}"

    def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"} if body else {}
        if self.sign:
            parsed = httpx.URL(url)
            path = parsed.path
            if parsed.query:
                path += "?" + parsed.query.decode()
            headers.update(signed_headers(self.secret, method, path, body))
        else:
            headers[SECRET_HEADER] = self.secret
        return headers

    def close(self) -> None:
        self.http.close()
