"""Template filters of the admin screens."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import template

from ..schema_forms import display_value, tidy_numbers

register = template.Library()


@register.filter
def field_value(value: Any) -> str:
    """An extracted or corrected value as an editor reads it."""
    return display_value(value)


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(tidy_numbers(value), ensure_ascii=False, indent=2)


@register.filter
def usd(value: Any) -> str:
    """A cost in US dollars: cents from one dollar up, else four decimals,
    since a month of small calls can cost a fraction of a cent."""
    amount = Decimal(value or 0)
    if amount == 0:
        return "$0.00"
    return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:,.4f}"
