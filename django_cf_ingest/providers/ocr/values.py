"""Reading one field's value out of a piece of text, held to its constraints.

Each reader returns a ``Reading`` (the value and how sure the reading is) or
None when the text holds no acceptable value for the field.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from .fields import FieldSpec, words

#: A number, with an optional "%" or "/ 100" after it.
NUMBER = re.compile(
    r"(?<![\w.,])(?P<sign>-)?(?P<int>\d{1,9})(?:(?P<sep>[.,])(?P<frac>\d{1,6}))?"
    r"(?![\d])"
    r"(?:\s*(?P<percent>%)|\s*/\s*(?P<out_of>\d+(?:\.\d+)?))?"
)
#: How far past a bound (as a share of the range) a number is still clamped.
CLAMP_TOLERANCE = 0.02
#: Separators between the items of a list written on one line.
ITEM_SEPARATORS = re.compile(r"\s*(?:[,;|•·▪■>→]|\s-\s)\s*")
#: Bullets, dashes and "1." / "b)" counters in front of a list item.
LIST_MARKER = re.compile(
    r"^(?:[^\w(]+|\(?\d{1,2}[.)]\s*(?=[^\W\d])|\(?[a-z][.)]\s+(?=\w))+"
)
#: Hyphens, dashes and the minus sign, all read as "-".
_DASHES = str.maketrans(
    dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-")
)
#: What may stand between a label and its value (after ``normalise``).
_LABEL_SEPARATORS = " \t:-=|>"


@dataclass(frozen=True)
class Reading:
    value: Any
    quality: float = 1.0


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_DASHES)
    return re.sub(r"\s+", " ", text).strip()


def strip_separators(text: str) -> str:
    return text.strip(_LABEL_SEPARATORS)


def _to_number(match: re.Match[str]) -> float:
    if match["sep"] == "," and len(match["frac"]) == 3:
        value = float(match["int"] + match["frac"])  # a thousands separator
    else:
        value = float(f"{match['int']}.{match['frac'] or 0}")
    return -value if match["sign"] else value


def numbers(text: str) -> list[tuple[float, re.Match[str]]]:
    return [(_to_number(m), m) for m in NUMBER.finditer(normalise(text))]


def tidy_number(value: float) -> int | float:
    """Whole numbers as int, so 42.0 is stored as 42."""
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def hold_to_range(value: float, spec: FieldSpec) -> Reading | None:
    """Accept a number inside the field's range, clamp one just outside it."""
    low = spec.minimum
    high = spec.maximum
    if spec.exclusive_minimum is not None and value <= spec.exclusive_minimum:
        return None
    if spec.exclusive_maximum is not None and value >= spec.exclusive_maximum:
        return None
    span = (high - low) if low is not None and high is not None else 100.0
    tolerance = abs(span) * CLAMP_TOLERANCE
    if low is not None and value < low:
        return (
            Reading(tidy_number(float(low)), 0.7) if low - value <= tolerance else None
        )
    if high is not None and value > high:
        if value - high <= tolerance:
            return Reading(tidy_number(float(high)), 0.7)
        return None
    return Reading(tidy_number(value))


def read_number(text: str, spec: FieldSpec) -> Reading | None:
    """The first number in ``text`` that fits the field, if it comes early."""
    text = normalise(text)
    for value, match in numbers(text):
        before = words(text[: match.start()])
        if len(before) > 3:
            return None
        if spec.kind == "integer" and not value.is_integer():
            continue
        if spec.choices is not None and value not in spec.choices:
            continue
        reading = hold_to_range(value, spec)
        if reading is None:
            continue
        quality = reading.quality * (1.0 if not before else 0.9)
        return Reading(reading.value, quality)
    return None


def read_choice(text: str, spec: FieldSpec) -> Reading | None:
    """The first of the field's choices written in ``text``, as a whole word."""
    text = normalise(text)
    assert spec.choices is not None
    best: tuple[int, Any] | None = None
    for choice in spec.choices:
        choice_text = str(choice)
        exact = re.search(rf"(?<!\w){re.escape(choice_text)}(?!\w)", text)
        if exact is None and len(choice_text) > 1:
            exact = re.search(
                rf"(?<!\w){re.escape(choice_text)}(?!\w)", text, re.IGNORECASE
            )
        if exact and (best is None or exact.start() < best[0]):
            best = (exact.start(), choice)
    if best is None:
        return None
    before = words(text[: best[0]])
    return Reading(best[1], 1.0 if len(before) <= 1 else 0.8)


def _pattern_candidates(text: str) -> list[str]:
    """Each word of ``text`` (hyphenated parts joined), then the whole text."""
    text = re.sub(r"(?<=\w)\s*-\s*(?=\w)", "-", normalise(text))
    tokens = [token.strip(".,;:()[]{}\"'") for token in text.split(" ")]
    return [*(token for token in tokens if token), text]


def read_pattern(text: str, spec: FieldSpec) -> Reading | None:
    assert spec.pattern is not None
    try:
        pattern = re.compile(spec.pattern)
    except re.error:
        return None
    candidates = _pattern_candidates(text)
    for quality, options in (
        (1.0, candidates),
        (0.85, [c.upper() for c in candidates]),
    ):
        for candidate in options:
            if pattern.search(candidate) and _fits_length(candidate, spec):
                return Reading(candidate, quality)
    return None


def _fits_length(value: str, spec: FieldSpec) -> bool:
    if spec.min_length is not None and len(value) < spec.min_length:
        return False
    return spec.max_length is None or len(value) <= spec.max_length


def read_text(text: str, spec: FieldSpec) -> Reading | None:
    value = strip_separators(normalise(text))
    if not value or not any(ch.isalnum() for ch in value):
        return None
    if not _fits_length(value, spec):
        return None
    return Reading(value)


_TRUE = {"yes", "true", "y", "1", "on", "x", "✓"}
_FALSE = {"no", "false", "n", "0", "off"}


def read_boolean(text: str, spec: FieldSpec) -> Reading | None:
    tokens = words(text)
    if not tokens:
        return None
    if tokens[0] in _TRUE:
        return Reading(True)
    if tokens[0] in _FALSE:
        return Reading(False)
    return None


def read_scalar(text: str, spec: FieldSpec) -> Reading | None:
    """A single value of the field's kind (not a list or an object)."""
    if spec.kind in ("number", "integer"):
        return read_number(text, spec)
    if spec.kind == "boolean":
        return read_boolean(text, spec)
    if spec.kind != "string":
        return None
    if spec.choices is not None:
        return read_choice(text, spec)
    if spec.pattern:
        return read_pattern(text, spec)
    return read_text(text, spec)


def strip_marker(text: str) -> str:
    return LIST_MARKER.sub("", normalise(text)).strip()


def split_items(text: str, item: FieldSpec) -> list[str]:
    """The items of a list written on one line."""
    text = normalise(text)
    pieces = [strip_marker(p) for p in ITEM_SEPARATORS.split(text)]
    pieces = [p for p in pieces if p]
    single_letters = item.choices is not None and all(
        len(str(c)) == 1 for c in item.choices
    )
    if single_letters:
        # "S A E" or "SAE": one letter per item.
        letters = [ch for piece in pieces for ch in piece if not ch.isspace()]
        if all(ch in item.choices for ch in letters):  # type: ignore[operator]
            return letters
    return pieces


def read_item(piece: str, item: FieldSpec) -> Reading | None:
    """One list item: the whole piece must be the value, not merely mention it."""
    reading = read_scalar(piece, item)
    if reading is None:
        return None
    if item.kind == "string" and words(str(reading.value)) != words(piece):
        return None
    return reading


def read_items(pieces: list[str], spec: FieldSpec) -> Reading | None:
    """A list field from its item texts: every item must be valid."""
    assert spec.items is not None
    values = []
    qualities = []
    for piece in pieces:
        reading = read_item(piece, spec.items)
        if reading is None:
            return None
        values.append(reading.value)
        qualities.append(reading.quality)
    if not values:
        return None
    if spec.max_items is not None and len(values) > spec.max_items:
        return None
    if spec.min_items is not None and len(values) < spec.min_items:
        return None
    return Reading(values, min(qualities))


def read_record(text: str, spec: FieldSpec) -> Reading | None:
    """One object of a list of objects from a table row: text and numbers.

    String properties take the words around the numbers, numeric properties
    take the numbers in order, so "Dominance 64" fills a name and a score.
    """
    text = normalise(strip_marker(text))
    found = numbers(text)
    numeric = [p for p in spec.properties if p.kind in ("number", "integer")]
    textual = [p for p in spec.properties if p.kind == "string"]
    if len(found) < len([p for p in numeric if p.required]):
        return None
    record: dict[str, Any] = {}
    taken = found[-len(numeric) :] if numeric else []
    for prop, (value, _match) in zip(numeric, taken, strict=False):
        if prop.kind == "integer" and not value.is_integer():
            return None
        held = hold_to_range(value, prop)
        if held is None:
            return None
        record[prop.name] = held.value
    rest = text
    for _value, match in reversed(taken):
        rest = rest[: match.start()] + " " + rest[match.end() :]
    rest = strip_separators(normalise(rest))
    if textual:
        reading = read_scalar(rest, textual[0])
        if reading is None:
            if textual[0].required:
                return None
        else:
            record[textual[0].name] = reading.value
    if any(p.required and p.name not in record for p in spec.properties):
        return None
    return Reading(record) if record else None
