"""Text boxes on a page and how they sit relative to one another.

OCR gives a box per run of text; a PDF's text layer is cut into the same kind
of boxes. Coordinates grow right and down; pages are stacked one under the
other, so a box's position is unique across the document.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TextBox:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    #: Recognition confidence in [0, 1]; 1.0 for text read from a text layer.
    score: float = 1.0
    page: int = 0

    @property
    def height(self) -> float:
        return max(self.y1 - self.y0, 1.0)

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2

    def span_x(self, start: int, end: int) -> tuple[float, float]:
        """Estimated horizontal extent of the characters ``start:end``."""
        length = max(len(self.text), 1)
        width = self.x1 - self.x0
        return (self.x0 + width * start / length, self.x0 + width * end / length)

    def as_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "box": [round(v, 1) for v in (self.x0, self.y0, self.x1, self.y1)],
            "score": round(self.score, 4),
            "page": self.page,
        }


def same_row(a: TextBox, b: TextBox) -> bool:
    """Whether two boxes sit on one line of the page."""
    if a.page != b.page:
        return False
    return abs(a.cy - b.cy) < 0.5 * min(a.height, b.height) + 0.1 * max(
        a.height, b.height
    )


def rows(boxes: Sequence[TextBox]) -> list[list[int]]:
    """Indexes of the boxes grouped into lines, top to bottom, left to right."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i].page, boxes[i].cy))
    grouped: list[list[int]] = []
    for index in order:
        box = boxes[index]
        if grouped and any(same_row(boxes[j], box) for j in grouped[-1]):
            grouped[-1].append(index)
        else:
            grouped.append([index])
    return [sorted(row, key=lambda i: boxes[i].x0) for row in grouped]


def reading_text(boxes: Sequence[TextBox]) -> str:
    """All the text, a line per row and a blank line between pages."""
    lines: list[str] = []
    page = None
    for row in rows(boxes):
        first = boxes[row[0]]
        if page is not None and first.page != page:
            lines.append("")
        page = first.page
        lines.append("  ".join(boxes[i].text for i in row))
    return "\n".join(lines)


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return min(a1, b1) - max(a0, b0)


def stack_pages(pages: Iterable[list[TextBox]]) -> list[TextBox]:
    """Put each page's boxes under the previous page's, with a wide gap."""
    stacked: list[TextBox] = []
    offset = 0.0
    for number, boxes in enumerate(pages):
        bottom = 0.0
        for box in boxes:
            stacked.append(
                TextBox(
                    box.text,
                    box.x0,
                    box.y0 + offset,
                    box.x1,
                    box.y1 + offset,
                    box.score,
                    number,
                )
            )
            bottom = max(bottom, box.y1)
        offset += bottom + 1000.0
    return stacked
