"""The console's pages rendered from Jinja2 templates (templates/ beside this module), autoescaped: every value
a shopper or a marketer typed is text, never markup."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from crm.money import format_money

TEMPLATES = Path(__file__).parent / "templates"
NOTHING = "\u2013"  # an en dash where a figure has no value


def _money(amount: Decimal | None, currency: str | None = None) -> str:
    if amount is None:
        return NOTHING
    figure = f"{Decimal(format_money(amount)):,.2f}"
    return f"{figure} {currency}" if currency else figure


def _percent(rate: Decimal | None) -> str:
    return NOTHING if rate is None else f"{rate * 100:.1f} %"


@cache
def _environment() -> Environment:
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["money"] = _money
    environment.filters["percent"] = _percent
    return environment


def page(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)
