"""docs/events.md's catalogue names every domain event the outbox publishes, with every field it carries."""

from __future__ import annotations

import re
from typing import get_args

import pytest
from crm.models.events import AnyDomainEvent, DomainEvent

from tests.builders import ROOT

EVENTS = get_args(AnyDomainEvent)
_ROW = re.compile(r"^\| `(\w+)` \|([^|]*)\|", re.MULTILINE)
CATALOGUE = {name: fields for name, fields in _ROW.findall((ROOT / "docs" / "events.md").read_text())}


@pytest.mark.parametrize("event", EVENTS, ids=[e.__name__ for e in EVENTS])
def test_each_event_has_a_catalogue_row_naming_its_fields(event: type[DomainEvent]) -> None:
    assert event.__name__ in CATALOGUE, f"docs/events.md has no row for {event.__name__}"
    own = set(event.model_fields) - set(DomainEvent.model_fields) - {"type"}
    named = set(re.findall(r"`(\w+)`", CATALOGUE[event.__name__]))
    assert own <= named, f"{event.__name__}: docs/events.md does not name {sorted(own - named)}"
