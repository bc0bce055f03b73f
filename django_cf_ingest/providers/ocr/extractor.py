"""Schema-guided field extraction from positioned text.

The extractor knows nothing of particular documents. It finds where each
field's labels are printed, reads candidate values from around each label
(after it on the same line, in the next box to the right, under it, and for
lists and paragraphs the lines that follow), holds every candidate to the
field's constraints, and then hands out values best-first so that no piece
of text feeds two fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .fields import FieldSpec, Label, words
from .layout import TextBox, overlap, rows, same_row
from .values import (
    Reading,
    normalise,
    read_item,
    read_items,
    read_record,
    read_scalar,
    split_items,
    strip_marker,
    strip_separators,
)

_WORD = re.compile(r"[^\W_]+")
#: Words that may come before a label at the start of a line.
_LEAD_WORDS = frozenset({"your", "the", "my"})

#: How much each place a value was read from is trusted.
SOURCE_WEIGHTS = {
    "inline": 1.0,  # after the label and a colon, in the same box
    "inline-bare": 0.95,  # after the label without a colon
    "right": 0.97,  # the next box to the right
    "right-2": 0.8,
    "below": 0.9,  # the box under the label
    "below-2": 0.75,
    "left": 0.6,  # a lone number just before the label
    "anywhere": 0.5,  # the only text in the document that fits
}
#: Certainty of a value by where it was read from, for the confidence.
SOURCE_CERTAINTY = {"left": 0.8, "anywhere": 0.7}


@dataclass(frozen=True)
class Hit:
    """A field's label found in a box."""

    field: int
    box: int
    start: int
    end: int
    strength: float
    anchored: bool
    colon: bool
    capital: bool


@dataclass(frozen=True)
class Candidate:
    field: int
    value: Any
    score: float
    certainty: float
    source: str
    #: Pieces of text the value is made of: (box, offset), offset -1 = whole box.
    claims: frozenset[tuple[int, int]]
    #: Boxes read, label included, whose OCR scores count.
    boxes: tuple[int, ...]


@dataclass
class FieldResult:
    value: Any
    certainty: float
    source: str
    boxes: tuple[int, ...]


@dataclass
class Extraction:
    data: dict[str, Any] = field(default_factory=dict)
    found: dict[str, FieldResult] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            name: {
                "source": result.source,
                "certainty": round(result.certainty, 3),
                "boxes": list(result.boxes),
            }
            for name, result in self.found.items()
        }


def _edit_distance_at_most_one(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :]
    return a[i:] == b[i + 1 :]


def _word_matches(word: str, label_word: str) -> tuple[bool, bool]:
    """(matches, exactly): one typo is allowed in a long word."""
    if word == label_word:
        return True, True
    if len(label_word) >= 7 and _edit_distance_at_most_one(word, label_word):
        return True, False
    return False, False


class Extractor:
    def __init__(self, fields: Sequence[FieldSpec], boxes: Sequence[TextBox]) -> None:
        self.fields = list(fields)
        self.boxes = [
            TextBox(normalise(b.text), b.x0, b.y0, b.x1, b.y1, b.score, b.page)
            for b in boxes
        ]
        self.rows = rows(self.boxes)
        self.row_of = {i: n for n, row in enumerate(self.rows) for i in row}
        self.words = [
            [(m.group().casefold(), m.start(), m.end()) for m in _WORD.finditer(b.text)]
            for b in self.boxes
        ]
        self.hits = [hit for i in range(len(self.boxes)) for hit in self._find_hits(i)]
        self.hits_in = {i: [h for h in self.hits if h.box == i] for i in self.box_ids}
        self.label_boxes = {
            h.box for h in self.hits if h.anchored and self._before_words(h) == 0
        }
        self.page_right: dict[int, float] = {}
        for box in self.boxes:
            self.page_right[box.page] = max(self.page_right.get(box.page, 0), box.x1)

    @property
    def box_ids(self) -> range:
        return range(len(self.boxes))

    # Labels.

    def _match(self, box: int, at: int, label: Label) -> tuple[int, float] | None:
        """Words used and strength when ``label`` starts at word ``at``."""
        tokens = self.words[box]
        size = len(label.words)
        if at + size <= len(tokens):
            exact = True
            for offset, label_word in enumerate(label.words):
                ok, same = _word_matches(tokens[at + offset][0], label_word)
                if not ok:
                    break
                exact = exact and same
            else:
                return size, label.strength * (1.0 if exact else 0.9)
        if size > 1 and tokens[at][0] == "".join(label.words):
            return 1, label.strength * 0.95
        return None

    def _find_hits(self, box: int) -> list[Hit]:
        tokens = self.words[box]
        text = self.boxes[box].text
        found: list[tuple[int, int, int, float]] = []  # field, first, last, strength
        for index, spec in enumerate(self.fields):
            for label in spec.labels:
                for at in range(len(tokens)):
                    matched = self._match(box, at, label)
                    if matched is None:
                        continue
                    size, strength = matched
                    if not self._short_label_ok(box, at, size, label):
                        continue
                    found.append((index, at, at + size - 1, strength))

        # Longer labels win over labels inside them ("identity variant" over
        # "identity"); the same words may still name two fields.
        found.sort(key=lambda f: (-(f[2] - f[1]), -f[3], f[1]))
        chosen: list[tuple[int, int, int, float]] = []
        for candidate in found:
            _, first, last, _ = candidate
            clash = [c for c in chosen if not (last < c[1] or first > c[2])]
            if all((c[1], c[2]) == (first, last) for c in clash) and not any(
                c[0] == candidate[0] for c in clash
            ):
                chosen.append(candidate)
        chosen.sort(key=lambda f: f[1])

        hits = []
        ends = {c[2] for c in chosen}
        for index, first, last, strength in chosen:
            start, end = tokens[first][1], tokens[last][2]
            after = text[end:].lstrip()
            colon = after.startswith(":")
            lead = [t[0] for t in tokens[:first]]
            previous = tokens[first - 1][0] if first else ""
            anchored = (
                all(word in _LEAD_WORDS for word in lead)
                or colon
                or (first - 1) in ends
                or previous.isdigit()
            )
            letter = next((ch for ch in text[start:end] if ch.isalpha()), "")
            hits.append(
                Hit(index, box, start, end, strength, anchored, colon, letter.isupper())
            )
        return hits

    def _short_label_ok(self, box: int, at: int, size: int, label: Label) -> bool:
        """A one- or two-letter label counts only on its own or before a value."""
        if size > 1 or len(label.words[0]) > 2:
            return True
        tokens = self.words[box]
        if at != 0:
            return False
        text = self.boxes[box].text
        after = text[tokens[0][2] :].strip()
        return not after or after[0] == ":" or after[0].isdigit()

    def _before_words(self, hit: Hit) -> int:
        lead = [w for w, start, _ in self.words[hit.box] if start < hit.start]
        return len([w for w in lead if w not in _LEAD_WORDS])

    def _hit_span(self, hit: Hit) -> tuple[float, float]:
        return self.boxes[hit.box].span_x(hit.start, hit.end)

    def _next_hit_start(self, hit: Hit) -> int | None:
        later = [
            h.start for h in self.hits_in[hit.box] if h.start >= hit.end and h.anchored
        ]
        return min(later) if later else None

    # Places around a label.

    def _right_of(self, hit: Hit) -> list[int]:
        box = self.boxes[hit.box]
        _, x1 = self._hit_span(hit)
        found = []
        for index in self.rows[self.row_of[hit.box]]:
            other = self.boxes[index]
            if index == hit.box or other.x0 < x1 - 0.3 * box.height:
                continue
            if index in self.label_boxes:
                break
            found.append(index)
        return found[:2]

    def _below(self, hit: Hit) -> list[int]:
        box = self.boxes[hit.box]
        x0, x1 = self._hit_span(hit)
        found = []
        for index, other in enumerate(self.boxes):
            if index == hit.box or other.page != box.page:
                continue
            if other.y0 < box.y1 - 0.25 * min(box.height, other.height):
                continue
            gap = other.y0 - box.y1
            if gap > 2.5 * max(box.height, other.height):
                continue
            lined_up = abs(other.x0 - x0) <= 1.5 * box.height
            if overlap(x0, x1, other.x0, other.x1) > 0 or lined_up:
                found.append((gap, other.x0, index))
        found.sort()
        result = []
        for _, _, index in found:
            if index in self.label_boxes:
                break
            result.append(index)
        return result[:2]

    def _left_of(self, hit: Hit) -> int | None:
        box = self.boxes[hit.box]
        if self._before_words(hit):
            return None
        before = [
            i
            for i in self.rows[self.row_of[hit.box]]
            if self.boxes[i].x1 <= box.x0 + 0.3 * box.height and i != hit.box
        ]
        if not before:
            return None
        index = before[-1]
        if index in self.label_boxes or len(self.words[index]) > 1:
            return None
        return index

    def _paragraph(self, start: int, x_start: float) -> list[int]:
        """Boxes that continue a wrapped paragraph begun in box ``start``.

        A continuation line starts under the value or, as with hanging
        text, under the start of the box the value began in.
        """
        chain: list[int] = []
        current = self.boxes[start]
        margins = (x_start, current.x0)
        block_right = self.page_right[current.page]
        while current.x1 >= x_start + 0.6 * (block_right - x_start):
            height = current.height
            options = []
            for index, other in enumerate(self.boxes):
                if index == start or index in chain or other.page != current.page:
                    continue
                if other.y0 < current.cy or other.y0 - current.y1 > 0.9 * height:
                    continue
                if min(abs(other.x0 - x) for x in margins) > 1.5 * height:
                    continue
                if not 0.7 <= other.height / height <= 1.4:
                    continue
                options.append((other.y0, index))
            if not options:
                break
            index = min(options)[1]
            if index in self.label_boxes or self._has_left_neighbour(index):
                break
            chain.append(index)
            current = self.boxes[index]
        return chain

    def _has_left_neighbour(self, index: int) -> bool:
        box = self.boxes[index]
        return any(
            self.boxes[i].x1 <= box.x0
            for i in self.rows[self.row_of[index]]
            if i != index
        )

    def _column_rows(self, hit: Hit) -> Iterator[list[int]]:
        """Rows of boxes under a heading, within its column, until a gap."""
        box = self.boxes[hit.box]
        x0, _ = self._hit_span(hit)
        height = box.height
        # Other headings on the heading's line start other columns; a box
        # belongs to the column whose heading starts nearest to it.
        others = [
            self._hit_span(h)[0]
            for h in self.hits
            if h.anchored and h != hit and same_row(self.boxes[h.box], box)
        ]

        def in_column(other: TextBox) -> bool:
            mine = abs(other.x0 - x0)
            return other.x0 >= x0 - 1.5 * height and all(
                mine <= abs(other.x0 - start) for start in others
            )

        members = [
            i
            for i, other in enumerate(self.boxes)
            if i != hit.box
            and other.page == box.page
            and other.y0 >= box.y1 - 0.25 * min(height, other.height)
            and in_column(other)
        ]
        members.sort(key=lambda i: self.boxes[i].cy)
        grouped: list[list[int]] = []
        for index in members:
            if grouped and same_row(self.boxes[grouped[-1][0]], self.boxes[index]):
                grouped[-1].append(index)
            else:
                grouped.append([index])

        bottom = box.y1
        first = True
        for row in grouped:
            row.sort(key=lambda i: self.boxes[i].x0)
            top = min(self.boxes[i].y0 for i in row)
            row_height = max(self.boxes[i].height for i in row)
            limit = 2.5 * max(height, row_height) if first else 1.5 * row_height
            if top - bottom > limit or any(i in self.label_boxes for i in row):
                return
            bottom = max(self.boxes[i].y1 for i in row)
            if not any(ch.isalnum() for i in row for ch in self.boxes[i].text):
                continue
            first = False
            yield row

    # Candidates.

    def _candidate(
        self,
        hit: Hit | None,
        spec_index: int,
        reading: Reading | None,
        source: str,
        claims: set[tuple[int, int]],
        boxes: Sequence[int],
    ) -> Candidate | None:
        if reading is None:
            return None
        strength = hit.strength if hit else 1.0
        capital = 1.0 if hit is None or hit.capital else 0.85
        score = strength * capital * SOURCE_WEIGHTS[source] * reading.quality
        certainty = reading.quality * strength * SOURCE_CERTAINTY.get(source, 1.0)
        label_boxes = (hit.box,) if hit else ()
        return Candidate(
            field=spec_index,
            value=reading.value,
            score=score,
            certainty=certainty,
            source=source,
            claims=frozenset(claims),
            boxes=tuple(dict.fromkeys((*label_boxes, *boxes))),
        )

    def _read_text_from(
        self, spec: FieldSpec, text: str, box: int, x_start: float
    ) -> tuple[Reading | None, list[int]]:
        """A value starting in ``box``; free text and lists may run on below."""
        more: list[int] = []
        if spec.is_free_text or (
            spec.kind == "array" and text.rstrip().endswith((",", ";"))
        ):
            more = self._paragraph(box, x_start)
            if more:
                text = " ".join([text, *(self.boxes[i].text for i in more)])
        if spec.kind == "array" and spec.items is not None:
            if spec.items.kind == "object":
                return None, []
            return read_items(split_items(text, spec.items), spec), more
        if spec.kind in ("array", "object"):
            return None, []
        return read_scalar(text, spec), more

    def _candidates_for(self, hit: Hit) -> Iterator[Candidate | None]:
        spec = self.fields[hit.field]
        box = self.boxes[hit.box]
        next_start = self._next_hit_start(hit)
        region = box.text[hit.end : next_start]
        value_text = strip_separators(region)
        last_in_box = next_start is None

        if value_text:
            offset = hit.end + (len(region) - len(region.lstrip(" :-=|>")))
            x_start = box.span_x(offset, offset + 1)[0]
            reading, more = self._read_text_from(spec, value_text, hit.box, x_start)
            source = "inline" if hit.colon else "inline-bare"
            if not hit.colon and spec.is_free_text:
                # Prose that merely starts with a label word is no value.
                reading = _discount(reading, 0.75)
            claims = {(hit.box, offset), *((i, -1) for i in more)}
            yield self._candidate(hit, hit.field, reading, source, claims, more)

        if last_in_box and spec.kind != "object":
            for rank, index in enumerate(self._right_of(hit)):
                other = self.boxes[index]
                reading, more = self._read_text_from(spec, other.text, index, other.x0)
                claims = {(index, -1), *((i, -1) for i in more)}
                source = "right" if rank == 0 else "right-2"
                yield self._candidate(
                    hit, hit.field, reading, source, claims, [index, *more]
                )

        if spec.kind == "array":
            yield self._list_below(hit, spec)
        else:
            for rank, index in enumerate(self._below(hit)):
                other = self.boxes[index]
                reading, more = self._read_text_from(spec, other.text, index, other.x0)
                claims = {(index, -1), *((i, -1) for i in more)}
                source = "below" if rank == 0 else "below-2"
                yield self._candidate(
                    hit, hit.field, reading, source, claims, [index, *more]
                )

        left = self._left_of(hit) if spec.kind in ("number", "integer") else None
        if left is not None:
            reading = read_scalar(self.boxes[left].text, spec)
            yield self._candidate(hit, hit.field, reading, "left", {(left, -1)}, [left])

    def _list_below(self, hit: Hit, spec: FieldSpec) -> Candidate | None:
        """A list under its heading: one item per line, or a table of rows."""
        assert spec.items is not None
        values: list[Any] = []
        quality = 1.0
        used: list[int] = []
        for row in self._column_rows(hit):
            text = " ".join(self.boxes[i].text for i in row)
            if spec.items.kind == "object":
                reading = read_record(text, spec.items)
                if reading is None:
                    break
                values.append(reading.value)
            else:
                pieces = split_items(text, spec.items)
                readings = [read_item(p, spec.items) for p in pieces]
                if not pieces or any(r is None for r in readings):
                    break
                values += [r.value for r in readings if r is not None]
                quality = min([quality, *(r.quality for r in readings if r)])
            used += row
        if not values:
            return None
        if spec.max_items is not None and len(values) > spec.max_items:
            return None
        if spec.min_items is not None and len(values) < spec.min_items:
            return None
        reading = Reading(values, quality)
        claims = {(i, -1) for i in used}
        return self._candidate(hit, hit.field, reading, "below", claims, used)

    def _anywhere(self, index: int, spec: FieldSpec) -> Candidate | None:
        """A choice or pattern field from the one text in the document that fits."""
        if spec.kind != "string" or not (spec.choices or spec.pattern):
            return None
        seen: dict[Any, int] = {}
        for box_index, box in enumerate(self.boxes):
            for word in _pieces(box.text):
                reading = read_scalar(word, spec)
                if reading is not None and words(str(reading.value)) == words(word):
                    seen.setdefault(reading.value, box_index)
        if len(seen) != 1:
            return None
        value, box_index = next(iter(seen.items()))
        return self._candidate(
            None, index, Reading(value), "anywhere", set(), [box_index]
        )

    def candidates(self) -> list[Candidate]:
        found = [
            candidate
            for hit in self.hits
            if hit.anchored
            for candidate in self._candidates_for(hit)
            if candidate is not None
        ]
        for index, spec in enumerate(self.fields):
            candidate = self._anywhere(index, spec)
            if candidate is not None:
                found.append(candidate)
        return found

    def extract(self) -> Extraction:
        """Hand out values best-first; a piece of text feeds one field only."""
        candidates = self.candidates()
        order = {box: n for n, box in enumerate(i for row in self.rows for i in row)}
        candidates.sort(
            key=lambda c: (-c.score, min((order[b] for b in c.boxes), default=0))
        )
        result = Extraction()
        claimed: set[tuple[int, int]] = set()
        for candidate in candidates:
            spec = self.fields[candidate.field]
            if spec.name in result.found:
                continue
            whole = {(box, -1) for box, _ in candidate.claims}
            if candidate.claims & claimed or whole & claimed:
                continue
            if any((box, -1) in candidate.claims for box, _ in claimed):
                continue
            claimed |= candidate.claims
            result.data[spec.name] = candidate.value
            result.found[spec.name] = FieldResult(
                candidate.value, candidate.certainty, candidate.source, candidate.boxes
            )
        result.data = {
            spec.name: result.data[spec.name]
            for spec in self.fields
            if spec.name in result.data
        }
        return result


def _discount(reading: Reading | None, factor: float) -> Reading | None:
    if reading is None:
        return None
    return Reading(reading.value, reading.quality * factor)


def _pieces(text: str) -> list[str]:
    """Words of a line, with hyphenated and spaced-out codes kept whole."""
    text = re.sub(r"(?<=\w)\s*-\s*(?=\w)", "-", normalise(text))
    return [strip_marker(p.strip(".,;:()[]")) for p in text.split(" ") if p.strip()]


def extract_fields(fields: Sequence[FieldSpec], boxes: Sequence[TextBox]) -> Extraction:
    return Extractor(fields, boxes).extract()


def confidence(
    fields: Sequence[FieldSpec],
    extraction: Extraction,
    boxes: Sequence[TextBox],
    invalid: frozenset[str] = frozenset(),
    unread_weight: float = 0.0,
) -> float:
    """How far to trust an extraction, in [0, 1].

    The weighted share of the schema that was found and validated, each field
    counted by how sure its reading was, times the mean recognition score of
    the text it came from. ``unread_weight`` counts fields of kinds the
    extractor cannot read.
    """
    total = sum(spec.weight for spec in fields) + unread_weight
    if not total:
        return 0.0
    earned = 0.0
    used: set[int] = set()
    for spec in fields:
        result = extraction.found.get(spec.name)
        if result is None or spec.name in invalid:
            continue
        earned += spec.weight * min(result.certainty, 1.0)
        used.update(result.boxes)
    if not used:
        return 0.0
    recognition = sum(boxes[i].score for i in used) / len(used)
    return round(earned / total * recognition, 4)
