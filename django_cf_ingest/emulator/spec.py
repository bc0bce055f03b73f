"""The OpenAPI description the emulator validates every request and response
against: Cloudflare's own operations for queues and their messages, shipped in
``openapi/`` (vendor spec data, BSD-3-Clause).

Three adjustments are made in memory, and nothing else:

- ``servers`` becomes the emulator's base path, so any host and port match;
- the single security requirement ``{api_email, api_key, api_token}`` (which,
  read literally, demands all three headers at once) becomes the two
  alternatives the API accepts: a bearer token, or the email + key pair;
- every operation gets a ``5XX`` response with the failure envelope, which
  the API answers with code 15000 but the description leaves out.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI

SPEC_DIR = Path(__file__).resolve().parent / "openapi"
PERMISSION_PREFIX = "com.cloudflare.edge.worker."


def _documents() -> dict[str, Any]:
    spec = json.loads((SPEC_DIR / "queues-messages.json").read_text("utf-8"))
    metrics = json.loads((SPEC_DIR / "queues-metrics.json").read_text("utf-8"))
    spec["paths"].update(metrics["paths"])
    return dict(spec)


def operations() -> dict[str, dict[str, Any]]:
    """Operation objects by operationId, each with its ``path`` and ``method``."""
    found: dict[str, dict[str, Any]] = {}
    for path, item in _documents()["paths"].items():
        for method, operation in item.items():
            found[operation["operationId"]] = {
                **operation,
                "path": path,
                "method": method.upper(),
            }
    return found


def permission(operation: dict[str, Any]) -> str:
    """The permission an operation needs, e.g. ``queue.push``."""
    required = operation.get("x-cfPermissionsRequired", {}).get("enum") or []
    if not required:
        return "queue.read"
    return str(required[0]).removeprefix(PERMISSION_PREFIX)


@cache
def load_openapi(base_path: str) -> OpenAPI:
    spec = _documents()
    spec["servers"] = [{"url": base_path}]
    failure = {
        "description": "Server failure",
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/mq_api-v4-failure"}
            }
        },
    }
    for item in spec["paths"].values():
        for operation in item.values():
            operation["security"] = [
                {"api_token": []},
                {"api_email": [], "api_key": []},
            ]
            operation["responses"].setdefault("5XX", failure)
    return OpenAPI.from_dict(spec)
