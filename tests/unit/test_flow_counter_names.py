"""The flows' counters items' short attribute names (crm.adapters.counter_names): each counter of each row
decodes to itself, is told apart from the item's other attributes and from the long form written before."""

from __future__ import annotations

from crm.adapters import counter_names
from crm.adapters.flow_stats import counter_attribute
from crm.models.flow_stats import ALL_STEPS
from hypothesis import given
from hypothesis import strategies as st

STEP_IDS = st.from_regex(r"^[a-z0-9_]{1,24}$", fullmatch=True)
ROWS = st.one_of(st.just((ALL_STEPS, ALL_STEPS)), st.tuples(STEP_IDS, st.just(ALL_STEPS)),
                 st.tuples(STEP_IDS, st.builds(lambda split, path: f"{split}:{path}", STEP_IDS,
                                               st.integers(0, 9))))
KNOWN = ["entered", "sent", "recipients", "recovered_revenue", "exited:exit_event:OrderPlaced", "exited:superseded",
         "skipped:not_composed", "skipped:no_consent", "exited:merged"]
NAMES = st.one_of(st.sampled_from(KNOWN), st.text(max_size=30),
                  st.builds(lambda base, rest: base + rest, st.sampled_from(KNOWN), st.text(max_size=8)))
# The item's other attributes (the key and what add_rows sets).
OTHERS = ["pk", "sk", "entity", "workspace_id", "flow_id", "day", "step_id", "variant"]


@given(own=ROWS, row=ROWS, name=NAMES)
def test_a_counters_attribute_reads_back_as_its_row_and_name(own: tuple[str, str], row: tuple[str, str],
                                                             name: str) -> None:
    short = counter_names.short_name(own, row, name)
    if "|" in name:
        assert short is None  # written in the long form (counter_attribute)
        return
    assert short is not None and "|" in short
    assert not short.startswith(("n:", "o:"))  # never read as the long form
    assert counter_names.parse(own, short) == (*row, name)


@given(own=ROWS, rows=st.lists(st.tuples(ROWS, NAMES), min_size=2, max_size=6, unique=True))
def test_different_counters_on_one_item_have_different_attributes(own: tuple[str, str],
                                                                  rows: list[tuple[tuple[str, str], str]]) -> None:
    attributes = {counter_attribute(own, row, name) for row, name in rows}
    assert len(attributes) == len(rows)


def test_the_items_other_attributes_are_not_short_names() -> None:
    for attribute in [*OTHERS, "n:sent", "ttl"]:
        assert counter_names.parse(("email_1", ALL_STEPS), attribute) is None


def test_the_codes_items_hold_stay_as_written() -> None:
    """Stored items hold these names: a change of code would read them as other counters."""
    own = ("email_1", ALL_STEPS)
    assert [counter_attribute(own, row, name) for row, name in [
        (own, "sent"), ((ALL_STEPS, ALL_STEPS), "entered"), (("wait_4h", ALL_STEPS), "exited:exit_event:OrderPlaced"),
        (("email_2", "ab:1"), "recovered_revenue"), (own, "skipped:not_composed"), (own, "a|b")]] == [
        "|s", "-|e", "wait_4h|EOrderPlaced", "email_2|ab:1|R", "|8", "n:a|b"]
