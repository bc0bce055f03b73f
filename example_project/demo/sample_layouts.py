"""Page layouts of the sample documents.

Each layout draws one kind of result sheet from a dict of values, in points
with the origin at the top left. They differ on purpose: label and value on
one line, two-column tables, bar charts, labels above values, header bands,
cards, columns of lists and comma-separated lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import sample_data
from .sample_canvas import Canvas, Weight, wrap
from .sample_pdf import Color

NewPage = Callable[[float, float], Canvas]
Layout = Callable[[NewPage, dict[str, Any]], None]

A4 = (595.0, 842.0)
GREY: Color = (108, 117, 125)
TRACK: Color = (226, 230, 234)
WHITE: Color = (255, 255, 255)


def paragraph(
    canvas: Canvas,
    x: float,
    top: float,
    text: str,
    width: float,
    size: float = 11,
    leading: float = 1.5,
    weight: Weight = "regular",
) -> float:
    """Draw wrapped text; return the y below its last line."""
    for line in wrap(text, width, size, weight):
        canvas.text(x, top, line, size, weight)
        top += size * leading
    return top


def bar(
    canvas: Canvas, x0: float, x1: float, top: float, value: float, fill: Color
) -> None:
    canvas.rect(x0, top, x1, top + 9, TRACK)
    canvas.rect(x0, top, x0 + (x1 - x0) * value / 100, top + 9, fill)


def number(value: float) -> str:
    return f"{value:g}"


def sixteen_band(new_page: NewPage, data: dict[str, Any]) -> None:
    """Header band with labels above values, a trait bar chart, a summary."""
    page = new_page(520, 700)
    teal, light = (30, 74, 88), (176, 208, 214)
    page.rect(0, 0, page.width, 150, teal)
    page.text(32, 20, "16 PERSONALITIES TEST RESULTS", 9, "bold", light)
    page.text(32, 54, "TYPE CODE", 9, "bold", light)
    page.text(32, 70, data["type_code"], 34, "bold", WHITE)
    page.text(300, 54, "PERSONALITY", 9, "bold", light)
    page.text(300, 72, data["type_label"], 20, "bold", WHITE)

    page.text(32, 172, f"Variant: {data['variant']}", 12)
    page.text(32, 210, "Trait scores", 13, "bold")
    sides = sample_data.trait_sides(data)
    top = 244.0
    for key in ("mind", "energy", "nature", "tactics", "identity"):
        page.text(32, top, key.title(), 11, "bold")
        bar(page, 120, 360, top + 5, data[key], (54, 142, 160))
        page.text(376, top, f"{data[key]}% {sides[key]}", 11)
        top += 40
    page.text(32, top + 10, "Summary", 13, "bold")
    paragraph(page, 32, top + 36, data["summary"], 440)


def sixteen_table(new_page: NewPage, data: dict[str, Any]) -> None:
    """A report with a shaded two-column table; the summary wraps in its cell."""
    page = new_page(*A4)
    page.text(56, 48, "Personality Assessment Report", 20, "bold")
    page.text(56, 82, "Prepared for: Jordan Lee", 10, fill=GREY)
    page.text(360, 82, "Date: 14 March 2024", 10, fill=GREY)
    page.line(56, 104, 539, 104, GREY, 0.8)

    sides = sample_data.trait_sides(data)
    rows: list[tuple[str, list[str]]] = [
        ("Type code", [data["type_code"]]),
        ("Role", [data["type_label"]]),
        ("Identity variant", [data["variant"]]),
    ]
    rows += [
        (key.title(), [f"{data[key]}% {sides[key]}"])
        for key in ("mind", "energy", "nature", "tactics", "identity")
    ]
    rows.append(("Summary", wrap(data["summary"], 280, 11)))
    top = 124.0
    for index, (label, lines) in enumerate(rows):
        height = 14 + 16 * len(lines)
        if index % 2 == 0:
            page.rect(56, top, 539, top + height, (241, 243, 245))
        page.text(68, top + 8, label, 11, "bold")
        for number_, line in enumerate(lines):
            page.text(236, top + 8 + 16 * number_, line, 11)
        top += height
    page.text(56, 800, "Page 1 of 1", 8, fill=GREY)


def big_five_bars(new_page: NewPage, data: dict[str, Any]) -> None:
    """Label left, percentage right, a bar underneath."""
    page = new_page(520, 480)
    page.text(32, 26, "Big Five Personality Test", 20, "bold")
    page.text(32, 60, "Your results on the five OCEAN domains", 11, fill=GREY)
    colours = [(231, 111, 81), (244, 162, 97), (42, 157, 143), (38, 70, 83)]
    top = 104.0
    for index, key in enumerate(
        (
            "openness",
            "conscientiousness",
            "extraversion",
            "agreeableness",
            "neuroticism",
        )
    ):
        page.text(32, top, key.title(), 12, "bold")
        page.text(488, top, f"{number(data[key])}%", 13, "bold", anchor="right")
        bar(page, 32, 488, top + 24, data[key], colours[index % len(colours)])
        top += 62


def big_five_columns(new_page: NewPage, data: dict[str, Any]) -> None:
    """A table whose header row holds the labels, with the values under them."""
    page = new_page(*A4)
    page.text(56, 56, "OCEAN Personality Inventory", 20, "bold")
    intro = (
        "This report lists your percentile on each of the five broad domains "
        "of personality, measured with the long form of the inventory."
    )
    paragraph(page, 56, 96, intro, 470)
    labels = (
        ("openness", "Openness"),
        ("conscientiousness", "Conscientiousness"),
        ("extraversion", "Extroversion"),
        ("agreeableness", "Agreeableness"),
        ("neuroticism", "Neuroticism"),
    )
    page.rect(40, 170, 555, 200, (233, 236, 239))
    width = (555 - 40) / len(labels)
    for index, (key, label) in enumerate(labels):
        centre = 40 + width * (index + 0.5)
        page.text(centre, 179, label, 9, "bold", anchor="centre")
        page.text(centre, 214, number(data[key]), 16, anchor="centre")
    page.line(40, 246, 555, 246, GREY, 0.6)
    note = "Scores are percentiles compared with a norm group of 1,000 adults."
    page.text(56, 258, note, 8.5, fill=GREY)


def keirsey_cards(new_page: NewPage, data: dict[str, Any]) -> None:
    """Header band, two cards with a label above a large value, a description."""
    page = new_page(520, 520)
    purple, lavender = (92, 58, 120), (240, 234, 246)
    page.rect(0, 0, page.width, 64, purple)
    page.text(32, 18, "Keirsey Temperament Sorter", 18, "bold", WHITE)
    page.rect(32, 92, 240, 196, lavender)
    page.text(48, 108, "YOUR TYPE", 9, "bold", purple)
    page.text(48, 128, data["type_code"], 36, "bold")
    page.rect(262, 92, 488, 196, lavender)
    page.text(278, 108, "TEMPERAMENT", 9, "bold", purple)
    page.text(278, 136, data["temperament"], 24, "bold")
    page.text(32, 226, "Description", 13, "bold")
    end = paragraph(page, 32, 252, data["summary"], 440, leading=1.55)
    page.text(32, end + 24, "Scored with the KTS-II short form.", 9, fill=GREY)


def riasec_lines(new_page: NewPage, data: dict[str, Any]) -> None:
    """Label: value lines, then an interest table with scores out of 100."""
    page = new_page(*A4)
    page.text(56, 52, "Holland Code Career Interest Profile", 18, "bold")
    page.text(56, 96, f"Your code: {data['code']}", 13, "bold")
    page.text(56, 120, f"Ranking: {' > '.join(data['top_letters'])}", 11)
    page.text(56, 160, "Interest area", 10, "bold", GREY)
    page.text(400, 160, "Score", 10, "bold", GREY)
    top = 182.0
    for letter, name in sample_data.RIASEC.items():
        page.line(56, top - 6, 480, top - 6, TRACK, 0.6)
        page.text(56, top, f"{name} ({letter})", 11)
        page.text(400, top, f"{data[name.lower()]}/100", 11)
        top += 24
    closing = "Careers that fit your three strongest letters follow on the next page."
    page.text(56, top + 16, closing, 10, fill=GREY)


def riasec_bars(new_page: NewPage, data: dict[str, Any]) -> None:
    """A tinted header with the code beside its label; bars with 'n/100'."""
    page = new_page(560, 600)
    page.rect(0, 0, page.width, 96, (232, 240, 250))
    page.text(32, 20, "Career Interest Explorer", 18, "bold")
    page.text(32, 62, "Holland code", 11, fill=GREY)
    page.text(150, 54, data["code"], 22, "bold", (25, 85, 160))
    page.text(32, 116, f"Order: {', '.join(data['top_letters'])}", 11)
    top = 156.0
    for name in sample_data.RIASEC.values():
        page.text(32, top, name, 12, "bold")
        page.text(528, top, f"{data[name.lower()]}/100", 12, anchor="right")
        bar(page, 32, 528, top + 22, data[name.lower()], (25, 85, 160))
        top += 64


def strengths_columns(new_page: NewPage, data: dict[str, Any]) -> None:
    """Three columns of bulleted lists under their headings, then a summary."""
    page = new_page(640, 520)
    green = (46, 125, 50)
    page.text(32, 26, "StrengthsProfile", 22, "bold", green)
    page.text(32, 64, "Strengths summary report", 11, fill=GREY)
    columns = (
        ("Realised Strengths", data["top_strengths"]),
        ("Learned Behaviours", data["learned_behaviours"]),
        ("Weaknesses", data["weaknesses"]),
    )
    longest = 0
    for index, (heading, items) in enumerate(columns):
        x = 32 + index * 200
        page.text(x, 108, heading, 13, "bold")
        for row, item in enumerate(items):
            top = 140 + row * 26
            page.rect(x + 1, top + 6, x + 6, top + 11, green)
            page.text(x + 14, top, item, 11)
        longest = max(longest, len(items))
    top = 140 + longest * 26 + 24
    page.text(32, top, "Summary", 13, "bold")
    paragraph(page, 32, top + 26, data["summary"], 560)


def strengths_two_pages(new_page: NewPage, data: dict[str, Any]) -> None:
    """Page one: comma-separated lists. Page two: a numbered list, a summary."""
    first = new_page(*A4)
    first.text(56, 52, "Strengths Profile Report", 20, "bold")
    first.text(56, 84, "Confidential. Prepared by the careers service.", 10, fill=GREY)
    end = paragraph(
        first, 56, 120, "Top strengths: " + ", ".join(data["top_strengths"]), 460, 11
    )
    paragraph(
        first,
        56,
        end + 12,
        "Learned behaviors: " + ", ".join(data["learned_behaviours"]),
        460,
        11,
    )
    first.text(56, 800, "Page 1 of 2", 8, fill=GREY)

    second = new_page(*A4)
    second.text(56, 60, "Weaknesses", 14, "bold")
    top = 90.0
    for index, item in enumerate(data["weaknesses"], start=1):
        second.text(56, top, f"{index}. {item}", 11)
        top += 20
    second.text(56, top + 24, "Summary", 14, "bold")
    paragraph(second, 56, top + 52, data["summary"], 460)
    second.text(56, 800, "Page 2 of 2", 8, fill=GREY)


def hexaco_grid(new_page: NewPage, data: dict[str, Any]) -> None:
    """Label and value pairs in a grid of two columns."""
    page = new_page(600, 300)
    page.text(32, 26, "HEXACO Personality Inventory", 20, "bold")
    page.text(32, 60, "Revised, 60 items. Scores are percentiles.", 11, fill=GREY)
    pairs = (
        ("Honesty-Humility", "honesty_humility"),
        ("Emotionality", "emotionality"),
        ("Extraversion", "extraversion"),
        ("Agreeableness", "agreeableness"),
        ("Conscientiousness", "conscientiousness"),
        ("Openness to Experience", "openness"),
    )
    for index, (label, key) in enumerate(pairs):
        x = 32 + (index % 2) * 290
        top = 110 + (index // 2) * 44
        page.rect(x, top - 8, x + 260, top + 26, (245, 246, 248))
        page.text(x + 10, top, label, 12)
        page.text(x + 250, top - 2, number(data[key]), 14, "bold", anchor="right")


def hexaco_cards(new_page: NewPage, data: dict[str, Any]) -> None:
    """Cards of three by two, each a small label over a large percentage."""
    page = new_page(*A4)
    page.text(56, 56, "Your HEXACO Profile", 20, "bold")
    page.text(56, 88, "Six broad dimensions of personality", 11, fill=GREY)
    cards = (
        ("HONESTY HUMILITY", "honesty_humility"),
        ("EMOTIONALITY", "emotionality"),
        ("EXTRAVERSION", "extraversion"),
        ("AGREEABLENESS", "agreeableness"),
        ("CONSCIENTIOUSNESS", "conscientiousness"),
        ("OPENNESS", "openness"),
    )
    for index, (label, key) in enumerate(cards):
        x = 56 + (index % 3) * 164
        top = 130 + (index // 3) * 120
        page.rect(x, top, x + 150, top + 100, (236, 242, 248))
        page.text(x + 12, top + 14, label, 9, "bold", (70, 90, 120))
        page.text(x + 12, top + 40, f"{number(data[key])}%", 26, "bold")


def generic_table(new_page: NewPage, data: dict[str, Any]) -> None:
    """A type line, a summary, and a table of named scores under a heading."""
    page = new_page(560, 560)
    page.text(32, 26, "Assessment Result", 20, "bold")
    page.text(32, 70, f"Type: {data['result_type']}", 12)
    page.text(32, 108, "Summary", 13, "bold")
    end = paragraph(page, 32, 134, data["summary"], 480)
    page.text(32, end + 22, "Scores", 13, "bold")
    top = end + 54
    for row in data["scores"]:
        page.line(32, top - 8, 360, top - 8, TRACK, 0.8)
        page.text(32, top, row["name"], 12)
        page.text(300, top, number(row["score"]), 12, "bold", anchor="right")
        top += 30
