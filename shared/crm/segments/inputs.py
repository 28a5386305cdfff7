"""What of a profile its memberships can depend on under a workspace's rules, so a write that changed none of
it is known to move nothing without evaluating a segment.

Every membership (built-in or custom, references to other segments included: they are decided from the same
profile) and every time boundary (crm.segments.boundaries) is a function of the rules, ``now`` and these
inputs alone:

- what the built-ins, the RFM scores and the boundaries read: whether the profile is merged, its orders
  count, lifetime value, first and last order, last checkout and views (page and product);
- for each field a custom rule names, the value the evaluator reads (``evaluate.READERS``; an RFM field
  comes from the inputs above, a prediction from the stored one);
- for each event type a custom rule counts or anchors ``since`` on, its occurrences as the evaluation
  places them (``subject_of``: the kept times, and the counters' occurrences beyond them).

Two images of a profile with equal inputs are therefore in the same segments at any instant and cross the
same boundaries; the refresh compares a write's images on them (crm.segments.runs.refresh). A name, a phone
number, an identity, a consent request, ``last_seen_at`` or the upsert's own bookkeeping changes none of
them (unless a rule reads it: ``last_seen_at`` places the occurrences of a profile written before times
were kept, and enters through them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crm.models.profile import Profile
from crm.segments.builtin import views
from crm.segments.definition import referenced_events, referenced_fields
from crm.segments.evaluate import READERS, Subject
from crm.segments.membership import Rules
from crm.segments.subject import subject_of


@dataclass(frozen=True)
class _Reads:
    fields: tuple[str, ...]  # READERS' names the custom rules' conditions use
    events: tuple[str, ...]  # event types whose occurrences the custom rules count or anchor on


_last_reads: tuple[Rules, _Reads] | None = None


def _reads(rules: Rules) -> _Reads:
    global _last_reads
    if _last_reads is not None and _last_reads[0] is rules:
        return _last_reads[1]
    fields = {field for _, definition in rules.custom for field in referenced_fields(definition)}
    events = {event for _, definition in rules.custom for event in referenced_events(definition)}
    reads = _Reads(tuple(sorted(fields)), tuple(sorted(events)))
    _last_reads = (rules, reads)
    return reads


def _builtin(profile: Profile) -> tuple[object, ...]:
    checkout = profile.last_checkout
    return (profile.merged_into, profile.orders_count, profile.total_spent, profile.first_order_at,
            profile.last_order_at, None if checkout is None else checkout.at, views(profile))


def _fields(profile: Profile, reads: _Reads, now: datetime) -> tuple[object, ...]:
    bare = Subject(profile=profile)  # the profile's own fields: no reader of these looks at events
    return tuple(READERS[name](bare, now) for name in reads.fields)


def _events(profile: Profile, reads: _Reads) -> tuple[object, ...]:
    if not reads.events:
        return ()
    subject = subject_of(profile)
    return tuple(tuple(subject.occurrences(event)) for event in reads.events)


def segment_inputs(profile: Profile, rules: Rules) -> tuple[object, ...]:
    """Everything of the profile a membership or a time boundary under ``rules`` can depend on."""
    reads = _reads(rules)
    return (*_builtin(profile), *_fields(profile, reads, rules.context.now), *_events(profile, reads))


def moves_nothing(before: Profile, after: Profile, rules: Rules) -> bool:
    """Whether a write from ``before`` to ``after`` leaves every membership and time boundary as it was
    (conservative: it may say False of a write that moved nothing, never True of one that moved something).

    ``segment_inputs`` compared a part at a time, the cheapest first: most writes (a view, a checkout, an
    order) differ in what the built-ins read, and are told apart before an event's occurrences are placed."""
    if _builtin(before) != _builtin(after):
        return False
    reads = _reads(rules)
    now: datetime = rules.context.now
    return _fields(before, reads, now) == _fields(after, reads, now) and _events(before, reads) == _events(after, reads)


__all__ = ["moves_nothing", "segment_inputs"]
