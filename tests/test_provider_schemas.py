"""Document type schemas shaped for the vendors, and the prompt built from them."""

from __future__ import annotations

import datetime
from typing import Literal, Optional

import pytest
from pydantic import BaseModel, Field

from django_cf_ingest.providers.prompts import extraction_prompt, field_lines
from django_cf_ingest.providers.schemas import (
    UnsupportedSchema,
    gemini_schema,
    inline_refs,
)
from django_cf_ingest.registry import get_spec
from tests.fakes.fixtures import extraction_request
from tests.fakes.gemini import schema_errors

BIG_FIVE_GEMINI = {
    "type": "OBJECT",
    "description": "BigFive",
    "properties": {
        "openness": {
            "type": "NUMBER",
            "description": "Openness to experience.",
            "minimum": 0,
            "maximum": 100,
        },
        "conscientiousness": {
            "type": "NUMBER",
            "description": "Conscientiousness",
            "minimum": 0,
            "maximum": 100,
        },
        "extraversion": {
            "type": "NUMBER",
            "description": "Extroversion.",
            "minimum": 0,
            "maximum": 100,
        },
        "agreeableness": {
            "type": "NUMBER",
            "description": "Agreeableness",
            "minimum": 0,
            "maximum": 100,
        },
        "neuroticism": {
            "type": "NUMBER",
            "description": "Emotional stability, inverted.",
            "minimum": 0,
            "maximum": 100,
        },
    },
    "required": [
        "openness",
        "conscientiousness",
        "extraversion",
        "agreeableness",
        "neuroticism",
    ],
    "propertyOrdering": [
        "openness",
        "conscientiousness",
        "extraversion",
        "agreeableness",
        "neuroticism",
    ],
}


def spec_schema(slug: str) -> dict:
    spec = get_spec(slug)
    assert spec is not None
    return spec.json_schema


def test_big_five_schema_for_gemini() -> None:
    assert gemini_schema(spec_schema("big-five")) == BIG_FIVE_GEMINI


@pytest.mark.parametrize(
    "slug",
    [
        "big-five",
        "sixteen-personalities",
        "keirsey",
        "riasec",
        "strengths-profile",
        "hexaco",
        "generic",
    ],
)
def test_every_demo_type_is_accepted_by_gemini(slug: str) -> None:
    converted = gemini_schema(spec_schema(slug))

    assert schema_errors(converted, "response_schema") == []
    text = repr(converted)
    for dropped in ("$ref", "$defs", "'title'", "'default'", "additionalProperties"):
        assert dropped not in text


def test_raw_pydantic_schema_is_rejected_by_the_fake() -> None:
    """The fake knows Gemini's subset: sending pydantic's schema would fail."""
    errors = schema_errors(spec_schema("generic"), "response_schema")

    assert any('Unknown name "$defs"' in e for e in errors)
    assert any("type" in e and '"object"' in e for e in errors)


def test_refs_are_inlined_and_nested_objects_converted() -> None:
    converted = gemini_schema(spec_schema("generic"))

    scores = converted["properties"]["scores"]
    assert scores["type"] == "ARRAY"
    assert scores["items"] == {
        "type": "OBJECT",
        "description": "NamedScore",
        "properties": {
            "name": {"type": "STRING", "description": "Name"},
            "score": {"type": "NUMBER", "description": "Score"},
        },
        "required": ["name", "score"],
        "propertyOrdering": ["name", "score"],
    }
    # Fields with defaults are optional.
    assert "required" not in converted


def test_string_enums_patterns_and_item_bounds() -> None:
    converted = gemini_schema(spec_schema("riasec"))

    assert converted["properties"]["code"]["pattern"] == "^[RIASEC]{2,6}$"
    letters = converted["properties"]["top_letters"]
    assert letters["items"] == {
        "type": "STRING",
        "enum": ["R", "I", "A", "S", "E", "C"],
    }
    assert (letters["minItems"], letters["maxItems"]) == (1, 6)


class _Odd(BaseModel):
    # The old spelling of an optional field, as older code writes it.
    maybe_count: Optional[int] = Field(  # noqa: UP045
        None, description="Count, if printed."
    )
    maybe_label: str | None = None
    level: Literal[1, 2, 3] = Field(title="Level")
    taken_on: datetime.date = Field(title="Date taken")
    when: datetime.datetime
    ratio: float = Field(gt=0, lt=1)
    either: int | str


def test_optional_literal_format_and_exclusive_bounds() -> None:
    converted = gemini_schema(_Odd.model_json_schema())
    props = converted["properties"]

    assert props["maybe_count"] == {
        "type": "INTEGER",
        "description": "Count, if printed.",
        "nullable": True,
    }
    assert props["maybe_label"] == {
        "type": "STRING",
        "description": "Maybe Label",
        "nullable": True,
    }
    assert props["level"] == {
        "type": "INTEGER",
        "description": "Level One of: 1, 2, 3.",
    }
    assert props["taken_on"] == {
        "type": "STRING",
        "description": "Date taken Format: date.",
    }
    assert props["when"]["format"] == "date-time"
    assert (props["ratio"]["minimum"], props["ratio"]["maximum"]) == (0, 1)
    assert props["either"]["anyOf"] == [{"type": "INTEGER"}, {"type": "STRING"}]
    assert converted["required"] == ["level", "taken_on", "when", "ratio", "either"]
    assert schema_errors(converted, "response_schema") == []


class _Node(BaseModel):
    name: str
    children: list[_Node] = []


class _Free(BaseModel):
    extra: dict[str, str]


class _Anything(BaseModel):
    value: object


@pytest.mark.parametrize("model", [_Node, _Free, _Anything])
def test_what_the_subset_cannot_express(model: type[BaseModel]) -> None:
    with pytest.raises(UnsupportedSchema):
        gemini_schema(model.model_json_schema())


def test_inline_refs_keeps_json_schema_keywords() -> None:
    inlined = inline_refs(spec_schema("generic"))

    assert "$defs" not in inlined
    assert inlined["properties"]["scores"]["items"]["type"] == "object"
    assert inlined["properties"]["summary"]["default"] == ""


def test_field_lines_name_kind_and_meaning() -> None:
    lines = field_lines(spec_schema("big-five"))

    assert lines[0] == (
        "- openness (number from 0 to 100, required): Openness. Openness to experience."
    )
    assert lines[1] == (
        "- conscientiousness (number from 0 to 100, required): Conscientiousness."
    )


def test_field_lines_for_lists_enums_and_optional_fields() -> None:
    lines = field_lines(spec_schema("generic"))

    assert lines == [
        "- result_type (string, optional): Type. Kind of result.",
        "- summary (string, optional): Summary.",
        "- scores (list of object, optional): Scores.",
    ]
    riasec = field_lines(spec_schema("riasec"))
    assert riasec[1].startswith("- top_letters (list of one of R, I, A, S, E, C, ")


def test_prompt_has_instructions_fields_and_rules() -> None:
    prompt = extraction_prompt(extraction_request(b"x"))

    assert prompt.startswith("Read a Big Five (OCEAN) result sheet")
    assert "Return these fields:\n- openness (number from 0 to 100" in prompt
    assert prompt.endswith("do not guess.")
