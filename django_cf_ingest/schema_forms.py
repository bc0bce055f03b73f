"""Django forms generated from a document type's pydantic schema.

Each top-level property of the schema becomes a form field of the matching
kind, carrying the constraints the schema declares: numbers with their
minimum and maximum, enums as a select, string patterns, lists of scalars as
one item per line, and anything nested (lists of objects, objects) as JSON.
On top of the field checks, the form validates the whole record with the
pydantic model itself, so what it accepts is what the schema accepts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from pydantic import ValidationError as PydanticValidationError

from .registry import DocumentTypeSpec

#: String values longer than this are edited in a text area.
LONG_TEXT = 60


@dataclass(frozen=True)
class SchemaField:
    """One top-level property of a JSON schema, as the form sees it."""

    name: str
    schema: dict[str, Any]
    required: bool
    nullable: bool
    #: "string", "choice", "number", "integer", "boolean", "date", "lines" or "json".
    kind: str
    #: For "lines": the kind of each item ("string", "choice", "number", "integer").
    item_kind: str = ""
    item_schema: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return str(self.schema.get("title") or self.name.replace("_", " ").capitalize())

    @property
    def description(self) -> str:
        return str(self.schema.get("description") or "")


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref``, keeping the referring schema's own keywords."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return schema
    target = dict(defs.get(ref.rsplit("/", 1)[-1], {}))
    target.update({k: v for k, v in schema.items() if k != "$ref"})
    return target


def _unwrap_null(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``anyOf: [X, {"type": "null"}]`` (an ``Optional``) as ``(X, True)``."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return schema, schema.get("type") == "null"
    others = [o for o in options if o.get("type") != "null"]
    if len(others) != 1 or len(others) == len(options):
        return schema, False
    merged = {k: v for k, v in schema.items() if k != "anyOf"}
    merged.update(others[0])
    return merged, True


def _scalar_kind(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "choice"
    kind = schema.get("type")
    if kind == "string":
        return "date" if schema.get("format") == "date" else "string"
    if kind in ("number", "integer", "boolean"):
        return str(kind)
    return "json"


def schema_fields(json_schema: dict[str, Any]) -> list[SchemaField]:
    """The form fields of a document type's JSON schema, in schema order."""
    defs = json_schema.get("$defs", {})
    required = set(json_schema.get("required", []))
    fields = []
    for name, raw in json_schema.get("properties", {}).items():
        schema, nullable = _unwrap_null(_resolve(raw, defs))
        schema = _resolve(schema, defs)
        kind = _scalar_kind(schema)
        item_kind = ""
        item_schema: dict[str, Any] = {}
        if schema.get("type") == "array":
            item_schema = _resolve(schema.get("items", {}), defs)
            item_kind = _scalar_kind(item_schema)
            if item_kind in ("string", "choice", "number", "integer"):
                kind = "lines"
        fields.append(
            SchemaField(
                name=name,
                schema=schema,
                required=name in required,
                nullable=nullable,
                kind=kind,
                item_kind=item_kind,
                item_schema=item_schema,
            )
        )
    return fields


def tidy_numbers(value: Any) -> Any:
    """Whole floats as ints, through lists and objects, for showing JSON."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [tidy_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: tidy_numbers(item) for key, item in value.items()}
    return value


def display_value(value: Any) -> str:
    """A value as an editor reads it: lists on one line, objects as JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list) and all(
        isinstance(item, str | int | float) for item in value
    ):
        return ", ".join(display_value(item) for item in value) or "—"
    if isinstance(value, dict | list):
        return json.dumps(tidy_numbers(value), ensure_ascii=False)
    return str(value)


def _convert_item(text: str, kind: str, schema: dict[str, Any]) -> Any:
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            raise ValidationError(
                f"“{text}” is not a number.", code="invalid"
            ) from None
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValidationError(
                f"“{text}” is not a whole number.", code="invalid"
            ) from None
    if kind == "choice":
        allowed = {str(option): option for option in schema.get("enum", [])}
        if text not in allowed:
            raise ValidationError(
                f"“{text}” is not one of {', '.join(allowed)}.", code="invalid_choice"
            )
        return allowed[text]
    return text


class LinesField(forms.CharField):
    """A list of scalars, edited one item per line."""

    def __init__(self, *, item_kind: str, item_schema: dict[str, Any], **kwargs: Any):
        self.item_kind = item_kind
        self.item_schema = item_schema
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return "\n".join(display_value(item) for item in value)
        return value

    def to_python(self, value: Any) -> Any:
        if isinstance(value, list):
            return value
        text = super().to_python(value)
        lines = [line.strip() for line in str(text).splitlines()]
        return [
            _convert_item(line, self.item_kind, self.item_schema)
            for line in lines
            if line
        ]

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")


class NumberField(forms.FloatField):
    """A number shown without a trailing ``.0`` when it is whole."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class PrettyJSONField(forms.JSONField):
    """JSON shown indented, so nested records are readable in a text area."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(tidy_numbers(value), ensure_ascii=False, indent=2)


class ChoiceValueField(forms.ChoiceField):
    """A select over an enum whose cleaned value keeps the enum's own type."""

    def __init__(self, *, options: list[Any], **kwargs: Any):
        self.options = {str(option): option for option in options}
        choices = [(key, key) for key in self.options]
        if not kwargs.get("required", True):
            choices.insert(0, ("", "—"))
        super().__init__(choices=choices, **kwargs)

    def clean(self, value: Any) -> Any:
        cleaned = super().clean(value)
        return self.options.get(cleaned) if cleaned != "" else None


def _help_text(spec_field: SchemaField) -> str:
    parts = [spec_field.description]
    schema = spec_field.schema
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        parts.append(f"From {display_value(low)} to {display_value(high)}.")
    elif low is not None:
        parts.append(f"At least {display_value(low)}.")
    elif high is not None:
        parts.append(f"At most {display_value(high)}.")
    if spec_field.kind == "lines":
        parts.append("One per line.")
        if spec_field.item_kind == "choice":
            options = ", ".join(str(o) for o in spec_field.item_schema["enum"])
            parts.append(f"Each one of {options}.")
    if spec_field.kind == "json":
        parts.append("JSON.")
    return " ".join(part for part in parts if part)


def build_field(spec_field: SchemaField, *, initial: Any = None) -> forms.Field:
    """The Django form field for one schema property."""
    schema = spec_field.schema
    common: dict[str, Any] = {
        "label": spec_field.title,
        "help_text": _help_text(spec_field),
        "required": spec_field.required and not spec_field.nullable,
    }
    kind = spec_field.kind
    if kind in ("number", "integer"):
        attrs = {"step": "any"} if kind == "number" else {}
        field_class = NumberField if kind == "number" else forms.IntegerField
        return field_class(
            min_value=schema.get("minimum"),
            max_value=schema.get("maximum"),
            widget=forms.NumberInput(attrs=attrs),
            **common,
        )
    if kind == "choice":
        return ChoiceValueField(options=list(schema["enum"]), **common)
    if kind == "boolean":
        if common["required"]:
            return forms.BooleanField(**{**common, "required": False})
        return forms.NullBooleanField(**common)
    if kind == "date":
        return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
    if kind == "lines":
        return LinesField(
            item_kind=spec_field.item_kind,
            item_schema=spec_field.item_schema,
            **common,
        )
    if kind == "json":
        return PrettyJSONField(
            widget=forms.Textarea(attrs={"rows": 8, "class": "cf-ingest-json"}),
            **common,
        )
    validators = []
    if isinstance(schema.get("pattern"), str):
        validators.append(
            RegexValidator(schema["pattern"], f"Must match {schema['pattern']}.")
        )
    long_text = isinstance(initial, str) and (
        len(initial) > LONG_TEXT or "\n" in initial
    )
    return forms.CharField(
        min_length=schema.get("minLength"),
        max_length=schema.get("maxLength"),
        validators=validators,
        widget=forms.Textarea(attrs={"rows": 3}) if long_text else forms.TextInput,
        strip=True,
        empty_value=None if spec_field.nullable else "",
        **common,
    )


class SchemaForm(forms.Form):
    """The fields of one document type, checked as the pydantic model checks."""

    def __init__(self, spec: DocumentTypeSpec, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "data")
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.schema_fields = schema_fields(spec.json_schema)
        for spec_field in self.schema_fields:
            self.fields[spec_field.name] = build_field(
                spec_field, initial=self.initial.get(spec_field.name)
            )
        self.values: dict[str, Any] = {}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        data: dict[str, Any] = {}
        for spec_field in self.schema_fields:
            name = spec_field.name
            if name not in cleaned:
                continue  # The field has its own error already.
            value = cleaned[name]
            if isinstance(value, date):
                value = value.isoformat()
            if value is None and not spec_field.nullable:
                continue  # Left empty: the schema's default applies.
            data[name] = value
        if self.errors:
            return cleaned
        try:
            record = self.spec.model.model_validate(data)
        except PydanticValidationError as exc:
            self._add_schema_errors(exc)
            return cleaned
        dumped = record.model_dump(mode="json")
        self.values = {name: dumped[name] for name in data if name in dumped}
        return cleaned

    def _add_schema_errors(self, exc: PydanticValidationError) -> None:
        for error in exc.errors(include_url=False):
            location = error["loc"]
            name = str(location[0]) if location else ""
            message = error["msg"]
            if len(location) > 1:
                message = ".".join(str(p) for p in location[1:]) + f": {message}"
            if name in self.fields and name not in self.errors:
                self.add_error(name, message)
            elif name not in self.fields:
                self.add_error(None, f"{name or '(record)'}: {message}")
