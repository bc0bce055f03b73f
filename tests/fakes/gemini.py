"""A fake of the Gemini API's ``generateContent``, following its documented
request and response shapes.

It checks what the real service checks (the path, the ``x-goog-api-key``
header, the JSON body, base64 inline data, the fields of ``responseSchema``)
and answers errors in Google's shape::

    {"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED"}}

Unscripted, it answers like a model that read the document perfectly: JSON
that satisfies the requested schema.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from tests.fake_provider import sample_value
from tests.fakes.server import FakeResponse, FakeServer, RecordedRequest, serve_main

API_KEY = "fake-gemini-key-0123456789"
PATH = re.compile(r"^/v1beta/models/(?P<model>[A-Za-z0-9.\-_]+):generateContent$")
#: Inline requests at or above this size are refused, as by the real service.
MAX_REQUEST_BYTES = 20 * 1024 * 1024

SCHEMA_FIELDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
SCHEMA_TYPES = frozenset(
    {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
)
GENERATION_CONFIG_FIELDS = frozenset(
    {
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "temperature",
        "topP",
        "topK",
        "candidateCount",
        "maxOutputTokens",
        "stopSequences",
        "seed",
        "thinkingConfig",
        "responseLogprobs",
        "logprobs",
    }
)
PART_FIELDS = frozenset({"text", "inlineData", "fileData", "thought"})


def google_error(code: int, status: str, message: str, **extra: Any) -> FakeResponse:
    """An error response in Google's JSON shape."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    headers = extra.pop("headers", {})
    error.update(extra)
    return FakeResponse(code, json={"error": error}, headers=headers)


def gemini_answer(
    data: Any,
    *,
    finish_reason: str = "STOP",
    prompt_tokens: int = 1290,
    output_tokens: int = 60,
    thoughts_tokens: int = 0,
    model: str = "gemini-2.5-flash",
) -> dict[str, Any]:
    """A ``generateContent`` response whose text is ``data`` (as JSON unless
    it is already a string)."""
    text = data if isinstance(data, str) else json.dumps(data)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens + thoughts_tokens,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": prompt_tokens - 1032},
            {"modality": "IMAGE", "tokenCount": 1032},
        ],
    }
    if thoughts_tokens:
        usage["thoughtsTokenCount"] = thoughts_tokens
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": "fake-response-id",
    }


def json_schema_from_gemini(schema: Any) -> Any:
    """The Gemini schema in plain JSON Schema terms (lower-case types)."""
    if isinstance(schema, list):
        return [json_schema_from_gemini(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {
        key: json_schema_from_gemini(value)
        for key, value in schema.items()
        if key not in ("nullable", "propertyOrdering")
    }
    if isinstance(schema.get("type"), str):
        converted["type"] = schema["type"].lower()
    if isinstance(schema.get("properties"), dict):
        converted["properties"] = {
            name: json_schema_from_gemini(sub)
            for name, sub in schema["properties"].items()
        }
    return converted


def schema_errors(schema: Any, where: str) -> list[str]:
    """What the real service would reject in a ``responseSchema``."""
    if not isinstance(schema, dict):
        return [f"Invalid value at '{where}': not an object"]
    errors = [
        f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
        "Cannot find field."
        for key in schema
        if key not in SCHEMA_FIELDS
    ]
    if "type" in schema and schema["type"] not in SCHEMA_TYPES:
        errors.append(
            f"Invalid value at '{where}.type' (type.googleapis.com/"
            f'google.ai.generativelanguage.v1beta.Type), "{schema["type"]}"'
        )
    if schema.get("type") == "OBJECT" and not schema.get("properties"):
        errors.append(f"{where}.properties: should be non-empty for OBJECT type")
    for name, sub in (schema.get("properties") or {}).items():
        errors += schema_errors(sub, f"{where}.properties[{name}].value")
    if "items" in schema:
        errors += schema_errors(schema["items"], f"{where}.items")
    for index, sub in enumerate(schema.get("anyOf") or []):
        errors += schema_errors(sub, f"{where}.any_of[{index}]")
    if "enum" in schema and schema.get("type") not in ("STRING", None):
        errors.append(f"{where}.enum: only allowed for STRING type")
    return errors


class FakeGemini(FakeServer):
    """``POST /v1beta/models/{model}:generateContent``; see the module docstring."""

    api_key = API_KEY

    def validate(self, request: RecordedRequest) -> FakeResponse | None:
        if request.method != "POST" or not PATH.match(request.path):
            return google_error(
                404, "NOT_FOUND", f"{request.path} is not found for API version v1beta"
            )
        key = request.headers.get("x-goog-api-key")
        if not key:
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without "
                "established identity). Please use API Key or other form of API "
                "consumer identity to call this API.",
            )
        if key != self.api_key:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
            )
        if len(request.body) >= MAX_REQUEST_BYTES:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes.",
            )
        body = request.json
        if not isinstance(body, dict):
            return google_error(
                400, "INVALID_ARGUMENT", "Invalid JSON payload received."
            )
        errors = self.body_errors(body)
        if errors:
            return google_error(400, "INVALID_ARGUMENT", "\n".join(errors))
        return None

    def body_errors(self, body: dict[str, Any]) -> list[str]:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return ["* GenerateContentRequest.contents: contents is not specified"]
        errors: list[str] = []
        for i, content in enumerate(contents):
            if content.get("role") not in ("user", "model"):
                errors.append(
                    f"contents[{i}].role: Please use a valid role: user, model."
                )
            for j, part in enumerate(content.get("parts") or []):
                errors += self.part_errors(part, f"contents[{i}].parts[{j}]")
        config = body.get("generationConfig") or {}
        for key in config:
            if key not in GENERATION_CONFIG_FIELDS:
                errors.append(
                    f'Invalid JSON payload received. Unknown name "{key}" at '
                    "'generation_config': Cannot find field."
                )
        if "responseSchema" in config and "responseJsonSchema" in config:
            errors.append(
                "responseSchema and responseJsonSchema are mutually exclusive"
            )
        schema_given = "responseSchema" in config or "responseJsonSchema" in config
        if schema_given and config.get("responseMimeType") != "application/json":
            errors.append("response_mime_type must be application/json with a schema")
        if "responseSchema" in config:
            errors += schema_errors(
                config["responseSchema"], "generation_config.response_schema"
            )
        return errors

    def part_errors(self, part: Any, where: str) -> list[str]:
        if not isinstance(part, dict) or not set(part) <= PART_FIELDS:
            return [f"{where}: unknown field"]
        inline = part.get("inlineData")
        if inline is None:
            return []
        if not inline.get("mimeType"):
            return [f"{where}.inline_data.mime_type: required"]
        try:
            base64.b64decode(inline.get("data", ""), validate=True)
        except (binascii.Error, ValueError):
            return [
                f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), "
                "Base64 decoding failed"
            ]
        return []

    def default(self, request: RecordedRequest) -> FakeResponse:
        config = request.json.get("generationConfig") or {}
        if "responseSchema" in config:
            schema = json_schema_from_gemini(config["responseSchema"])
            data = sample_value(schema, {})
        elif "responseJsonSchema" in config:
            schema = config["responseJsonSchema"]
            data = sample_value(schema, schema.get("$defs", {}))
        else:
            data = {}
        return FakeResponse(json=gemini_answer(data))


if __name__ == "__main__":
    serve_main(FakeGemini, "A fake Gemini generateContent API on 127.0.0.1.")
