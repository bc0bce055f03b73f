"""Google Gemini through the REST method ``generateContent``.

Options under ``CF_INGEST["PROVIDERS"]["google"]``:

``API_KEY``            sent as ``x-goog-api-key`` (required)
``MODEL``              default ``gemini-2.5-flash``
``BASE_URL``           default ``https://generativelanguage.googleapis.com``
``TIMEOUT``            seconds per request, default 120
``MAX_OUTPUT_TOKENS``  default 8192; on thinking models it also bounds the
                       thinking, so keep it well above the answer's size
``THINKING_BUDGET``    thinking tokens (0 turns thinking off where the model
                       allows it); unset leaves the model's default

The document travels inline, base64-encoded, with the prompt; the answer is
constrained by ``responseMimeType: application/json`` and a ``responseSchema``
derived from the document type's model.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured

from ..conf import SETTING_NAME
from ..exceptions import (
    InvalidOutputError,
    PermanentProviderError,
    ProviderError,
    RateLimited,
)
from .base import ExtractionRequest, ProviderResult, Usage
from .documents import PDF, b64, image_for
from .http import HttpProvider, error_for_response, result_from_text, with_usage
from .prompts import extraction_prompt, is_reask, previous_output, reask_prompt
from .schemas import UnsupportedSchema, gemini_schema, inline_refs

DEFAULT_MODEL = "gemini-2.5-flash"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_MAX_OUTPUT_TOKENS = 8192
#: Gemini takes inline data only while the whole request stays under 20 MB.
MAX_INLINE_REQUEST_BYTES = 20_000_000
#: Image types Gemini reads inline; others are converted to PNG first.
INLINE_IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}
)
#: Finish reasons that mean the answer was withheld and will be again.
BLOCKED_FINISH_REASONS = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"}
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class GoogleProvider(HttpProvider):
    default_base_url = DEFAULT_BASE_URL
    option_keys = HttpProvider.option_keys | {
        "API_KEY",
        "MODEL",
        "MAX_OUTPUT_TOKENS",
        "THINKING_BUDGET",
    }

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(name, options)
        self.max_output_tokens = int(
            self.number_option("MAX_OUTPUT_TOKENS", integer=True)
            or DEFAULT_MAX_OUTPUT_TOKENS
        )
        budget = self.options.get("THINKING_BUDGET")
        try:
            self.thinking_budget = None if budget in (None, "") else int(budget)
        except (TypeError, ValueError):
            raise ImproperlyConfigured(
                f"Provider {name!r} option THINKING_BUDGET must be an integer, "
                f"not {budget!r}."
            ) from None

    @property
    def model(self) -> str:
        model = str(self.options.get("MODEL") or DEFAULT_MODEL)
        return model.removeprefix("models/")

    @property
    def api_key(self) -> str:
        return str(self.options.get("API_KEY") or "")

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.api_key} if self.api_key else {}

    def check(self) -> list[CheckMessage]:
        if self.api_key:
            return []
        return [
            Error(
                f"The {self.name!r} provider (Google Gemini) has no API key.",
                hint=f'Set {SETTING_NAME}["PROVIDERS"][{self.name!r}]["API_KEY"]; '
                "the example settings read it from GOOGLE_API_KEY or "
                "GEMINI_API_KEY.",
                id="cf_ingest.E030",
            )
        ]

    def extract(self, request: ExtractionRequest) -> ProviderResult:
        if not self.api_key:
            raise PermanentProviderError(f"The {self.name!r} provider has no API key.")
        payload = self.build_payload(request)
        size = len(json.dumps(payload, separators=(",", ":")))
        if size >= MAX_INLINE_REQUEST_BYTES:
            raise PermanentProviderError(
                f"The document is too large for Gemini: the request would be "
                f"{size / 1e6:.1f} MB, and a request with inline data must stay "
                f"under {MAX_INLINE_REQUEST_BYTES / 1e6:.0f} MB. Upload a smaller "
                "file, such as a lower-resolution scan."
            )
        answer = self.http.post_json(
            f"/v1beta/models/{self.model}:generateContent",
            payload,
            classify=self._classify,
        )
        return self.read_answer(answer)

    def build_payload(self, request: ExtractionRequest) -> dict[str, Any]:
        if request.content_type == PDF:
            content, content_type = request.content, PDF
        else:
            content, content_type = image_for(
                request.content, request.content_type, INLINE_IMAGE_TYPES
            )
        parts: list[dict[str, Any]] = [
            {"inlineData": {"mimeType": content_type, "data": b64(content)}},
            {"text": extraction_prompt(request)},
        ]
        contents: list[dict[str, Any]] = [{"role": "user", "parts": parts}]
        if is_reask(request):
            if request.previous_output:
                contents.append(
                    {"role": "model", "parts": [{"text": previous_output(request)}]}
                )
                contents.append(
                    {"role": "user", "parts": [{"text": reask_prompt(request)}]}
                )
            else:
                parts.append({"text": reask_prompt(request)})
        return {
            "contents": contents,
            "generationConfig": self.generation_config(request),
        }

    def generation_config(self, request: ExtractionRequest) -> dict[str, Any]:
        config: dict[str, Any] = {"responseMimeType": "application/json"}
        try:
            config["responseSchema"] = gemini_schema(request.json_schema)
        except UnsupportedSchema:
            # Beyond the OpenAPI subset: Gemini also takes plain JSON Schema.
            try:
                config["responseJsonSchema"] = inline_refs(request.json_schema)
            except UnsupportedSchema:
                config["responseJsonSchema"] = request.json_schema
        config["temperature"] = 0
        config["maxOutputTokens"] = self.max_output_tokens
        if self.thinking_budget is not None:
            config["thinkingConfig"] = {"thinkingBudget": self.thinking_budget}
        return config

    def read_answer(self, answer: Any) -> ProviderResult:
        if not isinstance(answer, dict):
            raise InvalidOutputError("Gemini answered with JSON that is not an object")
        usage = read_usage(answer.get("usageMetadata"))
        candidates = answer.get("candidates") or []
        if not candidates:
            feedback = answer.get("promptFeedback") or {}
            reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
            if reason:
                error: ProviderError = PermanentProviderError(
                    f"Gemini blocked the request: blockReason {reason}"
                )
            else:
                error = InvalidOutputError("Gemini answered without a candidate")
            raise with_usage(error, usage.tokens_in, usage.tokens_out)

        candidate = candidates[0] if isinstance(candidates[0], dict) else {}
        finish = str(candidate.get("finishReason") or "")
        if finish in BLOCKED_FINISH_REASONS:
            raise with_usage(
                PermanentProviderError(
                    f"Gemini withheld the answer: finishReason {finish}"
                ),
                usage.tokens_in,
                usage.tokens_out,
            )
        text = candidate_text(candidate)
        return result_from_text(
            text,
            model=self.model,
            usage=usage,
            raw_response=answer,
            unreadable=self._unreadable(text, finish),
        )

    def _unreadable(self, text: str, finish: str) -> str:
        if finish == "MAX_TOKENS":
            return (
                "Gemini's answer was cut off at maxOutputTokens="
                f"{self.max_output_tokens}; raise MAX_OUTPUT_TOKENS"
            )
        if not text.strip():
            return f"Gemini answered with no text (finishReason {finish or 'none'})"
        suffix = f" (finishReason {finish})" if finish and finish != "STOP" else ""
        return f"Gemini's answer is not JSON{suffix}"

    def _classify(self, response: httpx.Response) -> ProviderError | None:
        error = error_for_response(response, self.name)
        if isinstance(error, RateLimited) and error.retry_after is None:
            error.retry_after = google_retry_delay(response)
        return error


def candidate_text(candidate: dict[str, Any]) -> str:
    """The answer's text: every non-thought text part, joined."""
    content = candidate.get("content") or {}
    parts = content.get("parts") if isinstance(content, dict) else None
    texts = [
        str(part.get("text", ""))
        for part in parts or []
        if isinstance(part, dict) and not part.get("thought")
    ]
    return "".join(texts)


def read_usage(metadata: Any) -> Usage:
    """Tokens from ``usageMetadata``; thinking counts as output, as billed."""
    if not isinstance(metadata, dict):
        return Usage()

    def count(key: str) -> int:
        value = metadata.get(key)
        return int(value) if isinstance(value, int | float) else 0

    return Usage(
        tokens_in=count("promptTokenCount"),
        tokens_out=count("candidatesTokenCount") + count("thoughtsTokenCount"),
    )


def google_retry_delay(response: httpx.Response) -> float | None:
    """The ``retryDelay`` of a ``google.rpc.RetryInfo`` error detail, in seconds."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details or []:
        if not isinstance(detail, dict):
            continue
        if not str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            continue
        match = _DURATION.match(str(detail.get("retryDelay", "")))
        if match:
            return float(match.group(1))
    return None
