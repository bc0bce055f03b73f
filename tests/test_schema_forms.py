"""Forms generated from pydantic schemas."""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

import pytest
from django import forms
from pydantic import BaseModel, Field

from django_cf_ingest.registry import DocumentTypeSpec
from django_cf_ingest.schema_forms import SchemaForm, display_value, schema_fields


class Item(BaseModel):
    label: str
    weight: float


class Everything(BaseModel):
    code: str = Field(pattern=r"^[A-Z]{3}$", title="Code", description="Three.")
    score: Annotated[float, Field(ge=0, le=10)]
    count: int = Field(ge=1)
    level: Literal["low", "high"]
    flags: list[Literal["a", "b"]] = Field(default_factory=list, max_length=2)
    weights: list[float] = Field(default_factory=list)
    done: bool
    note: str | None = None
    ratio: float | None = None
    taken_on: datetime.date | None = None
    items: list[Item] = Field(default_factory=list)


SPEC = DocumentTypeSpec(slug="everything", name="Everything", model=Everything)


def post(**values: str) -> dict[str, str]:
    base = {
        "code": "ABC",
        "score": "7.5",
        "count": "2",
        "level": "high",
        "flags": "a\nb",
        "weights": "1\n2.5\n",
        "done": "on",
        "note": "",
        "ratio": "",
        "taken_on": "",
        "items": '[{"label": "x", "weight": 1}]',
    }
    base.update(values)
    return {f"data-{key}": value for key, value in base.items()}


def test_fields_and_their_kinds() -> None:
    kinds = {
        f.name: (f.kind, f.required, f.nullable)
        for f in schema_fields(SPEC.json_schema)
    }

    assert kinds == {
        "code": ("string", True, False),
        "score": ("number", True, False),
        "count": ("integer", True, False),
        "level": ("choice", True, False),
        "flags": ("lines", False, False),
        "weights": ("lines", False, False),
        "done": ("boolean", True, False),
        "note": ("string", False, True),
        "ratio": ("number", False, True),
        "taken_on": ("date", False, True),
        "items": ("json", False, False),
    }


def test_form_fields_carry_the_schema_constraints() -> None:
    form = SchemaForm(SPEC)

    score = form.fields["score"]
    assert isinstance(score, forms.FloatField)
    assert (score.min_value, score.max_value) == (0, 10)
    assert form.fields["count"].min_value == 1
    assert [c[0] for c in form.fields["level"].choices] == ["low", "high"]
    assert "Three." in form.fields["code"].help_text
    assert "One per line." in form.fields["flags"].help_text
    assert not form.fields["note"].required


def test_valid_post_gives_json_values() -> None:
    form = SchemaForm(SPEC, data=post())

    assert form.is_valid(), form.errors
    assert form.values == {
        "code": "ABC",
        "score": 7.5,
        "count": 2,
        "level": "high",
        "flags": ["a", "b"],
        "weights": [1.0, 2.5],
        "done": True,
        "note": None,
        "ratio": None,
        "taken_on": None,
        "items": [{"label": "x", "weight": 1.0}],
    }


def test_dates_are_iso_strings() -> None:
    form = SchemaForm(SPEC, data=post(taken_on="2026-03-04"))

    assert form.is_valid(), form.errors
    assert form.values["taken_on"] == "2026-03-04"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("code", "abcd", "Must match ^[A-Z]{3}$."),
        ("score", "11", "less than or equal to 10"),
        ("level", "medium", "Select a valid choice."),
        ("flags", "a\nc", "“c” is not one of a, b."),
        ("flags", "a\nb\na", "List should have at most 2 items"),
        ("weights", "1\nheavy", "“heavy” is not a number."),
        ("items", '[{"label": "x"}]', "0.weight: Field required"),
        ("items", "{not json", "Enter a valid JSON."),
    ],
)
def test_invalid_values_are_refused_on_their_field(
    field: str, value: str, message: str
) -> None:
    form = SchemaForm(SPEC, data=post(**{field: value}))

    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


def test_initial_values_are_shown_as_an_editor_types_them() -> None:
    form = SchemaForm(
        SPEC,
        initial={"score": 7.0, "weights": [1.0, 2.5], "items": [{"label": "x"}]},
    )

    assert form["score"].value() == 7.0
    assert 'value="7"' in str(form["score"])
    assert form.fields["weights"].prepare_value([1.0, 2.5]) == "1\n2.5"
    assert "&quot;label&quot;: &quot;x&quot;" in str(form["items"])


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (True, "Yes"),
        (42.0, "42"),
        (4.5, "4.5"),
        (["R", "I"], "R, I"),
        ([], "—"),
        ([{"name": "E"}], '[{"name": "E"}]'),
        ("text", "text"),
    ],
)
def test_display_value(value: object, shown: str) -> None:
    assert display_value(value) == shown
