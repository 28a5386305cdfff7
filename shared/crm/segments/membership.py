"""Which segments one profile is in: every segment of a workspace evaluated together, in dependency order.

Both ways of keeping segments current decide membership here, so they cannot disagree: the incremental
path (a profile changed: its stream record) and the scheduled run (every profile, at one instant, with
fresh population statistics). For the same profile, rules and instant, both compute the same set.

A segment that refers to another is evaluated after it, over the memberships just computed for the same
profile, never over stored member lists: one profile's evaluation needs nothing but the profile.

The run decides many profiles at once (``memberships_of_all``: each custom segment evaluated a column at a
time by crm.segments.columns, which answers as ``matches`` does); the incremental path one at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from graphlib import TopologicalSorter

from crm.models.profile import Profile
from crm.models.segments import HeldSegments, MembershipChange, SegmentRecord
from crm.segments.builtin import BUILTINS, SegmentContext, memberships
from crm.segments.columns import Batch
from crm.segments.definition import Definition, SegmentInvalid, parse_segment, referenced_segments
from crm.segments.evaluate import Rfm, matches
from crm.segments.rfm import RfmInputs, group, score
from crm.segments.subject import subject_of

BUILTIN_IDS = frozenset(b.id for b in BUILTINS)


@dataclass(frozen=True)
class Rules:
    """A workspace's segments, ready to evaluate at ``context.now``: the built-ins, then its own in an order
    where every segment comes after those it refers to."""

    context: SegmentContext
    custom: tuple[tuple[str, Definition], ...] = ()
    unreadable: frozenset[str] = frozenset()  # stored definitions this registry no longer accepts

    @property
    def segment_ids(self) -> frozenset[str]:
        return BUILTIN_IDS | {sid for sid, _ in self.custom}

    def with_draft(self, segment_id: str, definition: Definition) -> Rules:
        """These rules and one more segment, evaluated last (a preview: it may refer to any other)."""
        return replace(self, custom=(*self.custom, (segment_id, definition)))


def rules_for(records: Iterable[SegmentRecord], context: SegmentContext) -> Rules:
    """The rules of a workspace's stored segments; a stored definition the registry no longer accepts is
    left out (its members stay as they are) rather than stopping every other segment."""
    definitions: dict[str, Definition] = {}
    unreadable: set[str] = set()
    for record in records:
        if record.definition is None:
            continue
        try:
            definitions[record.segment_id] = parse_segment(json.loads(record.definition)).definition
        except (SegmentInvalid, ValueError):
            unreadable.add(record.segment_id)
    graph = {sid: referenced_segments(d) & definitions.keys() for sid, d in definitions.items()}
    # The API refuses cycles when a segment is saved, so static_order only meets an acyclic graph here.
    order = [sid for sid in TopologicalSorter(graph).static_order()]
    return Rules(context, tuple((sid, definitions[sid]) for sid in order), frozenset(unreadable))


def rfm_of(profile: Profile, context: SegmentContext) -> Rfm | None:
    """The profile's RFM scores against the workspace's quintiles; None for non-buyers or before any run."""
    thresholds = context.population.rfm
    inputs = RfmInputs.from_profile(profile, context.now)
    if thresholds is None or inputs is None:
        return None
    scored = score(inputs, thresholds)
    return Rfm(recency=scored.r, frequency=scored.f, monetary=scored.m, group=group(scored).value)


def memberships_of(profile: Profile, rules: Rules) -> frozenset[str]:
    """Every segment of ``rules`` the profile is in at ``rules.context.now``; none for a merged profile."""
    if profile.merged_into is not None:
        return frozenset()
    found = set(memberships(profile, rules.context))
    subject = replace(subject_of(profile), rfm=rfm_of(profile, rules.context))
    for segment_id, definition in rules.custom:
        if matches(definition, replace(subject, segments=frozenset(found)), rules.context.now):
            found.add(segment_id)
    return frozenset(found)


def memberships_of_all(profiles: Sequence[Profile], rules: Rules) -> list[frozenset[str]]:
    """``[memberships_of(p, rules) for p in profiles]``, with each custom segment evaluated once for all of them."""
    context = rules.context
    live = [i for i, profile in enumerate(profiles) if profile.merged_into is None]
    found: list[set[str]] = [set() for _ in profiles]
    for i in live:
        found[i].update(memberships(profiles[i], context))
    if rules.custom and live:
        batch = Batch([replace(subject_of(profiles[i]), rfm=rfm_of(profiles[i], context)) for i in live],
                      context.now)
        for segment_id in BUILTIN_IDS:
            batch.set_members(segment_id, int.from_bytes(bytes(segment_id in found[i] for i in live), "little"))
        for segment_id, definition in rules.custom:
            mask = batch.matching(definition)
            batch.set_members(segment_id, mask)
            for position in batch.indices(mask):
                found[live[position]].add(segment_id)
    return [frozenset(segments) for segments in found]


def change_for(profile: Profile, held: HeldSegments, rules: Rules, at: datetime,
               computed: frozenset[str] | None = None) -> MembershipChange | None:
    """What to write so the stored membership matches the rules; None when nothing changes.

    Segments the rules cannot evaluate are neither entered nor exited: a deleted segment's members went
    with it (its id leaves the set), and one whose definition no longer parses keeps its members.
    A set decided on a newer revision of the profile than this one stands: that revision's own change
    (a later stream record) re-decides it. ``computed``: the profile's memberships when already decided.
    """
    if held.revision > profile.revision:
        return None
    if computed is None:
        computed = memberships_of(profile, rules)
    known = held.segment_ids & rules.segment_ids
    entered = tuple(sorted(computed - known))
    exited = tuple(sorted(known - computed))
    if not entered and not exited:
        return None
    kept = held.segment_ids & rules.unreadable
    return MembershipChange(workspace_id=profile.workspace_id, profile_id=profile.profile_id,
                            segment_ids=computed | kept, entered=entered, exited=exited,
                            expected_version=held.version, revision=profile.revision, at=at)


__all__ = ["BUILTIN_IDS", "Rules", "change_for", "memberships_of", "memberships_of_all", "rfm_of", "rules_for"]
