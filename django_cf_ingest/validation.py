"""Schema validation of model output, and the confidence it earns."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .registry import DocumentTypeSpec

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


@dataclass
class Validated:
    #: Normalised data when valid, else the output as given.
    data: dict[str, Any]
    is_valid: bool
    errors: list[str] = field(default_factory=list)
    #: Share of the schema's fields present and valid, in [0, 1].
    coverage: float = 0.0


def format_errors(exc: ValidationError) -> list[str]:
    messages = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "(root)"
        messages.append(f"{location}: {error['msg']}")
    return messages


def validate_output(spec: DocumentTypeSpec, data: Any) -> Validated:
    if not isinstance(data, dict):
        return Validated(data={}, is_valid=False, errors=["(root): not a JSON object"])
    fields = list(spec.model.model_fields)
    try:
        instance = spec.model.model_validate(data)
    except ValidationError as exc:
        bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        good = [
            name
            for name in fields
            if name not in bad and data.get(name) not in (None, "", [], {})
        ]
        coverage = len(good) / len(fields) if fields else 0.0
        return Validated(
            data=data, is_valid=False, errors=format_errors(exc), coverage=coverage
        )
    normalised = instance.model_dump(mode="json")
    present = [n for n in fields if normalised.get(n) not in (None, "", [], {})]
    coverage = len(present) / len(fields) if fields else 1.0
    return Validated(data=normalised, is_valid=True, coverage=coverage)


def parse_json_text(text: str) -> Any:
    """Find the JSON object in a model's text answer.

    Accepts bare JSON, JSON in a code fence, and JSON with prose around it.
    Raises ``ValueError`` when there is none.
    """
    text = text.strip()
    candidates = [text]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            pass
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            value, _end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("no JSON object found in the model's answer")
