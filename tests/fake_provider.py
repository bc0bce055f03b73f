"""A provider for tests about queueing and delivery rather than extraction.

It answers instantly (or after ``DELAY`` seconds) with values derived from the
document type's schema, counts its calls per upload content, and can be told
to fail.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from django_cf_ingest.exceptions import (
    PermanentProviderError,
    RateLimited,
    TransientProviderError,
)
from django_cf_ingest.providers.base import (
    ExtractionRequest,
    Provider,
    ProviderResult,
    Usage,
)

calls: Counter[str] = Counter()
_lock = threading.Lock()


def sample_value(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "$ref" in schema:
        return sample_value(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "anyOf" in schema:
        return sample_value(schema["anyOf"][0], defs)
    kind = schema.get("type")
    if kind in ("number", "integer"):
        return schema.get("minimum", 0) + 1
    if kind == "array":
        return [sample_value(schema.get("items", {"type": "string"}), defs)]
    if kind == "object":
        props = schema.get("properties", {})
        return {name: sample_value(sub, defs) for name, sub in props.items()}
    if "pattern" in schema:
        return _matching(schema["pattern"])
    return "x"


def _matching(pattern: str) -> str:
    known = {
        r"^[EI][SN][TF][JP]-[AT]$": "INTJ-A",
        r"^[EI][SN][TF][JP]$": "INTJ",
        r"^[RIASEC]{2,6}$": "RIA",
    }
    return known.get(pattern, "x")


def valid_data(request: ExtractionRequest) -> dict[str, Any]:
    schema = request.json_schema
    data = sample_value(schema, schema.get("$defs", {}))
    assert isinstance(data, dict)
    return data


class FakeProvider(Provider):
    """Options: ``DELAY`` (s), ``FAIL`` ("transient" | "rate_limited" |
    "permanent" | ""), ``CONFIDENCE`` (float), ``MODEL``, ``CALL_LOG`` (a file
    that gets one line per call, for counting calls across processes)."""

    def extract(self, request: ExtractionRequest) -> ProviderResult:
        with _lock:
            calls[request.filename] += 1
            log = self.options.get("CALL_LOG")
            if log:
                with open(log, "a") as handle:
                    handle.write(request.filename + "\n")
        delay = float(self.options.get("DELAY", 0))
        if delay:
            time.sleep(delay)
        failure = self.options.get("FAIL", "")
        if failure == "transient":
            raise TransientProviderError("fake outage", status_code=503, retry_after=1)
        if failure == "rate_limited":
            raise RateLimited("fake rate limit", status_code=429, retry_after=7)
        if failure == "permanent":
            raise PermanentProviderError("fake refusal", status_code=400)
        return ProviderResult(
            data=valid_data(request),
            model=self.options.get("MODEL", "fake-1"),
            usage=Usage(tokens_in=100, tokens_out=20),
            raw_text="{}",
            confidence=self.options.get("CONFIDENCE"),
        )
