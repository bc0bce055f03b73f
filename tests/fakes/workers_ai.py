"""A fake of Cloudflare's Workers AI REST method ``ai/run``, following its
documented request and response shapes.

``POST /client/v4/accounts/{account_id}/ai/run/{model}`` with a Bearer token;
the body is the model's input: for ``@cf/meta/llama-3.2-11b-vision-instruct``
either ``prompt`` or ``messages`` (role and string content), ``image`` as an
array of byte values or a base64 string, ``max_tokens`` and the other
sampling numbers within their documented ranges, and optionally a JSON Mode
``response_format``. Answers come in Cloudflare's envelope::

    {"result": {"response": ..., "tool_calls": [], "usage": {...}},
     "success": true, "errors": [], "messages": []}
    {"result": null, "success": false,
     "errors": [{"code": 5016, "message": "..."}], "messages": []}

Like the real account, a fresh fake has not agreed to Meta's licence when
``licence_accepted=False``: every call fails with 5016 until one sends
``{"prompt": "agree"}``. Unscripted, in JSON Mode it answers with an object
that satisfies the requested schema, as the JSON Mode documentation shows;
without JSON Mode it answers prose without data.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from tests.fake_provider import sample_value
from tests.fakes.server import FakeResponse, FakeServer, RecordedRequest, serve_main

ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
API_TOKEN = "fake-workers-ai-token-0123456789"
PREFIX = "/client/v4"
PATH = re.compile(
    r"^/client/v4/accounts/(?P<account>[0-9A-Za-z]+)/ai/run/"
    r"(?P<model>@(?:cf|hf)/[\w.-]+/[\w.-]+)$"
)
KNOWN_MODELS = frozenset(
    {
        "@cf/meta/llama-3.2-11b-vision-instruct",
        "@cf/meta/llama-3.1-8b-instruct",
    }
)
#: The requests the fake accepts; the real limit is not documented.
MAX_REQUEST_BYTES = 64 * 1024 * 1024
MAX_CONTENT = 131072
#: Documented ranges of the sampling numbers.
RANGES = {
    "temperature": (0, 5),
    "top_p": (0, 2),
    "top_k": (1, 50),
    "seed": (1, 9_999_999_999),
    "repetition_penalty": (0, 2),
    "frequency_penalty": (0, 2),
    "presence_penalty": (0, 2),
}


def cf_error(
    status: int, code: int, message: str, *, headers: dict[str, str] | None = None
) -> FakeResponse:
    """A failure in Cloudflare's v4 envelope."""
    return FakeResponse(
        status,
        json={
            "result": None,
            "success": False,
            "errors": [{"code": code, "message": message}],
            "messages": [],
        },
        headers=headers or {},
    )


def cf_answer(
    response: Any,
    *,
    prompt_tokens: int | None = 1620,
    completion_tokens: int = 48,
) -> FakeResponse:
    """A successful run whose ``result.response`` is ``response`` (a string,
    or an object as JSON Mode sends it). ``prompt_tokens=None`` leaves usage
    out, as this model's schema does."""
    result: dict[str, Any] = {"response": response, "tool_calls": []}
    if prompt_tokens is not None:
        result["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return FakeResponse(
        json={"result": result, "success": True, "errors": [], "messages": []}
    )


def licence_error() -> FakeResponse:
    return cf_error(403, 5016, "User has not agreed to Llama3.2 model terms")


def decoded_image(request: RecordedRequest) -> bytes:
    """The image a recorded request carried, as bytes."""
    image = request.json["image"]
    if isinstance(image, list):
        return bytes(image)
    return base64.b64decode(image, validate=True)


class FakeWorkersAI(FakeServer):
    """``POST /client/v4/accounts/{id}/ai/run/{model}``; see the module docstring."""

    account_id = ACCOUNT_ID
    api_token = API_TOKEN

    def __init__(
        self, *, latency: float = 0.0, port: int = 0, licence_accepted: bool = True
    ) -> None:
        super().__init__(latency=latency, port=port)
        self.licence_accepted = licence_accepted

    @property
    def base_url(self) -> str:
        """What the provider's ``BASE_URL`` is set to."""
        return self.url + PREFIX

    def options(self, **extra: Any) -> dict[str, Any]:
        """Provider options that reach this fake."""
        return {
            "ACCOUNT_ID": self.account_id,
            "API_TOKEN": self.api_token,
            "BASE_URL": self.base_url,
            **extra,
        }

    def validate(self, request: RecordedRequest) -> FakeResponse | None:
        match = PATH.match(request.path)
        if request.method != "POST" or match is None:
            return cf_error(404, 7003, "Could not route to " + request.path)
        token = request.headers.get("authorization", "")
        if token != f"Bearer {self.api_token}":
            return cf_error(401, 10000, "Authentication error")
        if match["account"] != self.account_id:
            return cf_error(403, 10000, "Authentication error")
        if match["model"] not in KNOWN_MODELS:
            return cf_error(400, 5007, f"No such model {match['model']} or task")
        if len(request.body) > MAX_REQUEST_BYTES:
            return cf_error(413, 3006, "Request is too large")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return cf_error(400, 3003, "Incomplete request: expected a JSON body")
        body = request.json
        if not isinstance(body, dict):
            return cf_error(400, 3003, "Incomplete request: the body is not an object")
        if body.get("prompt") == "agree":
            return None
        if not self.licence_accepted:
            return licence_error()
        problem = self.input_problem(body)
        if problem is not None:
            return problem
        return None

    def input_problem(self, body: dict[str, Any]) -> FakeResponse | None:
        """The model schema's checks; None when the input is acceptable."""
        has_prompt, has_messages = "prompt" in body, "messages" in body
        if has_prompt == has_messages:
            return cf_error(
                400, 3003, "Incomplete request: send either prompt or messages"
            )
        if has_prompt:
            prompt = body["prompt"]
            if not isinstance(prompt, str) or not 1 <= len(prompt) <= MAX_CONTENT:
                return cf_error(400, 3003, "Invalid input: prompt")
        else:
            messages = body["messages"]
            if not isinstance(messages, list) or not messages:
                return cf_error(400, 3003, "Invalid input: messages")
            for message in messages:
                if not (
                    isinstance(message, dict)
                    and isinstance(message.get("role"), str)
                    and isinstance(message.get("content"), str)
                    and len(message["content"]) <= MAX_CONTENT
                ):
                    return cf_error(400, 3003, "Invalid input: messages[].content")
        image = body.get("image")
        if isinstance(image, str):
            try:
                base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError):
                return cf_error(400, 5004, "Invalid base64 data")
        elif isinstance(image, list):
            if not all(isinstance(v, int) and 0 <= v <= 255 for v in image):
                return cf_error(400, 3003, "Invalid input: image values")
        elif image is not None:
            return cf_error(400, 3003, "Invalid input: image")
        max_tokens = body.get("max_tokens", 256)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            return cf_error(400, 3003, "Invalid input: max_tokens")
        for key, (low, high) in RANGES.items():
            value = body.get(key)
            if value is not None and not (
                isinstance(value, int | float) and low <= value <= high
            ):
                return cf_error(400, 3003, f"Invalid input: {key}")
        fmt = body.get("response_format")
        if fmt is not None:
            if body.get("stream"):
                return cf_error(400, 3003, "JSON Mode cannot be combined with stream")
            if not isinstance(fmt, dict) or fmt.get("type") not in (
                "json_object",
                "json_schema",
            ):
                return cf_error(400, 3003, "Invalid input: response_format.type")
            if fmt["type"] == "json_schema" and not isinstance(
                fmt.get("json_schema"), dict
            ):
                return cf_error(400, 3003, "Invalid input: response_format.json_schema")
        return None

    def default(self, request: RecordedRequest) -> FakeResponse:
        body = request.json
        if body.get("prompt") == "agree":
            self.licence_accepted = True
            return cf_answer(
                "Thank you for agreeing to the Llama 3.2 license.", prompt_tokens=None
            )
        fmt = body.get("response_format") or {}
        schema = fmt.get("json_schema")
        if isinstance(schema, dict):
            return cf_answer(sample_value(schema, schema.get("$defs", {})))
        return cf_answer("The image shows a personality test result sheet.")


if __name__ == "__main__":
    serve_main(FakeWorkersAI, "A fake Workers AI ai/run API on 127.0.0.1.")
