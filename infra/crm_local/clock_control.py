"""Fast-forwarding a running `crm local` from another shell.

The runtime's API server answers two local-only routes (the deployed API has neither): ``GET /_local/clock``
gives the runtime's time, ``POST /_local/clock`` with ``{"advance": "PT4H"}`` moves it forward, fires what fell
due (Scheduler's schedules, the template's scheduled rules, each of these once) and waits, bounded, until the
stack is idle. ``crm clock advance 4h`` and ``crm clock now`` are their client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from crm.clock import UtcDateTime, utc_now
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CLOCK_PATH = "/_local/clock"
DEFAULT_API = "http://127.0.0.1:8000"
DEFAULT_WAIT_SECONDS = 120.0

_SHORT = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_ISO = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?")
_UNITS = ("weeks", "days", "hours", "minutes", "seconds")


def parse_duration(text: str) -> timedelta:
    """``4h``, ``30m``, ``2d``, ``1w``, ``90s`` or combined (``1d12h``), or ISO 8601 (``PT4H``, ``P1DT2H``, ``P2W``).
    Years and months are refused: their length depends on the date."""
    cleaned = text.strip()
    if re.fullmatch(r"P[^T]*[YM].*", cleaned.upper()):
        raise ValueError(f"{text!r}: years and months are refused (their length depends on the date); use days")
    match = _SHORT.fullmatch(cleaned.lower()) or _ISO.fullmatch(cleaned.upper())
    if match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration: use 4h, 30m, 2d, 1w (combinable: 1d12h) or ISO 8601 "
                         "such as PT4H or P1DT2H")
    duration = timedelta(**{unit: float(value) for unit, value in zip(_UNITS, match.groups(), strict=True) if value})
    if duration <= timedelta(0):
        raise ValueError(f"{text!r} is no time at all: the clock only moves forward")
    return duration


def iso_duration(duration: timedelta) -> str:
    """ISO 8601, days and time (``P1DT4H30M``), as ``parse_duration`` reads it back."""
    hours, rest = divmod(duration.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second_text = f"{seconds}.{duration.microseconds:06d}".rstrip("0").rstrip(".") if duration.microseconds \
        else str(seconds)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M")) if n) + (
        f"{second_text}S" if seconds or duration.microseconds else "")
    days = f"{duration.days}D" if duration.days else ""
    return f"P{days}T{time}" if time else f"P{days or '0D'}"


class ClockAdvance(BaseModel):
    """The body of ``POST /_local/clock``."""

    model_config = ConfigDict(extra="forbid")

    advance: timedelta
    wait_seconds: float = Field(default=DEFAULT_WAIT_SECONDS, ge=0, le=600)  # how long to wait for idle

    @field_validator("advance", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        if not isinstance(value, str):
            raise ValueError("advance is a duration as text, e.g. \"PT4H\" or \"4h\"")
        return parse_duration(value)


class ClockNow(BaseModel):
    """The answer of both routes (``idle``: whether the stack went idle within the wait, after an advance)."""

    now: UtcDateTime
    advanced_by: str | None = None
    schedules_fired: int | None = None
    idle: bool | None = None


class FastForwardable(Protocol):
    def advance_clock(self, by: timedelta) -> list[Any]: ...
    def wait_idle(self, timeout: float = ...) -> bool: ...


LocalRoute = Callable[[bytes], tuple[int, dict[str, Any]]]


def clock_routes(runtime: FastForwardable) -> dict[tuple[str, str], LocalRoute]:
    """The local-only routes, by (method, path), for the runtime's API server."""
    def now(_: bytes) -> tuple[int, dict[str, Any]]:
        return 200, ClockNow(now=utc_now()).model_dump(mode="json", exclude_none=True)

    def advance(body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            request = ClockAdvance.model_validate_json(body or b"{}")
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
            return 400, {"error": problems}
        fired = runtime.advance_clock(request.advance)
        idle = runtime.wait_idle(timeout=request.wait_seconds)
        return 200, ClockNow(now=utc_now(), advanced_by=iso_duration(request.advance), schedules_fired=len(fired),
                             idle=idle).model_dump(mode="json")

    return {("GET", CLOCK_PATH): now, ("POST", CLOCK_PATH): advance}


class NotALocalRuntime(OSError):
    """The address answers, but not as `crm local` does (a deployed API has no clock route)."""


def _call(api: str, method: str, body: dict[str, Any] | None, timeout: float) -> ClockNow:
    url = api.rstrip("/") + CLOCK_PATH
    data = json.dumps(body).encode() if body is not None else None
    request = Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urlopen(request, timeout=timeout) as response:
            answer = response.read()
    except HTTPError as error:
        if error.code == 400:
            raise ValueError(json.loads(error.read() or b"{}").get("error", "refused")) from None
        raise NotALocalRuntime(f"{api} is not a local runtime (HTTP {error.code} on {CLOCK_PATH}): only `crm "
                               "local` has a clock to fast-forward") from None
    except URLError as error:
        raise OSError(f"nothing is listening at {api} ({error.reason}): start `crm local`, or pass --api with "
                      "its address") from None
    try:
        return ClockNow.model_validate_json(answer)
    except ValidationError:
        raise NotALocalRuntime(f"{api} is not a local runtime: its {CLOCK_PATH} answer is not the clock") from None


def remote_now(api: str = DEFAULT_API) -> ClockNow:
    return _call(api, "GET", None, timeout=10)


def remote_advance(api: str, by: timedelta, wait_seconds: float = DEFAULT_WAIT_SECONDS) -> ClockNow:
    return _call(api, "POST", {"advance": iso_duration(by), "wait_seconds": wait_seconds},
                 timeout=wait_seconds + 60)
