"""A document type's JSON schema, shaped for what each vendor accepts.

Pydantic writes JSON Schema with ``$ref``/``$defs``, titles, defaults and
``anyOf [X, null]`` for optional fields. ``inline_refs`` resolves the
references, which every OpenAI-compatible server understands.
``gemini_schema`` goes further, to the OpenAPI 3.0 subset of Gemini's
``responseSchema``: upper-case types, ``nullable`` instead of a null variant,
string-only enums, ``propertyOrdering`` so fields come in declaration order,
and none of the keywords Gemini rejects. What the subset cannot say (a
recursive model, an object with free keys, a field of any type) raises
``UnsupportedSchema``, and the caller sends plain JSON Schema instead.
"""

from __future__ import annotations

import json
from typing import Any

#: Keywords whose values are data, not schemas: never walked for ``$ref``.
_DATA_KEYWORDS = frozenset({"default", "examples", "example", "const", "enum"})

_GEMINI_TYPES = {
    "string": "STRING",
    "number": "NUMBER",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "array": "ARRAY",
    "object": "OBJECT",
}
#: Formats Gemini documents for each type; others become a description note.
_GEMINI_FORMATS = {
    "string": frozenset({"date-time", "enum"}),
    "number": frozenset({"float", "double"}),
    "integer": frozenset({"int32", "int64"}),
}


class UnsupportedSchema(ValueError):
    """The schema uses something the target dialect cannot express."""


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every local ``$ref`` replaced by its definition."""
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = str(node["$ref"])
            name = ref.rsplit("/", 1)[-1]
            if not ref.startswith("#/") or name not in defs:
                raise UnsupportedSchema(f"cannot resolve $ref {ref!r}")
            if name in seen:
                raise UnsupportedSchema(f"{name!r} refers to itself")
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return walk({**defs[name], **siblings}, (*seen, name))
        return {
            key: value if key in _DATA_KEYWORDS else walk(value, seen)
            for key, value in node.items()
            if key not in ("$defs", "definitions")
        }

    result: dict[str, Any] = walk(schema, ())
    return result


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Gemini's ``responseSchema`` for a JSON schema (see the module docstring)."""
    return _to_gemini(inline_refs(schema))


def _is_null(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "null"


def _note(description: str, note: str) -> str:
    return f"{description.rstrip()} {note}".strip() if description else note


def _merge_all_of(node: dict[str, Any]) -> dict[str, Any]:
    parts = node.get("allOf")
    if not parts:
        return node
    merged = {k: v for k, v in node.items() if k != "allOf"}
    for part in parts:
        for key, value in part.items():
            merged.setdefault(key, value)
    return merged


def _infer_type(node: dict[str, Any], enum: list[Any] | None) -> str:
    if enum:
        if all(isinstance(v, str) for v in enum):
            return "string"
        if all(isinstance(v, bool) for v in enum):
            return "boolean"
        if all(isinstance(v, int) and not isinstance(v, bool) for v in enum):
            return "integer"
        if all(isinstance(v, int | float) for v in enum):
            return "number"
    if "properties" in node:
        return "object"
    if "items" in node:
        return "array"
    raise UnsupportedSchema("a field has no type")


def _to_gemini(node: dict[str, Any]) -> dict[str, Any]:
    node = _merge_all_of(node)
    description = str(node.get("description") or node.get("title") or "")

    variants = node.get("anyOf") or node.get("oneOf")
    if variants:
        return _union_to_gemini(variants, description)

    kind = node.get("type")
    nullable = False
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        nullable = len(kinds) < len(kind)
        if len(kinds) != 1:
            union = _union_to_gemini([{**node, "type": k} for k in kinds], description)
            if nullable:
                union["nullable"] = True
            return union
        kind = kinds[0]
    enum = [node["const"]] if "const" in node else node.get("enum")
    if kind is None:
        kind = _infer_type(node, enum)
    if kind not in _GEMINI_TYPES:
        raise UnsupportedSchema(f"type {kind!r}")

    out: dict[str, Any] = {"type": _GEMINI_TYPES[kind]}
    if nullable:
        out["nullable"] = True
    if enum is not None:
        if kind == "string" and all(isinstance(v, str) for v in enum):
            out["enum"] = list(enum)
        else:
            # Gemini enums hold strings only: say it in words instead.
            choices = ", ".join(json.dumps(v) for v in enum)
            description = _note(description, f"One of: {choices}.")
    fmt = node.get("format")
    if fmt:
        if fmt in _GEMINI_FORMATS.get(kind, ()):
            out["format"] = fmt
        else:
            description = _note(description, f"Format: {fmt}.")
    if description:
        out["description"] = description

    if kind in ("number", "integer"):
        _copy_bounds(node, out)
    elif kind == "string":
        for key in ("minLength", "maxLength", "pattern"):
            if key in node:
                out[key] = node[key]
    elif kind == "array":
        items = node.get("items")
        if not isinstance(items, dict) or not items:
            raise UnsupportedSchema("an array without an item schema")
        out["items"] = _to_gemini(items)
        for key in ("minItems", "maxItems"):
            if key in node:
                out[key] = node[key]
    elif kind == "object":
        properties = node.get("properties") or {}
        if not properties:
            raise UnsupportedSchema("an object without declared properties")
        out["properties"] = {k: _to_gemini(v) for k, v in properties.items()}
        required = [k for k in node.get("required", []) if k in properties]
        if required:
            out["required"] = required
        out["propertyOrdering"] = list(properties)
    return out


def _union_to_gemini(variants: list[Any], description: str) -> dict[str, Any]:
    options = [v for v in variants if not _is_null(v)]
    nullable = len(options) < len(variants)
    if not options:
        raise UnsupportedSchema("a field that can only be null")
    if len(options) == 1:
        only = dict(options[0])
        if description and not only.get("description"):
            only["description"] = description
        out = _to_gemini(only)
    else:
        out = {"anyOf": [_to_gemini(v) for v in options]}
        if description:
            out["description"] = description
    if nullable:
        out["nullable"] = True
    return out


def _copy_bounds(node: dict[str, Any], out: dict[str, Any]) -> None:
    # Exclusive bounds have no Gemini keyword; the inclusive bound is close
    # enough to guide the model, and validation still applies the exact one.
    for key, exclusive in (
        ("minimum", "exclusiveMinimum"),
        ("maximum", "exclusiveMaximum"),
    ):
        if key in node:
            out[key] = node[key]
        elif isinstance(node.get(exclusive), int | float):
            out[key] = node[exclusive]
