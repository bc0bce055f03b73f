"""The words sent to a model: the document type's instructions, its fields,
and, for a re-ask, what was wrong with the previous answer.

The field list comes from the document type's JSON schema, so the titles and
descriptions written on the pydantic model are what the model reads.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .base import ExtractionRequest
from .schemas import UnsupportedSchema, inline_refs

#: Most of a previous answer that is sent back in a re-ask.
MAX_PREVIOUS_OUTPUT = 20_000
#: Most validation errors listed in a re-ask.
MAX_ERRORS = 50

ANSWER_RULES = (
    "Answer with one JSON object and nothing else. Copy values as they are "
    "printed on the document. Use null for a value that is missing or not "
    "legible; do not guess."
)


def _kind(node: dict[str, Any]) -> str:
    variants = node.get("anyOf") or node.get("oneOf")
    if variants:
        kinds = [_kind(v) for v in variants if v.get("type") != "null"]
        optional = len(kinds) < len(variants)
        return " or ".join(kinds) + (" or null" if optional else "")
    if "enum" in node:
        return "one of " + ", ".join(str(v) for v in node["enum"])
    kind = str(node.get("type") or "value")
    if kind == "array" and isinstance(node.get("items"), dict):
        return f"list of {_kind(node['items'])}"
    if "minimum" in node and "maximum" in node:
        return f"{kind} from {node['minimum']:g} to {node['maximum']:g}"
    return kind


def field_lines(schema: dict[str, Any]) -> list[str]:
    """One line per top-level field: name, kind, whether required, meaning."""
    with contextlib.suppress(UnsupportedSchema):
        schema = inline_refs(schema)
    required = set(schema.get("required", []))
    lines = []
    for name, node in (schema.get("properties") or {}).items():
        kind = _kind(node)
        need = "required" if name in required else "optional"
        meaning = ". ".join(
            str(part).rstrip(".")
            for part in (node.get("title"), node.get("description"))
            if part
        )
        line = f"- {name} ({kind}, {need})"
        lines.append(f"{line}: {meaning}." if meaning else line)
    return lines


def extraction_prompt(request: ExtractionRequest) -> str:
    """The first message: what to read and the fields to return."""
    parts = []
    if request.instructions.strip():
        parts.append(request.instructions.strip())
    lines = field_lines(request.json_schema)
    if lines:
        parts.append("Return these fields:\n" + "\n".join(lines))
    parts.append(ANSWER_RULES)
    return "\n\n".join(parts)


def previous_output(request: ExtractionRequest) -> str:
    """The previous answer as it is sent back, cut to a sane length."""
    return request.previous_output[:MAX_PREVIOUS_OUTPUT]


def reask_prompt(request: ExtractionRequest) -> str:
    """The follow-up message of a re-ask: the validation errors to fix."""
    errors = list(request.previous_errors[:MAX_ERRORS])
    if len(request.previous_errors) > MAX_ERRORS:
        errors.append(f"... and {len(request.previous_errors) - MAX_ERRORS} more")
    listed = "\n".join(f"- {error}" for error in errors)
    return (
        "Your previous answer does not match the required fields:\n"
        f"{listed}\n\n"
        "Read the document again and answer with one corrected JSON object "
        "that has all the fields, and nothing else."
    )


def is_reask(request: ExtractionRequest) -> bool:
    return bool(request.previous_errors)
