"""The marketer's view of a profile and its timeline: JSON with money as decimal strings."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection
from typing import Any

from crm.changes import distinct_entries
from crm.contact import normalise_email, normalise_phone
from crm.models.profile import Profile, TimelineEntry
from crm.money import format_money
from crm.ports import ProfileRepository

MAX_TIMELINE_PAGE = 100
# A phone as a marketer types it: digits, optionally after a "+", with spaces, dots, dashes or brackets.
PHONE_SHAPE = re.compile(r"\+?[0-9][0-9 ().-]{5,30}")


def profile_view(profile: Profile) -> dict[str, Any]:
    # ``recent`` is bookkeeping for segment windows (packed microseconds), ``signed_browsers`` for flows (a
    # subset of ``identities``), ``unmarked_events`` for retries: not something to show a marketer.
    data = profile.model_dump(mode="json", exclude={"contact_sources", "revision", "merged_into", "workspace_id",
                                                    "recent", "signed_browsers", "unmarked_events"})
    for name in ("total_spent", "total_refunded", "average_order_value"):
        data[name] = format_money(getattr(profile, name))
    mean = profile.mean_days_between_orders
    data["mean_days_between_orders"] = None if mean is None else str(mean)
    return data


def find_profile(repository: ProfileRepository, workspace_id: str, *, email: str | None = None,
                 phone: str | None = None) -> Profile | None:
    """The profile an email or phone belongs to (raises ValueError naming an unusable one)."""
    if email is not None:
        normalised = normalise_email(email)
        if normalised is None:
            raise ValueError(f"email: not an email address: {email!r}")
        identity = f"email#{normalised}"
    elif phone is not None:
        # A "+" left unencoded in a query string arrives as a space.
        typed = phone.strip()
        if not PHONE_SHAPE.fullmatch(typed):
            raise ValueError(f"phone: not a phone number in international form (+<country code>...): {phone!r}")
        # Well formed but no number a phone can have (an unassigned range): no customer has it either.
        e164 = normalise_phone("+" + typed.lstrip("+"))
        if e164 is None:
            return None
        identity = f"phone#{e164}"
    else:
        raise ValueError("email or phone: one of these query parameters is required")
    profile_id = repository.profile_id_for_identity(workspace_id, identity)
    return repository.get_profile(workspace_id, profile_id) if profile_id else None


def _cursor(token: str | None) -> str | None:
    if not token:
        return None
    try:
        value = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("cursor is not one this API returned") from None
    if not value.startswith("T#"):
        raise ValueError("cursor is not one this API returned")
    return value


def timeline_page(repository: ProfileRepository, profile: Profile, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of a profile's timeline (its merged profiles' included), newest first."""
    if not 1 <= limit <= MAX_TIMELINE_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_TIMELINE_PAGE}")
    ids = [profile.profile_id, *profile.merged_from]
    entries = repository.timeline(profile.workspace_id, ids, _cursor(cursor), limit + 1)
    page, more = distinct_entries(entries[:limit]), len(entries) > limit
    return {
        "profile_id": profile.profile_id,
        "entries": [{"occurred_at": e.occurred_at.isoformat(), "type": e.type, "ref": e.ref, **e.summary}
                    for e in page],
        "next_cursor": base64.urlsafe_b64encode(entries[limit - 1].sort_key.encode()).decode() if more else None,
    }


def typed_page(repository: ProfileRepository, profile: Profile, types: Collection[str], limit: int,
               cursor: str | None) -> tuple[list[TimelineEntry], str | None]:
    """One page of a profile's timeline lines of these types (its merged profiles' included), newest first, and
    the cursor of the next page (None on the last)."""
    if not 1 <= limit <= MAX_TIMELINE_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_TIMELINE_PAGE}")
    ids = [profile.profile_id, *profile.merged_from]
    entries = repository.timeline_of(profile.workspace_id, ids, types, _cursor(cursor), limit + 1)
    more = len(entries) > limit
    return (distinct_entries(entries[:limit]),
            base64.urlsafe_b64encode(entries[limit - 1].sort_key.encode()).decode() if more else None)
