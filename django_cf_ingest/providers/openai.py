"""OpenAI-compatible chat completions: OpenAI itself, or a local server such
as Ollama, vLLM or llama.cpp reached through ``BASE_URL``.

Options under ``CF_INGEST["PROVIDERS"]["openai"]``:

``API_KEY``            sent as a Bearer token; local servers may need none
``MODEL``              default ``gpt-4o-mini``
``BASE_URL``           default ``https://api.openai.com/v1``
``TIMEOUT``            seconds per request, default 120
``MAX_OUTPUT_TOKENS``  default 4096
``TEMPERATURE``        default 0; None leaves it out, for models that only
                       take their default
``RESPONSE_FORMAT``    ``json_schema`` (default), ``json_object``, or ``none``
                       for servers without structured output
``PDF_AS_IMAGES``      how a PDF is sent, see below
``PDF_MAX_PAGES``      pages rendered when PDFs go as images, default 5

Images go as ``image_url`` content parts holding a ``data:`` URL (GIF and
TIFF are converted to PNG first). PDFs go, by default, as a ``file`` content
part with the base64 file when ``BASE_URL`` is OpenAI's own API, and as
rendered PNG pages otherwise, because local servers rarely read PDF parts;
``PDF_AS_IMAGES`` set to True or False overrides that choice. Rendering needs
pypdfium2 (the ``ocr`` extra).

The length limit is sent as ``max_completion_tokens`` to OpenAI, which
rejects ``max_tokens`` for its newer models, and as ``max_tokens`` to other
servers, which all read that name.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured

from ..conf import SETTING_NAME
from ..exceptions import InvalidOutputError, PermanentProviderError
from .base import ExtractionRequest, ProviderResult, Usage
from .documents import PDF, data_url, image_for, pdf_pages_as_png
from .http import HttpProvider, result_from_text, with_usage
from .prompts import extraction_prompt, is_reask, previous_output, reask_prompt
from .schemas import UnsupportedSchema, inline_refs

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MAX_OUTPUT_TOKENS = 4096
DEFAULT_PDF_MAX_PAGES = 5
#: Image types sent as they are; others are converted to PNG first.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
RESPONSE_FORMATS = ("json_schema", "json_object", "none")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class OpenAIProvider(HttpProvider):
    default_base_url = DEFAULT_BASE_URL
    option_keys = HttpProvider.option_keys | {
        "API_KEY",
        "MODEL",
        "MAX_OUTPUT_TOKENS",
        "TEMPERATURE",
        "RESPONSE_FORMAT",
        "PDF_AS_IMAGES",
        "PDF_MAX_PAGES",
    }

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(name, options)
        self.max_output_tokens = int(
            self.number_option("MAX_OUTPUT_TOKENS", integer=True)
            or DEFAULT_MAX_OUTPUT_TOKENS
        )
        self.pdf_max_pages = int(
            self.number_option("PDF_MAX_PAGES", integer=True) or DEFAULT_PDF_MAX_PAGES
        )
        self.response_format = str(self.options.get("RESPONSE_FORMAT") or "json_schema")
        if self.response_format not in RESPONSE_FORMATS:
            raise ImproperlyConfigured(
                f"Provider {name!r} option RESPONSE_FORMAT must be one of "
                f"{', '.join(RESPONSE_FORMATS)}, not {self.response_format!r}."
            )
        self.temperature: float | None = 0.0
        if "TEMPERATURE" in self.options:
            value = self.options["TEMPERATURE"]
            try:
                self.temperature = None if value is None else float(value)
            except (TypeError, ValueError):
                raise ImproperlyConfigured(
                    f"Provider {name!r} option TEMPERATURE must be a number or "
                    f"None, not {value!r}."
                ) from None

    @property
    def model(self) -> str:
        return str(self.options.get("MODEL") or DEFAULT_MODEL)

    @property
    def api_key(self) -> str:
        return str(self.options.get("API_KEY") or "")

    @property
    def is_openai(self) -> bool:
        """Whether requests go to OpenAI's own API rather than a compatible server."""
        return self.base_url == DEFAULT_BASE_URL

    @property
    def pdf_as_images(self) -> bool:
        value = self.options.get("PDF_AS_IMAGES")
        return not self.is_openai if value is None else bool(value)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def check(self) -> list[CheckMessage]:
        if self.api_key or not self.is_openai:
            return []
        return [
            Error(
                f"The {self.name!r} provider has neither an API key nor a base URL "
                "of a local server.",
                hint=f'Set {SETTING_NAME}["PROVIDERS"][{self.name!r}]["API_KEY"] '
                "(OPENAI_API_KEY in the example settings), or BASE_URL "
                "(OPENAI_BASE_URL) for an OpenAI-compatible server that needs no "
                "key.",
                id="cf_ingest.E031",
            )
        ]

    def extract(self, request: ExtractionRequest) -> ProviderResult:
        answer = self.http.post_json("/chat/completions", self.build_payload(request))
        return self.read_answer(answer)

    def build_payload(self, request: ExtractionRequest) -> dict[str, Any]:
        content: list[dict[str, Any]] = [
            {"type": "text", "text": extraction_prompt(request)},
            *self.document_parts(request),
        ]
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        if is_reask(request):
            if request.previous_output:
                messages.append(
                    {"role": "assistant", "content": previous_output(request)}
                )
                messages.append({"role": "user", "content": reask_prompt(request)})
            else:
                content.append({"type": "text", "text": reask_prompt(request)})

        payload: dict[str, Any] = {"model": self.model, "messages": messages}
        limit = "max_completion_tokens" if self.is_openai else "max_tokens"
        payload[limit] = self.max_output_tokens
        if self.temperature is not None:
            payload["temperature"] = self.temperature
        if self.response_format == "json_schema":
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema_name(request.spec.slug),
                    "schema": plain_schema(request.json_schema),
                    "strict": False,
                },
            }
        elif self.response_format == "json_object":
            payload["response_format"] = {"type": "json_object"}
        return payload

    def document_parts(self, request: ExtractionRequest) -> list[dict[str, Any]]:
        if request.content_type != PDF:
            image, image_type = image_for(
                request.content, request.content_type, IMAGE_TYPES
            )
            return [image_part(image, image_type)]
        if self.pdf_as_images:
            pages = pdf_pages_as_png(request.content, self.pdf_max_pages)
            return [image_part(page, "image/png") for page in pages]
        return [
            {
                "type": "file",
                "file": {
                    "filename": request.filename or "document.pdf",
                    "file_data": data_url(request.content, PDF),
                },
            }
        ]

    def read_answer(self, answer: Any) -> ProviderResult:
        if not isinstance(answer, dict):
            raise InvalidOutputError(
                "The server answered with JSON that is not an object"
            )
        usage = read_usage(answer.get("usage"))
        choices = answer.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            raise with_usage(
                InvalidOutputError("The server answered without a choice"),
                usage.tokens_in,
                usage.tokens_out,
            )
        choice = choices[0]
        message = choice.get("message") or {}
        finish = str(choice.get("finish_reason") or "")
        refusal = message.get("refusal") if isinstance(message, dict) else None
        if refusal:
            raise with_usage(
                PermanentProviderError(f"The model refused: {str(refusal)[:200]}"),
                usage.tokens_in,
                usage.tokens_out,
            )
        if finish == "content_filter":
            raise with_usage(
                PermanentProviderError("The answer was withheld by a content filter"),
                usage.tokens_in,
                usage.tokens_out,
            )
        text = message_text(message)
        return result_from_text(
            text,
            model=self.model,
            usage=usage,
            raw_response=answer,
            unreadable=self._unreadable(text, finish),
        )

    def _unreadable(self, text: str, finish: str) -> str:
        if finish == "length":
            return (
                f"The answer was cut off at {self.max_output_tokens} tokens; "
                "raise MAX_OUTPUT_TOKENS"
            )
        if not text.strip():
            return f"The model answered with no text (finish_reason {finish or 'none'})"
        return "The model's answer is not JSON"


def image_part(content: bytes, content_type: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": data_url(content, content_type)}}


def schema_name(slug: str) -> str:
    """A ``json_schema`` name: letters, digits, ``_`` and ``-``, at most 64."""
    return (_NAME_UNSAFE.sub("_", slug).strip("_") or "document")[:64]


def plain_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema without references, which every server understands."""
    try:
        return inline_refs(schema)
    except UnsupportedSchema:
        return schema


def message_text(message: Any) -> str:
    """The message's text; some servers send a list of content parts."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in (None, "text")
        )
    return ""


def read_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()

    def count(key: str) -> int:
        value = usage.get(key)
        return int(value) if isinstance(value, int | float) else 0

    return Usage(
        tokens_in=count("prompt_tokens"), tokens_out=count("completion_tokens")
    )
