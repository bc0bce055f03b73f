"""A fake OpenAI-compatible ``/v1/chat/completions``, following OpenAI's
documented request and response shapes.

It checks the path, the Bearer key (unless ``api_key`` is None, like a local
server), the messages and their content parts (``text``, ``image_url`` with a
``data:`` URL, ``file`` with ``file_data``), and ``response_format``. Errors
come in OpenAI's shape::

    {"error": {"message": "...", "type": "...", "param": null, "code": "..."}}

Unscripted, it answers with JSON that satisfies the requested schema.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from tests.fake_provider import sample_value
from tests.fakes.server import FakeResponse, FakeServer, RecordedRequest, serve_main

API_KEY = "sk-fake-openai-key-0123456789"
PREFIX = "/v1"
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.S)


def openai_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> FakeResponse:
    """An error response in OpenAI's JSON shape."""
    return FakeResponse(
        status,
        json={
            "error": {"message": message, "type": type, "param": param, "code": code}
        },
        headers=headers or {},
    )


def openai_answer(
    data: Any,
    *,
    finish_reason: str = "stop",
    prompt_tokens: int = 850,
    completion_tokens: int = 45,
    refusal: str | None = None,
    model: str = "gpt-4o-mini-2024-07-18",
) -> dict[str, Any]:
    """A chat completion whose content is ``data`` (as JSON unless a string)."""
    if refusal is not None:
        content = None
    else:
        content = data if isinstance(data, str) else json.dumps(data)
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": refusal,
                },
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def data_url_errors(url: Any, where: str) -> list[str]:
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    if not match:
        return [f"Invalid '{where}': expected a base64-encoded data URL."]
    try:
        base64.b64decode(match.group("data"), validate=True)
    except (binascii.Error, ValueError):
        return [f"Invalid '{where}': the base64 data cannot be decoded."]
    return []


class FakeOpenAI(FakeServer):
    """``POST /v1/chat/completions``; see the module docstring."""

    api_key: str | None = API_KEY

    def validate(self, request: RecordedRequest) -> FakeResponse | None:
        if request.method != "POST" or request.path != f"{PREFIX}/chat/completions":
            return openai_error(
                404, f"Invalid URL ({request.method} {request.path})", code=None
            )
        if self.api_key is not None:
            auth = request.headers.get("authorization", "")
            if auth != f"Bearer {self.api_key}":
                return openai_error(
                    401, "Incorrect API key provided.", code="invalid_api_key"
                )
        body = request.json
        if not isinstance(body, dict):
            return openai_error(
                400, "We could not parse the JSON body of your request."
            )
        errors = self.body_errors(body)
        if errors:
            return openai_error(400, " ".join(errors))
        return None

    def body_errors(self, body: dict[str, Any]) -> list[str]:
        errors = []
        if not body.get("model"):
            errors.append("you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return [*errors, "Invalid 'messages': empty array."]
        for i, message in enumerate(messages):
            if message.get("role") not in ("system", "user", "assistant", "developer"):
                errors.append(f"Invalid value for 'messages[{i}].role'.")
            content = message.get("content")
            if isinstance(content, list):
                for j, part in enumerate(content):
                    errors += self.part_errors(part, f"messages[{i}].content[{j}]")
            elif not isinstance(content, str):
                errors.append(f"Invalid type for 'messages[{i}].content'.")
        if "max_tokens" in body and "max_completion_tokens" in body:
            errors.append("Use max_tokens or max_completion_tokens, not both.")
        response_format = body.get("response_format")
        if response_format is not None:
            kind = response_format.get("type")
            if kind not in ("text", "json_object", "json_schema"):
                errors.append("Invalid 'response_format.type'.")
            if kind == "json_schema":
                spec = response_format.get("json_schema") or {}
                name = spec.get("name", "")
                if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
                    errors.append("Invalid 'response_format.json_schema.name'.")
                if not isinstance(spec.get("schema"), dict):
                    errors.append("Invalid 'response_format.json_schema.schema'.")
        return errors

    def part_errors(self, part: Any, where: str) -> list[str]:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            return [] if isinstance(part.get("text"), str) else [f"Invalid '{where}'."]
        if kind == "image_url":
            url = (part.get("image_url") or {}).get("url")
            if isinstance(url, str) and url.startswith("https://"):
                return []
            return data_url_errors(url, f"{where}.image_url.url")
        if kind == "file":
            file = part.get("file") or {}
            if "file_id" in file:
                return []
            return data_url_errors(file.get("file_data"), f"{where}.file.file_data")
        return [
            f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', "
            "'input_audio', 'refusal', 'audio', and 'file'."
        ]

    def default(self, request: RecordedRequest) -> FakeResponse:
        response_format = request.json.get("response_format") or {}
        schema = (response_format.get("json_schema") or {}).get("schema")
        data = sample_value(schema, schema.get("$defs", {})) if schema else {}
        return FakeResponse(json=openai_answer(data))


if __name__ == "__main__":
    serve_main(FakeOpenAI, "A fake OpenAI-compatible chat completions API.")
