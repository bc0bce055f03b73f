"""The values printed on the sample documents.

Each sample draws its values from its own seeded generator, so the documents
and their ground truth come out the same on every run, and adding a sample
changes no other. The dicts returned here are both what the layouts print and
what the manifest records as expected.
"""

from __future__ import annotations

import random
from typing import Any

SEED = 20240611

ROLES = {
    "INTJ": "Architect",
    "INTP": "Logician",
    "ENTJ": "Commander",
    "ENTP": "Debater",
    "INFJ": "Advocate",
    "INFP": "Mediator",
    "ENFJ": "Protagonist",
    "ENFP": "Campaigner",
    "ISTJ": "Logistician",
    "ISFJ": "Defender",
    "ESTJ": "Executive",
    "ESFJ": "Consul",
    "ISTP": "Virtuoso",
    "ISFP": "Adventurer",
    "ESTP": "Entrepreneur",
    "ESFP": "Entertainer",
}

#: Letter pairs of the four type axes, and the side each letter names.
AXES = (("E", "I"), ("S", "N"), ("T", "F"), ("J", "P"))
SIDES = {
    "E": "Extraverted",
    "I": "Introverted",
    "S": "Observant",
    "N": "Intuitive",
    "T": "Thinking",
    "F": "Feeling",
    "J": "Judging",
    "P": "Prospecting",
}

TEMPERAMENTS = {"SJ": "Guardian", "SP": "Artisan", "NF": "Idealist", "NT": "Rational"}

RIASEC = {
    "R": "Realistic",
    "I": "Investigative",
    "A": "Artistic",
    "S": "Social",
    "E": "Enterprising",
    "C": "Conventional",
}

STRENGTHS = (
    "Adventure",
    "Authenticity",
    "Bounceback",
    "Centred",
    "Compassion",
    "Competitive",
    "Counterpoint",
    "Courage",
    "Creativity",
    "Curiosity",
    "Detail",
    "Drive",
    "Emotional Awareness",
    "Empathic Connection",
    "Enabler",
    "Equality",
    "Esteem Builder",
    "Explainer",
    "Gratitude",
    "Growth",
    "Humility",
    "Humour",
    "Improver",
    "Incubator",
    "Judgement",
    "Legacy",
    "Listener",
    "Mission",
    "Moral Compass",
    "Narrator",
    "Optimism",
    "Organiser",
    "Persistence",
    "Persuasion",
    "Planful",
    "Prevention",
    "Pride",
    "Rapport Builder",
    "Relationship Deepener",
    "Resilience",
    "Resolver",
    "Service",
    "Spotlight",
    "Strategic Awareness",
    "Time Optimiser",
    "Work Ethic",
    "Writer",
)

OPENINGS = (
    "You bring calm focus to shared work",
    "You notice patterns that others tend to miss",
    "You turn loose ideas into workable plans",
    "You build trust quickly in new groups",
    "You prefer clear goals and steady progress",
    "You enjoy testing ideas against real evidence",
)
CLOSINGS = (
    "and you do your best work with room to think.",
    "and you recover well when plans change.",
    "and people often ask you to explain hard topics.",
    "and you like to finish what you start.",
    "and you value honest feedback over praise.",
    "and you keep a group moving toward its aim.",
)


def _rng(name: str) -> random.Random:
    return random.Random(f"{SEED}:{name}")


def _summary(rng: random.Random, sentences: int = 1) -> str:
    openings = rng.sample(OPENINGS, sentences)
    closings = rng.sample(CLOSINGS, sentences)
    return " ".join(f"{a} {b}" for a, b in zip(openings, closings, strict=True))


def _scores(rng: random.Random, count: int, low: int = 8, high: int = 94) -> list[int]:
    return rng.sample(range(low, high + 1), count)


def sixteen_personalities(name: str) -> dict[str, Any]:
    rng = _rng(name)
    letters = "".join(rng.choice(pair) for pair in AXES)
    variant = rng.choice(("A", "T"))
    mind, energy, nature, tactics, identity = (rng.randint(51, 93) for _ in range(5))
    return {
        "type_code": f"{letters}-{variant}",
        "type_label": ROLES[letters],
        "variant": "Assertive" if variant == "A" else "Turbulent",
        "mind": mind,
        "energy": energy,
        "nature": nature,
        "tactics": tactics,
        "identity": identity,
        "summary": _summary(rng),
    }


def trait_sides(data: dict[str, Any]) -> dict[str, str]:
    """The side of each 16 Personalities trait that its score describes."""
    code = data["type_code"]
    return {
        "mind": SIDES[code[0]],
        "energy": SIDES[code[1]],
        "nature": SIDES[code[2]],
        "tactics": SIDES[code[3]],
        "identity": data["variant"],
    }


def big_five(name: str, decimals: bool = False) -> dict[str, Any]:
    rng = _rng(name)
    values: list[float] = list(_scores(rng, 5))
    if decimals:
        values = [value + rng.choice((0, 0.5)) for value in values]
    keys = ("openness", "conscientiousness", "extraversion", "agreeableness")
    return dict(zip((*keys, "neuroticism"), values, strict=True))


def keirsey(name: str) -> dict[str, Any]:
    rng = _rng(name)
    letters = "".join(rng.choice(pair) for pair in AXES)
    key = letters[1] + (letters[3] if letters[1] == "S" else letters[2])
    return {
        "type_code": letters,
        "temperament": TEMPERAMENTS[key],
        "summary": _summary(rng, sentences=2),
    }


def riasec(name: str, top: int = 3) -> dict[str, Any]:
    rng = _rng(name)
    scores = dict(zip(RIASEC, _scores(rng, 6), strict=True))
    order = sorted(scores, key=lambda letter: -scores[letter])[:top]
    data: dict[str, Any] = {"code": "".join(order), "top_letters": order}
    data |= {RIASEC[letter].lower(): score for letter, score in scores.items()}
    return data


def strengths_profile(name: str) -> dict[str, Any]:
    rng = _rng(name)
    picked = rng.sample(STRENGTHS, 10)
    realised, learned = rng.randint(3, 5), rng.randint(2, 3)
    return {
        "top_strengths": picked[:realised],
        "learned_behaviours": picked[realised : realised + learned],
        "weaknesses": picked[realised + learned : realised + learned + 2],
        "summary": _summary(rng),
    }


def hexaco(name: str) -> dict[str, Any]:
    rng = _rng(name)
    keys = (
        "honesty_humility",
        "emotionality",
        "extraversion",
        "agreeableness",
        "conscientiousness",
        "openness",
    )
    return dict(zip(keys, _scores(rng, 6), strict=True))


def generic_disc(name: str) -> dict[str, Any]:
    rng = _rng(name)
    names = ("Dominance", "Influence", "Steadiness", "Compliance")
    return {
        "result_type": "DISC profile",
        "summary": _summary(rng, sentences=2),
        "scores": [
            {"name": label, "score": score}
            for label, score in zip(names, _scores(rng, 4), strict=True)
        ],
    }
