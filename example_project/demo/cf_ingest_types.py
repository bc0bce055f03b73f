"""The document types of the demo site: six personality-test result sheets and a
generic fallback. Field titles and descriptions are what the models (and the
offline OCR extractor) read, so they name the labels printed on the sheets."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from django_cf_ingest.registry import register

Score = Annotated[float, Field(ge=0, le=100)]


@register(
    "sixteen-personalities",
    name="16 Personalities",
    instructions="Read a 16Personalities (NERIS) result sheet: the type code with "
    "its variant, the type name, and the five trait percentages.",
)
class SixteenPersonalities(BaseModel):
    type_code: str = Field(
        pattern=r"^[EI][SN][TF][JP]-[AT]$",
        title="Type code",
        description="Four letters and the variant, e.g. INTJ-A (aliases: type, code).",
    )
    type_label: str = Field(
        title="Type label",
        description="The type's name, e.g. Architect (aliases: personality, role).",
    )
    variant: Literal["Assertive", "Turbulent"] = Field(
        title="Variant", description="Assertive or Turbulent (alias: identity variant)."
    )
    mind: Score = Field(title="Mind", description="Introverted/Extraverted %.")
    energy: Score = Field(title="Energy", description="Intuitive/Observant %.")
    nature: Score = Field(title="Nature", description="Thinking/Feeling %.")
    tactics: Score = Field(title="Tactics", description="Judging/Prospecting %.")
    identity: Score = Field(title="Identity", description="Assertive/Turbulent %.")
    summary: str = Field(default="", title="Summary")


@register(
    "big-five",
    name="Big Five",
    instructions="Read a Big Five (OCEAN) result sheet: the five domain scores, "
    "each a percentage from 0 to 100.",
)
class BigFive(BaseModel):
    openness: Score = Field(title="Openness", description="Openness to experience.")
    conscientiousness: Score = Field(title="Conscientiousness")
    extraversion: Score = Field(title="Extraversion", description="Extroversion.")
    agreeableness: Score = Field(title="Agreeableness")
    neuroticism: Score = Field(
        title="Neuroticism", description="Emotional stability, inverted."
    )


@register(
    "keirsey",
    name="Keirsey Temperament Sorter",
    instructions="Read a Keirsey Temperament Sorter result: the four-letter type, "
    "the temperament, and the summary.",
)
class Keirsey(BaseModel):
    type_code: str = Field(
        pattern=r"^[EI][SN][TF][JP]$",
        title="Type",
        description="Four-letter type, e.g. ENFP (aliases: type code, your type).",
    )
    temperament: Literal["Guardian", "Artisan", "Idealist", "Rational"] = Field(
        title="Temperament"
    )
    summary: str = Field(default="", title="Summary", description="Description.")


@register(
    "riasec",
    name="RIASEC / Holland code",
    instructions="Read a Holland Code (RIASEC) result: the code, the letters in "
    "order of strength, and the six interest scores.",
)
class Riasec(BaseModel):
    code: str = Field(
        pattern=r"^[RIASEC]{2,6}$",
        title="Holland code",
        description="Two to six letters of R, I, A, S, E, C (alias: your code).",
    )
    top_letters: list[Literal["R", "I", "A", "S", "E", "C"]] = Field(
        min_length=1,
        max_length=6,
        title="Top letters",
        description="Letters ordered from strongest (alias: ranking, order).",
    )
    realistic: Score = Field(title="Realistic", description="R score.")
    investigative: Score = Field(title="Investigative", description="I score.")
    artistic: Score = Field(title="Artistic", description="A score.")
    social: Score = Field(title="Social", description="S score.")
    enterprising: Score = Field(title="Enterprising", description="E score.")
    conventional: Score = Field(title="Conventional", description="C score.")


@register(
    "strengths-profile",
    name="StrengthsProfile",
    instructions="Read a StrengthsProfile report: realised strengths, learned "
    "behaviours, weaknesses, and the summary.",
)
class StrengthsProfile(BaseModel):
    top_strengths: list[str] = Field(
        min_length=1,
        title="Top strengths",
        description="Realised strengths (alias: strengths).",
    )
    learned_behaviours: list[str] = Field(
        default_factory=list,
        title="Learned behaviours",
        description="Alias: learned behaviors.",
    )
    weaknesses: list[str] = Field(default_factory=list, title="Weaknesses")
    summary: str = Field(default="", title="Summary")


@register(
    "hexaco",
    name="HEXACO",
    instructions="Read a HEXACO Personality Inventory result: the six domain "
    "scores, each a percentage from 0 to 100.",
)
class Hexaco(BaseModel):
    honesty_humility: Score = Field(
        title="Honesty-Humility", description="Alias: honesty humility, H."
    )
    emotionality: Score = Field(title="Emotionality")
    extraversion: Score = Field(title="Extraversion", description="eXtraversion.")
    agreeableness: Score = Field(title="Agreeableness")
    conscientiousness: Score = Field(title="Conscientiousness")
    openness: Score = Field(
        title="Openness to Experience", description="Alias: openness."
    )


class NamedScore(BaseModel):
    name: str = Field(title="Name")
    score: float = Field(title="Score")


@register(
    "generic",
    name="Generic result",
    instructions="Read any assessment result: what kind of result it is, a short "
    "summary, and every named score on it.",
    confidence_threshold=0.5,
)
class GenericResult(BaseModel):
    result_type: str = Field(default="", title="Type", description="Kind of result.")
    summary: str = Field(default="", title="Summary")
    scores: list[NamedScore] = Field(default_factory=list, title="Scores")
