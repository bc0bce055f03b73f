"""Schema-guided field extraction on synthetic text boxes (no OCR engine)."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from django_cf_ingest.providers.ocr.extractor import (
    Extraction,
    confidence,
    extract_fields,
)
from django_cf_ingest.providers.ocr.fields import (
    WEAK,
    aliases,
    document_fields,
    plain_description,
    words,
)
from django_cf_ingest.providers.ocr.layout import TextBox, reading_text, stack_pages
from django_cf_ingest.providers.ocr.values import (
    numbers,
    read_items,
    read_number,
    split_items,
    strip_marker,
)

Score = float


def box(text: str, x: float, y: float, h: float = 20.0, score: float = 1.0) -> TextBox:
    """A box as OCR would give it: about 10 px per character."""
    return TextBox(text, x, y, x + 10.0 * len(text), y + h, score)


def run(model: type[BaseModel], boxes: list[TextBox]) -> Extraction:
    fields, _unread = document_fields(model.model_json_schema())
    return extract_fields(fields, boxes)


class Personality(BaseModel):
    type_code: str = Field(
        pattern=r"^[EI][SN][TF][JP]-[AT]$",
        title="Type code",
        description="Four letters and the variant, e.g. INTJ-A (aliases: type, code).",
    )
    variant: Literal["Assertive", "Turbulent"] = Field(
        title="Variant", description="Assertive or Turbulent (alias: identity variant)."
    )
    identity: Score = Field(ge=0, le=100, title="Identity")
    mind: Score = Field(ge=0, le=100, title="Mind")
    summary: str = Field(default="", title="Summary")


class Domains(BaseModel):
    honesty_humility: Score = Field(
        ge=0,
        le=100,
        title="Honesty-Humility",
        description="Alias: honesty humility, H.",
    )
    openness: Score = Field(
        ge=0, le=100, title="Openness to Experience", description="Alias: openness."
    )
    extraversion: Score = Field(ge=0, le=100, title="Extraversion")
    neuroticism: Score = Field(
        ge=0, le=100, title="Neuroticism", description="Emotional stability, inverted."
    )


class Counted(BaseModel):
    sessions: int = Field(ge=1, le=12, title="Sessions")
    rating: float = Field(gt=0, lt=5, title="Rating")


class Strengths(BaseModel):
    top_strengths: list[str] = Field(
        min_length=1, title="Top strengths", description="Realised strengths."
    )
    learned_behaviours: list[str] = Field(
        default_factory=list,
        title="Learned behaviours",
        description="Alias: learned behaviors.",
    )
    weaknesses: list[str] = Field(default_factory=list, title="Weaknesses")
    summary: str = Field(default="", title="Summary")


class Holland(BaseModel):
    code: str = Field(
        pattern=r"^[RIASEC]{2,6}$",
        title="Holland code",
        description="(alias: your code)",
    )
    top_letters: list[Literal["R", "I", "A", "S", "E", "C"]] = Field(
        min_length=1, max_length=6, title="Top letters", description="Alias: ranking."
    )


class NamedScore(BaseModel):
    name: str
    score: float


class Generic(BaseModel):
    result_type: str = Field(default="", title="Type")
    scores: list[NamedScore] = Field(default_factory=list, title="Scores")


# Labels from the schema.


def test_aliases_come_from_descriptions() -> None:
    assert aliases("Four letters, e.g. INTJ-A (aliases: type, code).") == [
        "type",
        "code",
    ]
    assert aliases("Alias: honesty humility, H.") == ["honesty humility", "H"]
    assert aliases("Letters ordered from strongest (alias: ranking, order).") == [
        "ranking",
        "order",
    ]
    assert aliases("Emotional stability, inverted.") == []


def test_plain_descriptions_are_weak_labels() -> None:
    assert plain_description("Openness to experience.") == "Openness to experience"
    assert plain_description("Realised strengths (alias: strengths).") == (
        "Realised strengths"
    )
    assert plain_description("Emotional stability, inverted.") is None
    assert plain_description("Introverted/Extraverted %.") is None

    fields, _ = document_fields(Domains.model_json_schema())
    labels = {
        f.name: {label.words: label.strength for label in f.labels} for f in fields
    }
    assert labels["honesty_humility"][("honesty", "humility")] == 1.0
    assert labels["honesty_humility"][("h",)] == 1.0
    assert labels["openness"][("openness",)] == 1.0
    assert labels["openness"][("openness", "to", "experience")] == 1.0
    assert ("emotional", "stability", "inverted") not in labels["neuroticism"]
    strengths, _ = document_fields(Strengths.model_json_schema())
    assert strengths[0].labels[-1].words == ("realised", "strengths")
    assert strengths[0].labels[-1].strength == WEAK


def test_schema_kinds_constraints_and_nested_objects() -> None:
    class Odd(BaseModel):
        maybe: int | None = Field(default=None, ge=1, le=5)
        mapping: dict[str, int] = Field(default_factory=dict)
        pairs: list[list[int]] = Field(default_factory=list)

    fields, unread = document_fields(Odd.model_json_schema())
    assert [f.name for f in fields] == ["maybe"]
    maybe = fields[0]
    assert (maybe.kind, maybe.minimum, maybe.maximum, maybe.required) == (
        "integer",
        1,
        5,
        False,
    )
    assert unread == ["mapping", "pairs"]

    generic, _ = document_fields(Generic.model_json_schema())
    scores = generic[1]
    assert scores.kind == "array"
    assert scores.items is not None
    assert [(p.name, p.kind) for p in scores.items.properties] == [
        ("name", "string"),
        ("score", "number"),
    ]


# Values.


def test_numbers_read_percentages_fractions_and_separators() -> None:
    assert [value for value, _ in numbers("73% Introverted")] == [73]
    assert [value for value, _ in numbers("42/100 and 7 / 10")] == [42, 7]
    assert [value for value, _ in numbers("66,5 then 1,000 adults")] == [66.5, 1000]
    assert [value for value, _ in numbers("-3.25 ISFP-T")] == [-3.25]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("73", 73),
        ("73.5%", 73.5),
        ("42/100", 42),
        ("100.4", 100),  # just past the bound: clamped
        ("-0.5", 0),
        ("130", None),  # far out of range: rejected
        ("130 then 64", 64),  # the next number that fits
        ("your percentile rank is 88", None),  # too far into prose
    ],
)
def test_numbers_are_held_to_the_field_range(text: str, expected: Any) -> None:
    fields, _ = document_fields(Domains.model_json_schema())
    reading = read_number(text, fields[0])
    assert (reading.value if reading else None) == expected


def test_clamped_numbers_are_less_certain() -> None:
    fields, _ = document_fields(Domains.model_json_schema())
    exact, clamped = read_number("100", fields[0]), read_number("101", fields[0])
    assert exact is not None
    assert clamped is not None
    assert exact.value == clamped.value == 100
    assert clamped.quality < exact.quality


def test_integer_and_exclusive_bounds() -> None:
    result = run(
        Counted,
        [
            box("Sessions: 4.5", 0, 0),
            box("Sessions 6", 0, 40),
            box("Rating: 5", 0, 80),
            box("Rating 4.2", 0, 120),
        ],
    )
    assert result.data == {"sessions": 6, "rating": 4.2}


def test_list_items_and_markers() -> None:
    fields, _ = document_fields(Holland.model_json_schema())
    letters = fields[1].items
    assert letters is not None
    assert split_items("S > A > E", letters) == ["S", "A", "E"]
    assert split_items("S>A>E", letters) == ["S", "A", "E"]
    assert split_items("S, A, E", letters) == ["S", "A", "E"]
    assert split_items("SAE", letters) == ["S", "A", "E"]
    assert strip_marker("■ Legacy") == "Legacy"
    assert strip_marker("1.Resolver") == "Resolver"
    assert strip_marker("2) Work Ethic") == "Work Ethic"
    assert strip_marker("b) Drive") == "Drive"


# Layouts.


def test_label_and_value_on_one_line_with_or_without_colon() -> None:
    result = run(
        Personality,
        [
            box("Type code: ENFP-T", 0, 0),
            box("Identity variant: Turbulent", 0, 40),
            box("Identity 77% Turbulent", 0, 80),
            box("Mind", 0, 120),
            box("62% Extraverted", 300, 122),
        ],
    )
    assert result.data == {
        "type_code": "ENFP-T",
        "variant": "Turbulent",
        "identity": 77,
        "mind": 62,
    }
    assert result.found["mind"].source == "right"


def test_values_under_their_labels_in_a_table() -> None:
    # A header row of labels, merged by OCR into one box, values below.
    boxes = [
        box("Openness  Extraversion", 100, 0),
        box("Honesty-Humility", 400, 0),
        box("81.5", 110, 40, h=28),
        box("27", 230, 40, h=28),
        box("64", 420, 40, h=28),
    ]
    result = run(Domains, boxes)
    assert result.data == {
        "honesty_humility": 64,
        "openness": 81.5,
        "extraversion": 27,
    }
    assert {r.source for r in result.found.values()} == {"below"}


def test_aliases_in_upper_case_cards() -> None:
    result = run(
        Domains,
        [
            box("HONESTY HUMILITY", 0, 0, h=12),
            box("66%", 0, 24, h=36),
            box("OPENNESS", 300, 0, h=12),
            box("89%", 300, 24, h=36),
        ],
    )
    assert result.data == {"honesty_humility": 66, "openness": 89}


def test_ocr_typos_in_long_labels_are_tolerated() -> None:
    result = run(Domains, [box("Extravertion 58", 0, 0)])
    assert result.data == {"extraversion": 58}
    assert result.found["extraversion"].certainty < 1.0


def test_patterns_pick_the_matching_word() -> None:
    result = run(
        Personality,
        [box("Personality type: ISTJ - A Logistician", 0, 0)],
    )
    assert result.data["type_code"] == "ISTJ-A"


def test_pattern_and_choice_found_without_a_label_when_unique() -> None:
    boxes = [box("INTJ-A", 0, 0, h=60), box("Assertive", 0, 80)]
    result = run(Personality, boxes)
    assert result.data == {"type_code": "INTJ-A", "variant": "Assertive"}
    assert result.found["type_code"].source == "anywhere"

    ambiguous = run(Personality, [*boxes, box("ENFP-T or INTJ-A", 0, 120)])
    assert "type_code" not in ambiguous.data


def test_choices_are_matched_without_regard_to_case() -> None:
    result = run(Personality, [box("VARIANT: ASSERTIVE", 0, 0)])
    assert result.data == {"variant": "Assertive"}
    assert "variant" not in run(Personality, [box("Variant: Calm", 0, 0)]).data


def test_short_labels_need_a_value_right_after_them() -> None:
    assert run(Domains, [box("H 72", 0, 0)]).data == {"honesty_humility": 72}
    assert run(Domains, [box("H is for 72", 0, 0)]).data == {}


def test_a_label_in_prose_is_not_a_value() -> None:
    boxes = [
        box("Strengths summary report", 0, 0),
        box("Top strengths", 0, 60),
        box("• Curiosity", 0, 100),
        box("• Drive", 0, 130),
        box("Summary", 0, 200),
        box("You keep a group moving toward its aim.", 0, 240),
    ]
    result = run(Strengths, boxes)
    assert result.data == {
        "top_strengths": ["Curiosity", "Drive"],
        "summary": "You keep a group moving toward its aim.",
    }


def test_lists_in_columns_stop_at_the_next_heading() -> None:
    boxes = [
        box("Realised Strengths", 0, 0),
        box("Learned Behaviours", 300, 0),
        box("■ Legacy", 0, 40),
        box("■ Drive", 300, 40),
        box("■ Planful", 0, 70),
        box("■ Enabler", 300, 70),
        box("■ Judgement", 0, 100),
        box("Weaknesses", 0, 160),
        box("1. Resolver", 0, 200),
        box("2.Work Ethic", 0, 225),
    ]
    result = run(Strengths, boxes)
    assert result.data == {
        "top_strengths": ["Legacy", "Planful", "Judgement"],
        "learned_behaviours": ["Drive", "Enabler"],
        "weaknesses": ["Resolver", "Work Ethic"],
    }
    assert result.found["top_strengths"].certainty == pytest.approx(WEAK)


def test_comma_separated_list_running_onto_the_next_line() -> None:
    boxes = [
        box("Top strengths: Competitive, Rapport Builder, Compassion,", 0, 0),
        box("Persistence, Persuasion", 0, 26),
        box("Learned behaviors: Esteem Builder, Writer", 0, 80),
    ]
    result = run(Strengths, boxes)
    assert result.data == {
        "top_strengths": [
            "Competitive",
            "Rapport Builder",
            "Compassion",
            "Persistence",
            "Persuasion",
        ],
        "learned_behaviours": ["Esteem Builder", "Writer"],
    }


def test_list_items_must_be_whole_values() -> None:
    fields, _ = document_fields(Holland.model_json_schema())
    assert read_items(["S", "A"], fields[1]) is not None
    assert read_items(["S", "Art"], fields[1]) is None
    assert read_items(["S", "A is second"], fields[1]) is None


def test_enum_lists_and_pattern_codes() -> None:
    result = run(
        Holland,
        [
            box("Holland Code Career Interest Profile", 0, 0, h=30),
            box("Your code: SAE", 0, 50),
            box("Ranking: S > A > E", 0, 80),
        ],
    )
    assert result.data == {"code": "SAE", "top_letters": ["S", "A", "E"]}
    assert result.found["code"].source == "inline"


def test_wrapped_paragraph_is_joined_but_stops_at_other_rows() -> None:
    boxes = [
        box("Type code", 0, 0),
        box("ISFP-T", 200, 0),
        box("Summary", 0, 40),
        box("You build trust quickly in new groups and you", 200, 40),
        box("like to finish what you start.", 200, 64),
        box("Mind", 0, 120),
        box("75% Introverted", 200, 120),
    ]
    result = run(Personality, boxes)
    assert result.data["summary"] == (
        "You build trust quickly in new groups and you like to finish what you start."
    )
    assert result.data["type_code"] == "ISFP-T"
    assert result.data["mind"] == 75


def test_a_value_is_given_to_one_field_only() -> None:
    # "64" sits right of Openness and under Extraversion's label.
    boxes = [
        box("Extraversion", 0, 0),
        box("Openness", 0, 40),
        box("64", 200, 40),
    ]
    result = run(Domains, boxes)
    assert result.data == {"openness": 64}


def test_number_printed_before_its_label() -> None:
    result = run(Domains, [box("58", 0, 0), box("Neuroticism", 60, 0)])
    assert result.data == {"neuroticism": 58}
    assert result.found["neuroticism"].source == "left"


def test_table_of_named_scores_under_a_heading() -> None:
    boxes = [
        box("Type: DISC profile", 0, 0),
        box("Scores", 0, 60),
        box("Dominance", 0, 100),
        box("26", 280, 100),
        box("Influence", 0, 130),
        box("49/100", 260, 130),
        box("Steadiness 8", 0, 160),
        box("Page 1 of 1", 0, 400),
    ]
    result = run(Generic, boxes)
    assert result.data == {
        "result_type": "DISC profile",
        "scores": [
            {"name": "Dominance", "score": 26},
            {"name": "Influence", "score": 49},
            {"name": "Steadiness", "score": 8},
        ],
    }
    Generic.model_validate(result.data)


# Confidence, pages and text.


def test_confidence_counts_fields_found_and_recognition_scores() -> None:
    fields, _ = document_fields(Domains.model_json_schema())
    full = [
        box("Honesty-Humility 70", 0, 0),
        box("Openness 60", 0, 40),
        box("Extraversion 50", 0, 80),
        box("Neuroticism 40", 0, 120),
    ]
    sure = confidence(fields, extract_fields(fields, full), full)
    assert sure == 1.0

    half = full[:2]
    assert confidence(fields, extract_fields(fields, half), half) == 0.5

    blurry = [TextBox(b.text, b.x0, b.y0, b.x1, b.y1, 0.8) for b in full]
    assert confidence(fields, extract_fields(fields, blurry), blurry) == 0.8

    result = extract_fields(fields, full)
    rejected = confidence(fields, result, full, invalid=frozenset({"openness"}))
    assert rejected == 0.75
    assert confidence(fields, result, full, unread_weight=4.0) == 0.5
    assert confidence(fields, Extraction(), []) == 0.0


def test_pages_are_stacked_and_read_in_order() -> None:
    first = [box("Right", 300, 2), box("Left", 0, 0)]
    second = [box("Next page", 0, 0)]
    stacked = stack_pages([first, second])
    assert [b.page for b in stacked] == [0, 0, 1]
    assert stacked[2].y0 > stacked[0].y1
    assert reading_text(stacked) == "Left  Right\n\nNext page"


def test_words_fold_case_and_split_on_punctuation() -> None:
    assert words("Honesty-Humility (H):") == ("honesty", "humility", "h")
