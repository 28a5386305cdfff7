"""A batch's counts held and written once per flow and day: the flows function's SQS batch (up to 100 records)
counts on the same few flows again and again (a run start, a wake-up, an open of each), and every write of a
counters item costs a write unit whatever it adds.

``BatchCounters`` is a ``FlowCounters`` (crm.flows.ports) that adds nothing to the table until ``flush``: what
the records of one invocation counted is summed per (workspace, flow, day) and each of those is one
``add_rows`` of the counters it wraps (DynamoDB: one UpdateItem, crm.adapters.flow_stats). A record that fails
keeps what its saves counted (a run's save, a message's note, an attribution's claim are conditional: its
redelivery cannot count them again, crm.flows.counting), so the flows function flushes whatever the batch's
outcome. A crash before the flush loses the batch's counts rather than doubling them, as a crash between a save
and its counters always did. ``rows`` reads the wrapped counters: what the batch holds is not in them yet (an
A/B winner is decided on the counts written before the batch)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from crm.flows.ports import FlowCounters
from crm.models.flow_stats import ALL_STEPS, CounterRow

_Row = tuple[str, str]  # (step, variant)


@dataclass
class BatchCounters:
    counters: FlowCounters
    _held: dict[tuple[str, str, date], dict[_Row, dict[str, int | Decimal]]] = field(default_factory=dict,
                                                                                     init=False, repr=False)

    def add(self, workspace_id: str, flow_id: str, day: date, counts: Mapping[str, int | Decimal],
            step_id: str = ALL_STEPS, variant: str = ALL_STEPS) -> None:
        self.add_rows(workspace_id, flow_id, day, {(step_id, variant): counts})

    def add_rows(self, workspace_id: str, flow_id: str, day: date,
                 rows: Mapping[_Row, Mapping[str, int | Decimal]]) -> None:
        held = self._held.setdefault((workspace_id, flow_id, day), {})
        for row, counts in rows.items():
            sums = held.setdefault(row, {})
            for name, value in counts.items():
                sums[name] = sums.get(name, 0) + value

    def rows(self, workspace_id: str, flow_id: str, first_day: date, last_day: date) -> list[CounterRow]:
        return self.counters.rows(workspace_id, flow_id, first_day, last_day)

    @property
    def held(self) -> int:
        """The writes a flush would make now: one per flow and day with a count that is not zero."""
        return sum(1 for rows in self._held.values() if _nonzero(rows))

    def flush(self) -> None:
        """Write what is held, one ``add_rows`` per flow and day (counts that summed to zero left out: an email
        sent and reported bounced in one batch). Every flow and day is tried; the first failure is raised after
        (what it held is lost, never written twice)."""
        held, self._held = self._held, {}
        failed: Exception | None = None
        for (workspace_id, flow_id, day), rows in held.items():
            counted = _nonzero(rows)
            if not counted:
                continue
            try:
                self.counters.add_rows(workspace_id, flow_id, day, counted)
            except Exception as error:  # the other flows and days are still written
                failed = failed or error
        if failed is not None:
            raise failed


def _nonzero(rows: Mapping[_Row, Mapping[str, int | Decimal]]) -> dict[_Row, dict[str, int | Decimal]]:
    kept = {row: {name: value for name, value in counts.items() if value} for row, counts in rows.items()}
    return {row: counts for row, counts in kept.items() if counts}
