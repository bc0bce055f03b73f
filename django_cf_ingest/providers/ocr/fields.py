"""What the extractor looks for, read from a document type's JSON schema.

Every property becomes a ``FieldSpec``: the kind of value it takes, its
constraints (range, pattern, choices, lengths) and the labels it may be
printed under. Labels come from the property's name and title and from
aliases in its description, written ``(aliases: type, code)`` or
``Alias: honesty humility.``. A short plain description ("Openness to
experience.") also serves, as a weaker label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["number", "integer", "string", "boolean", "array", "object"]

#: Strength of a label read from a description rather than named outright.
WEAK = 0.85
_ALIASES = re.compile(
    r"\(?\s*\balias(?:es)?\s*:\s*(?P<names>[^()]*?)\s*(?:\)|\.\s*$|\.\s+(?=[A-Z])|$)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]+")
_PLAIN_PHRASE = re.compile(r"^[^\W\d_]+(?:[ -][^\W\d_]+){0,3}$")


def words(text: str) -> tuple[str, ...]:
    """The lower-cased words of ``text``: how labels and lines are compared."""
    return tuple(match.group().casefold() for match in _WORD.finditer(text))


@dataclass(frozen=True)
class Label:
    words: tuple[str, ...]
    strength: float = 1.0


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: Kind
    labels: tuple[Label, ...] = ()
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    pattern: str | None = None
    choices: tuple[Any, ...] | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    items: FieldSpec | None = None
    properties: tuple[FieldSpec, ...] = field(default_factory=tuple)

    @property
    def is_free_text(self) -> bool:
        return self.kind == "string" and not self.pattern and not self.choices

    @property
    def weight(self) -> float:
        """How much the field counts towards the confidence."""
        return 1.0 if self.required else 0.5


def aliases(description: str) -> list[str]:
    names: list[str] = []
    for match in _ALIASES.finditer(description):
        for name in re.split(r",|;|/|\bor\b", match.group("names")):
            name = name.strip(" .")
            if name:
                names.append(name)
    return names


def plain_description(description: str) -> str | None:
    """A description short and plain enough to be printed as a label."""
    text = _ALIASES.sub("", description).strip(" .")
    return text if _PLAIN_PHRASE.match(text) else None


def _labels(name: str, schema: dict[str, Any]) -> tuple[Label, ...]:
    found: dict[tuple[str, ...], float] = {}

    def add(text: str, strength: float) -> None:
        key = words(text)
        if key and found.get(key, 0.0) < strength:
            found[key] = strength

    add(name.replace("_", " "), 1.0)
    add(str(schema.get("title", "")), 1.0)
    description = str(schema.get("description", ""))
    for alias in aliases(description):
        add(alias, 1.0)
    plain = plain_description(description)
    if plain:
        add(plain, WEAK)
    return tuple(Label(key, strength) for key, strength in found.items())


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` and unwrap ``Optional``/``allOf`` to one schema."""
    for _ in range(16):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **extra}
            continue
        for key in ("anyOf", "oneOf", "allOf"):
            options = schema.get(key)
            if isinstance(options, list):
                real = [o for o in options if o.get("type") != "null"]
                if len(real) == 1:
                    extra = {k: v for k, v in schema.items() if k != key}
                    schema = {**real[0], **extra}
                    break
        else:
            return schema
    return schema


def _kind(schema: dict[str, Any]) -> Kind | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind is None and "enum" in schema:
        values = schema["enum"]
        kind = "string" if all(isinstance(v, str) for v in values) else None
    if kind is None and "const" in schema:
        kind = "string" if isinstance(schema["const"], str) else None
    if kind in ("number", "integer", "string", "boolean", "array", "object"):
        return kind  # type: ignore[return-value]
    return None


def field_spec(
    name: str, schema: dict[str, Any], root: dict[str, Any], required: bool = False
) -> FieldSpec | None:
    """The spec of one property, or None when its kind cannot be extracted."""
    schema = _resolve(schema, root)
    kind = _kind(schema)
    if kind is None:
        return None
    choices = schema.get("enum")
    if "const" in schema:
        choices = [schema["const"]]
    items = None
    properties: tuple[FieldSpec, ...] = ()
    if kind == "array":
        items = field_spec(f"{name}[]", schema.get("items", {}), root)
        if items is None or items.kind == "array":
            return None
    if kind == "object":
        properties = object_properties(schema, root)
        if not properties:
            return None
    return FieldSpec(
        name=name,
        kind=kind,
        labels=_labels(name, schema),
        required=required,
        minimum=schema.get("minimum"),
        maximum=schema.get("maximum"),
        exclusive_minimum=schema.get("exclusiveMinimum"),
        exclusive_maximum=schema.get("exclusiveMaximum"),
        pattern=schema.get("pattern"),
        choices=tuple(choices) if isinstance(choices, list) else None,
        min_length=schema.get("minLength"),
        max_length=schema.get("maxLength"),
        min_items=schema.get("minItems"),
        max_items=schema.get("maxItems"),
        items=items,
        properties=properties,
    )


def object_properties(
    schema: dict[str, Any], root: dict[str, Any]
) -> tuple[FieldSpec, ...]:
    required = set(schema.get("required", []))
    specs = []
    for name, property_schema in schema.get("properties", {}).items():
        spec = field_spec(name, property_schema, root, name in required)
        if spec is not None:
            specs.append(spec)
    return tuple(specs)


def document_fields(json_schema: dict[str, Any]) -> tuple[list[FieldSpec], list[str]]:
    """Specs of the document's top-level fields, and the names it cannot read."""
    root = _resolve(json_schema, json_schema)
    required = set(root.get("required", []))
    specs, skipped = [], []
    for name, schema in root.get("properties", {}).items():
        spec = field_spec(name, schema, root, name in required)
        if spec is None:
            skipped.append(name)
        else:
            specs.append(spec)
    return specs, skipped
