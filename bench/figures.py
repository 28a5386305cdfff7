"""Each bench script's measured figures, kept for `bench/cost.py` (and the lead's tables) in bench/results/.

A script calls ``record(name, figures)`` once at the end of its main; ``load(name)`` reads it back. The files
are JSON, one per script (gitignored: they are this machine's last run, not source). Counts keyed by tuples
(the meter's ``("req", service, operation)`` and ``("unit", name)``) are stored with their parts joined by a
space, and ``counts`` turns them back.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

Counts = dict[tuple[str, ...], float]


def plain(value: Any) -> Any:
    """JSON's own types for what the scripts hold: tuple keys joined, Decimal as a number, dataclasses as dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {(" ".join(key) if isinstance(key, tuple) else str(key)): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [plain(item) for item in items]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def counts(stored: Mapping[str, float]) -> Counts:
    """The meter's counts back from their stored form."""
    return {tuple(key.split(" ")): float(value) for key, value in stored.items()}


def per(total: Mapping[tuple[str, ...], float], divisor: float) -> Counts:
    """Counts divided by how many of a thing they were measured over (per delivery, per event...)."""
    return {key: value / divisor for key, value in total.items()} if divisor else {}


def billed(per_kind: Mapping[str, Mapping[tuple[str, ...], float]], times: Mapping[str, int | float]
           ) -> dict[str, float]:
    """Units billed in a month: each kind's units per occurrence times how often the month has it."""
    total: dict[str, float] = {}
    for kind, n in times.items():
        for key, amount in per_kind.get(kind, {}).items():
            if key[0] == "unit":
                total[key[1]] = total.get(key[1], 0.0) + float(amount) * n
            elif key[0] == "req":
                total["requests"] = total.get("requests", 0.0) + float(amount) * n
    return total


def path_of(script: str, results: Path = RESULTS) -> Path:
    return results / f"{script}.json"


def record(script: str, figures: Mapping[str, Any], results: Path = RESULTS) -> Path:
    """Keep a script's figures of this run; the file of its previous run is replaced."""
    results.mkdir(parents=True, exist_ok=True)
    target = path_of(script, results)
    document = {"script": script, "recorded_at": datetime.now(UTC).isoformat(), "figures": plain(figures)}
    target.write_text(json.dumps(document, indent=1) + "\n")  # in the script's order: the mix prints as written
    return target


def load(script: str, results: Path = RESULTS) -> dict[str, Any] | None:
    """A script's last recorded figures, or None when it has not run here (or recorded nothing)."""
    try:
        document = json.loads(path_of(script, results).read_text())
    except FileNotFoundError:
        return None
    figures: dict[str, Any] = document["figures"]
    figures.setdefault("recorded_at", document.get("recorded_at"))
    return figures


def recorded(scripts: Iterable[str], results: Path = RESULTS) -> dict[str, dict[str, Any]]:
    found = {name: load(name, results) for name in scripts}
    return {name: figures for name, figures in found.items() if figures is not None}
