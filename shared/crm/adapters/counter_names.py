"""A flows' counters item's attribute names, short: a write unit covers 1 KB of item, and over a day the item a
batch writes gathers every counter of its flow (crm.adapters.flow_stats), so the names are most of its size.

A counter attribute is ``<row>|<code>``: the row empty for the item's own row, else its step id (``-`` the
flow-wide row), with ``|<variant>`` when the variant is not ``-``; the code is one character standing for a
fixed text (``s``: ``sent``) and the rest of the counter's name after that text (``E`` + ``OrderPlaced``:
``exited:exit_event:OrderPlaced``). A name is coded by the longest text of ``_TEXTS`` it starts with (``~``, the
empty text, matches any), so every name has a code and decodes to itself. Items hold these codes: a text's
character is never changed or reused, only new ones added.

Every such name holds a ``|`` and no other attribute of the item does but the long form's ``o:`` (the form
written before; a step id holds no ``:``, so no short name begins with ``o:``). A name or variant holding a
``|`` cannot be told apart here: ``short_name`` answers None and the caller writes the long form.
"""

from __future__ import annotations

from crm.models.flow_stats import ALL_STEPS

SEPARATOR = "|"

# code -> the text it stands for; never change or reuse a code (stored items hold them), add new ones.
_TEXTS: dict[str, str] = {
    "~": "",
    "e": "entered", "c": "completed", "x": "exited", "k": "skipped", "s": "sent", "d": "delivered",
    "b": "bounced", "o": "opened", "l": "clicked", "u": "unsubscribed", "p": "complained", "v": "converted",
    "r": "revenue", "y": "recovered", "R": "recovered_revenue", "n": "recipients",
    "X": "exited:", "K": "skipped:",
    "E": "exited:exit_event:", "S": "exited:superseded", "F": "exited:profile_filter", "P": "exited:exit_step",
    "T": "exited:wait_timeout", "M": "exited:no_moment", "L": "exited:wait_too_long", "G": "exited:step_removed",
    "m": "exited:merged", "U": "exited:unknown",
    "0": "skipped:exit_event", "1": "skipped:profile_filter", "2": "skipped:no_address", "3": "skipped:no_consent",
    "4": "skipped:suppressed", "5": "skipped:smart_sending", "6": "skipped:carrier_opt_out",
    "7": "skipped:browser_only", "8": "skipped:not_composed", "9": "skipped:unknown",
}
# Longest text first: a name takes the code of the longest text it begins with.
_BY_LENGTH = sorted(((text, code) for code, text in _TEXTS.items()), key=lambda pair: -len(pair[0]))


def code(name: str) -> str:
    return next(code + name[len(text):] for text, code in _BY_LENGTH if name.startswith(text))


def name_of(coded: str) -> str:
    return _TEXTS[coded[0]] + coded[1:]


def short_name(own: tuple[str, str], row: tuple[str, str], name: str) -> str | None:
    """The attribute of ``name`` of ``row`` on the item of row ``own``; None if it cannot be told apart."""
    if SEPARATOR in name or SEPARATOR in row[1] or not all(row):
        return None
    if row == own:
        return SEPARATOR + code(name)
    step_id, variant = row
    return SEPARATOR.join([step_id, *([] if variant == ALL_STEPS else [variant]), code(name)])


def parse(own: tuple[str, str], attribute: str) -> tuple[str, str, str] | None:
    """(step, variant, name) of a short name on the item of row ``own``; None if ``attribute`` is not one."""
    if SEPARATOR not in attribute:
        return None
    row, coded = attribute.rsplit(SEPARATOR, 1)
    if not coded or coded[0] not in _TEXTS:
        return None
    if not row:
        return own[0], own[1], name_of(coded)
    step_id, _, variant = row.partition(SEPARATOR)
    return step_id, variant or ALL_STEPS, name_of(coded)
