"""Time is injected: domain code takes ``now``; handlers get it from here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator

Clock = Callable[[], datetime]

_shift = timedelta(0)


def utc_now() -> datetime:
    return datetime.now(UTC) + _shift


def shift(by: timedelta) -> None:
    """Move this process's clock forward (the local runtime's fast-forward: a week of schedules in seconds).
    Deployed functions never call it."""
    global _shift
    _shift += by


def offset() -> timedelta:
    """How far ``shift`` has moved this process's clock (the local runtime hands it to its worker processes)."""
    return _shift


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is refused rather than guessed."""
    if value.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return value.astimezone(UTC)


# A model field holding an aware UTC moment: a naive one is refused, any other zone is converted.
UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]
