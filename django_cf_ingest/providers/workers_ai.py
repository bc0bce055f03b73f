"""Cloudflare Workers AI through the REST method ``ai/run``.

``POST {BASE_URL}/accounts/{ACCOUNT_ID}/ai/run/{MODEL}`` with a Bearer token.
Options under ``CF_INGEST["PROVIDERS"]["workers_ai"]``:

``ACCOUNT_ID``   the Cloudflare account id (required)
``API_TOKEN``    an API token with Workers AI read/write (required)
``MODEL``        default: the ``WORKERS_AI_MODEL`` setting,
                 ``@cf/meta/llama-3.2-11b-vision-instruct``
``BASE_URL``     default ``https://api.cloudflare.com/client/v4``
``TIMEOUT``      seconds per request, default 120
``JSON_MODE``    ``"auto"`` (the default: on for the models known to support
                 it), true or false
``PDF_PAGES``    how many pages of a PDF the model sees, default 1

The request is the model's *Messages* input: a system message with the
document type's instructions and fields, a user message, the image as a
base64 string in ``image``, ``max_tokens`` from the ``MAX_TOKENS`` setting
(the model's own default, 256, cuts extractions short), and in JSON mode a
``response_format`` holding the document type's JSON schema. The image is
sent as base64, the form the official Python SDK documents, rather than as
the JSON array of byte values the Worker binding takes: the array costs about
3.6 bytes per image byte, base64 1.33.

The vision model reads images only. PNG and JPEG go as they are, other images
are converted to PNG, and a PDF is rendered with pypdfium2 (the ``ocr``
extra): its first ``PDF_PAGES`` pages, stacked into one image.

The model answers in ``result.response``: a string, or in JSON mode possibly
an object already parsed. A string is searched for its JSON object (bare, in
a code fence or with prose around it). ``result.usage`` is optional.

Cloudflare's error codes decide the error class: 5016 (Meta's licence not yet
accepted) is ``LicenceNotAccepted``; 3036 (the day's free allocation used up),
3040 (out of capacity) and any 429 are ``RateLimited``; 3007 (timeout) and 5xx
are transient; 5007, 3042, 5004, 3003 and 3006 are permanent.

The consumer of edge extraction calls the same ``run_fields`` and ``run`` as
``extract`` does, so the model gets the same request from either side.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import httpx
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from ..conf import SETTING_NAME, get_settings
from ..exceptions import (
    InvalidOutputError,
    LicenceNotAccepted,
    PermanentProviderError,
    ProviderError,
    RateLimited,
    TransientProviderError,
)
from ..validation import parse_json_text
from .base import ExtractionRequest, ProviderResult, Usage
from .documents import PDF, image_for, pdf_pages_as_png
from .http import (
    HttpProvider,
    decode_json,
    error_detail,
    error_for_exception,
    error_for_response,
    retry_after,
    with_usage,
)
from .prompts import ANSWER_RULES, field_lines, previous_output, reask_prompt
from .schemas import UnsupportedSchema, inline_refs

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
DEFAULT_MODEL = "@cf/meta/llama-3.2-11b-vision-instruct"
#: Models the JSON Mode documentation lists, of those that read images.
JSON_MODE_MODELS = frozenset({"@cf/meta/llama-3.2-11b-vision-instruct"})
#: Image types sent as they are; anything else is converted to PNG.
MODEL_IMAGE_TYPES = frozenset({"image/png", "image/jpeg"})
#: Raw bytes per base64 chunk of a streamed request body (a multiple of 3).
BASE64_CHUNK = 3 * 64 * 1024

#: Cloudflare error codes, from the Workers AI error table.
LICENCE_NOT_AGREED = 5016
DAILY_LIMIT = 3036
OUT_OF_CAPACITY = 3040
TIMEOUT = 3007
PERMANENT_CODES = frozenset(
    {
        5007,  # no such model
        3042,  # invalid model id
        5004,  # invalid base64 data
        3003,  # incomplete request
        3006,  # request too large
    }
)
JSON_MODE_FAILED = "JSON Mode couldn't be met"

USER_MESSAGE = "Read the document in the attached image."


def supports_json_mode(model: str) -> bool:
    return model in JSON_MODE_MODELS


def run_path(account_id: str, model: str) -> str:
    """The path of the run method; the model id keeps its slashes."""
    return f"/accounts/{account_id}/ai/run/{model}"


def system_prompt(instructions: str, schema: dict[str, Any]) -> str:
    """The document type's instructions, its fields and the rules of the answer."""
    parts = []
    if instructions.strip():
        parts.append(instructions.strip())
    lines = field_lines(schema)
    if lines:
        parts.append("Return these fields:\n" + "\n".join(lines))
    parts.append(ANSWER_RULES)
    return "\n\n".join(parts)


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON Mode's ``response_format``: the schema, with its references resolved
    where they can be."""
    with contextlib.suppress(UnsupportedSchema):
        schema = inline_refs(schema)
    return {"type": "json_schema", "json_schema": schema}


def run_fields(
    *,
    instructions: str,
    schema: dict[str, Any],
    max_tokens: int,
    json_mode: bool,
    followup: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The model input without the image. ``followup`` holds the messages of a
    re-ask: the previous answer and what was wrong with it."""
    messages = [
        {"role": "system", "content": system_prompt(instructions, schema)},
        {"role": "user", "content": USER_MESSAGE},
        *(followup or []),
    ]
    fields: dict[str, Any] = {
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    if json_mode:
        fields["response_format"] = response_format(schema)
    return fields


def base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


def base64_chunks(stream: IO[bytes], chunk_size: int = BASE64_CHUNK) -> Iterator[bytes]:
    """The stream's bytes in base64, a chunk at a time."""
    leftover = b""
    while block := stream.read(chunk_size):
        block = leftover + block
        cut = len(block) - len(block) % 3
        leftover = block[cut:]
        if cut:
            yield base64.b64encode(block[:cut])
    if leftover:
        yield base64.b64encode(leftover)


@dataclass(frozen=True)
class RunBody:
    """A run request's JSON body, with the image spliced in as base64 while it
    is sent, so a large image is never held encoded in memory."""

    fields: dict[str, Any]
    image: IO[bytes]
    image_size: int

    @property
    def head(self) -> bytes:
        encoded = json.dumps(self.fields, separators=(",", ":"), ensure_ascii=False)
        opening = encoded[:-1] + "," if self.fields else "{"
        return (opening + '"image":"').encode()

    tail = b'"}'

    @property
    def length(self) -> int:
        return len(self.head) + base64_length(self.image_size) + len(self.tail)

    def chunks(self) -> Iterator[bytes]:
        self.image.seek(0)
        yield self.head
        yield from base64_chunks(self.image)
        yield self.tail

    def encode(self) -> bytes:
        return b"".join(self.chunks())


def image_input(
    stream: IO[bytes], content_type: str, *, pdf_pages: int = 1
) -> tuple[IO[bytes], int]:
    """The image the model gets for a document, and its size in bytes.

    PNG and JPEG come back as the same stream. A PDF (read whole) is rendered;
    other images are converted to PNG.
    """
    if content_type in MODEL_IMAGE_TYPES:
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        return stream, size
    stream.seek(0)
    content = stream.read()
    if content_type == PDF:
        image = pdf_image(content, pdf_pages)
    else:
        image, _ = image_for(content, content_type, MODEL_IMAGE_TYPES)
    return io.BytesIO(image), len(image)


def pdf_image(content: bytes, pages: int) -> bytes:
    """The first ``pages`` pages of a PDF as one PNG, stacked top to bottom."""
    rendered = pdf_pages_as_png(content, max(1, pages))
    if not rendered:
        raise PermanentProviderError("The PDF has no pages to show the model.")
    if len(rendered) == 1:
        return rendered[0]
    images = [Image.open(io.BytesIO(page)) for page in rendered]
    try:
        width = max(image.width for image in images)
        sheet = Image.new(
            "RGB", (width, sum(image.height for image in images)), "white"
        )
        top = 0
        for image in images:
            sheet.paste(image.convert("RGB"), (0, top))
            top += image.height
    finally:
        for image in images:
            image.close()
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class RunOutput:
    """What the model answered, before any parsing of the text."""

    #: The answer as text; an answer that came as an object, serialised.
    text: str
    #: The answer already parsed, when the model sent an object (JSON mode).
    data: Any
    usage: Usage


def read_output(payload: Any) -> RunOutput:
    """The answer inside a successful ``{"result": ..., "success": true}``."""
    if not isinstance(payload, dict) or not isinstance(payload.get("result"), dict):
        raise InvalidOutputError("Workers AI answered without a result object")
    result = payload["result"]
    response = result.get("response")
    if isinstance(response, dict | list):
        text = json.dumps(response, ensure_ascii=False)
        data: Any = response
    else:
        text = "" if response is None else str(response)
        data = None
    return RunOutput(text=text, data=data, usage=read_usage(result.get("usage")))


def read_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()

    def count(key: str) -> int:
        value = usage.get(key)
        return int(value) if isinstance(value, int | float) else 0

    return Usage(count("prompt_tokens"), count("completion_tokens"))


def result_from_output(
    output: RunOutput, model: str, *, max_tokens: int | None = None
) -> ProviderResult:
    """The parsed answer, or ``InvalidOutputError`` when it holds no JSON object."""
    data = output.data
    if not isinstance(data, dict):
        try:
            data = parse_json_text(output.text)
        except ValueError:
            message = "Workers AI's answer holds no JSON object"
            if max_tokens and output.usage.tokens_out >= max_tokens:
                message += f"; it was cut off at max_tokens={max_tokens}"
                message += ", raise the MAX_TOKENS setting"
            elif not output.text.strip():
                message = "Workers AI answered with no text"
            error = InvalidOutputError(message, raw_text=output.text)
            raise with_usage(
                error, output.usage.tokens_in, output.usage.tokens_out
            ) from None
    return ProviderResult(
        data=data if isinstance(data, dict) else None,
        model=model,
        usage=output.usage,
        raw_text=output.text,
    )


def error_codes(response: httpx.Response) -> set[int]:
    """The codes of Cloudflare's ``errors[]`` in a response body."""
    try:
        body = response.json()
    except ValueError:
        return set()
    errors = body.get("errors") if isinstance(body, dict) else None
    codes = set()
    for item in errors if isinstance(errors, list) else []:
        code = item.get("code") if isinstance(item, dict) else None
        if isinstance(code, int) and not isinstance(code, bool):
            codes.add(code)
        elif isinstance(code, str) and code.isdigit():
            codes.add(int(code))
    return codes


def seconds_to_utc_midnight(now: datetime | None = None) -> float:
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return (midnight - now).total_seconds()


def licence_message(base_url: str, model: str) -> str:
    return (
        f"Workers AI refused {model} (error 5016): the account has not yet "
        "agreed to Meta's licence and acceptable use policy for this model. "
        'Agree once per account by sending {"prompt": "agree"} to the model: '
        f"curl -X POST {base_url}/accounts/$CF_ACCOUNT_ID/ai/run/{model} "
        '-H "Authorization: Bearer $CF_API_TOKEN" -d \'{"prompt":"agree"}\'. '
        "Then deliver the upload again."
    )


def classify(response: httpx.Response, *, base_url: str, model: str) -> ProviderError:
    """The error class of a failed run, from Cloudflare's error codes first and
    the HTTP status after."""
    codes = error_codes(response)
    status = response.status_code
    message = f"Workers AI answered HTTP {status}: {error_detail(response)}"
    delay = retry_after(response)
    if LICENCE_NOT_AGREED in codes:
        return LicenceNotAccepted(licence_message(base_url, model), status_code=status)
    if DAILY_LIMIT in codes:
        # The free allocation starts again at midnight UTC.
        return RateLimited(
            message, status_code=status, retry_after=delay or seconds_to_utc_midnight()
        )
    if OUT_OF_CAPACITY in codes:
        return RateLimited(message, status_code=status, retry_after=delay)
    if TIMEOUT in codes:
        return TransientProviderError(message, status_code=status, retry_after=delay)
    if codes & PERMANENT_CODES:
        return PermanentProviderError(message, status_code=status)
    if JSON_MODE_FAILED.lower() in message.lower():
        return InvalidOutputError(message)
    return error_for_response(response, "Workers AI")


class WorkersAIProvider(HttpProvider):
    default_base_url = DEFAULT_BASE_URL
    option_keys = HttpProvider.option_keys | {
        "ACCOUNT_ID",
        "API_TOKEN",
        "MODEL",
        "JSON_MODE",
        "PDF_PAGES",
    }

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(name, options)
        self.pdf_pages = int(self.number_option("PDF_PAGES", integer=True) or 1)
        json_mode = self.options.get("JSON_MODE", "auto")
        if json_mode not in ("auto", True, False):
            raise ImproperlyConfigured(
                f"Provider {name!r} option JSON_MODE must be 'auto', True or "
                f"False, not {json_mode!r}."
            )
        self.json_mode_option: str | bool = json_mode

    @property
    def model(self) -> str:
        return str(self.options.get("MODEL") or get_settings().WORKERS_AI_MODEL)

    @property
    def account_id(self) -> str:
        return str(self.options.get("ACCOUNT_ID") or "")

    @property
    def api_token(self) -> str:
        return str(self.options.get("API_TOKEN") or "")

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_token}"} if self.api_token else {}

    def json_mode(self, model: str) -> bool:
        if self.json_mode_option == "auto":
            return supports_json_mode(model)
        return bool(self.json_mode_option)

    def check(self) -> list[CheckMessage]:
        missing = [
            (key, env)
            for key, env, value in (
                ("ACCOUNT_ID", "CF_ACCOUNT_ID", self.account_id),
                ("API_TOKEN", "CF_API_TOKEN", self.api_token),
            )
            if not value
        ]
        if not missing:
            return []
        keys = " and ".join(key for key, _env in missing)
        envs = " and ".join(env for _key, env in missing)
        return [
            Error(
                f"The {self.name!r} provider (Cloudflare Workers AI) has no {keys}.",
                hint=f'Set {SETTING_NAME}["PROVIDERS"][{self.name!r}] {keys}; the '
                f"example settings read them from {envs}.",
                id="cf_ingest.E032",
            )
        ]

    def request_fields(
        self, request: ExtractionRequest, model: str | None = None
    ) -> dict[str, Any]:
        followup = []
        if request.previous_errors:
            if request.previous_output:
                followup.append(
                    {"role": "assistant", "content": previous_output(request)}
                )
            followup.append({"role": "user", "content": reask_prompt(request)})
        return run_fields(
            instructions=request.instructions,
            schema=request.json_schema,
            max_tokens=get_settings().MAX_TOKENS,
            json_mode=self.json_mode(model or self.model),
            followup=followup,
        )

    def extract(self, request: ExtractionRequest) -> ProviderResult:
        image, size = image_input(
            io.BytesIO(request.content), request.content_type, pdf_pages=self.pdf_pages
        )
        output = self.run(self.model, self.request_fields(request), image, size)
        return result_from_output(
            output, self.model, max_tokens=get_settings().MAX_TOKENS
        )

    def run(
        self, model: str, fields: dict[str, Any], image: IO[bytes], image_size: int
    ) -> RunOutput:
        """Send one run request and return the model's answer, unparsed."""
        if not self.account_id or not self.api_token:
            raise PermanentProviderError(
                f"The {self.name!r} provider needs ACCOUNT_ID and API_TOKEN."
            )
        body = RunBody(fields, image, image_size)
        http = self.http
        try:
            response = http.client.post(
                run_path(self.account_id, model),
                content=body.chunks(),
                headers={
                    "Content-Type": "application/json",
                    "Content-Length": str(body.length),
                },
            )
        except httpx.HTTPError as exc:
            raise http.scrub(error_for_exception(exc, "Workers AI")) from exc
        if not response.is_success:
            raise http.scrub(classify(response, base_url=self.base_url, model=model))
        payload = decode_json(response, "Workers AI")
        if isinstance(payload, dict) and payload.get("success") is False:
            raise http.scrub(classify(response, base_url=self.base_url, model=model))
        return read_output(payload)
