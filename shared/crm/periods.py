"""The ``from``/``to`` days of a period in a query string, as the stats and report APIs take them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date


def query_day(query: Mapping[str, str], name: str, invalid: type[ValueError]) -> date | None:
    """The ISO day named ``name`` in the query, None when absent; ``invalid`` naming the parameter when bad."""
    text = query.get(name)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise invalid(f"{name}: {text!r} is not a date (YYYY-MM-DD)") from None
