"""Consent as a legal record: which statements count, the requests awaiting confirmation, and the
timeline lines that record every change (docs/consent.md).

A statement from a signed source (a platform webhook, a custom store's /events, an import, a confirmed
double opt-in) is authoritative: per channel, the latest one wins. A browser (the public /track API)
may withdraw consent, since anyone may ask not to be messaged, but cannot grant it: its subscribe is
kept as a ConsentRequest, which counts only once ``confirm_request`` records the shopper's confirmation
(the flows' double opt-in email).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from crm.models.consent import Channel, Consent, ConsentRequest, ConsentState
from crm.models.profile import Profile, TimelineEntry

PENDING_CONFIRMATION = "pending_confirmation"  # how a request shows on the timeline
DOUBLE_OPT_IN = "double_opt_in"


class ConsentNotConfirmable(ValueError):
    """A confirmation that cannot be recorded: no request awaits it, or it was sent to another address."""


def grants_nothing(statement: Consent) -> bool:
    """A browser's subscribe: recorded as a request, not as consent."""
    return statement.from_browser and statement.state is ConsentState.SUBSCRIBED


def _outranks(statement: Consent, held: Consent | None) -> bool:
    return held is None or statement.sort_key() > held.sort_key()


def _still_open(request: ConsentRequest, held: Consent | None) -> bool:
    """A request is moot once the shopper is subscribed, or once anything was stated after it."""
    return held is None or (held.state is not ConsentState.SUBSCRIBED and request.at > held.at)


def with_statements(
    consents: Mapping[str, Consent], requests: Mapping[str, ConsentRequest], statements: Iterable[Consent],
    addresses: Mapping[Channel, str | None],
) -> tuple[dict[str, Consent], dict[str, ConsentRequest]]:
    """Each channel's consent and open request once ``statements`` are taken into account.

    Independent of the order statements arrive in: the latest counting statement wins, and a request
    stays open only while it is newer than that statement and the shopper is not subscribed.
    ``addresses`` are the profile's email and phone, noted on a new request.
    """
    held, asked = dict(consents), dict(requests)
    for statement in statements:
        channel = statement.channel.value
        if grants_nothing(statement):
            request = ConsentRequest(channel=statement.channel, source=statement.source, at=statement.at,
                                     address=addresses.get(statement.channel))
            current = asked.get(channel)
            if current is None or request.at > current.at:
                asked[channel] = request
        elif _outranks(statement, held.get(channel)):
            held[channel] = statement
    open_requests = {channel: request for channel, request in asked.items() if _still_open(request, held.get(channel))}
    return held, open_requests


_ADDRESS_FIELDS = {Channel.EMAIL: "email", Channel.SMS: "phone"}


def addresses_of(profile: Profile) -> dict[Channel, str | None]:
    return {Channel.EMAIL: profile.email, Channel.SMS: profile.phone}


def with_consent_statements(profile: Profile, statements: Iterable[Consent]) -> Profile:
    consents, requests = with_statements(profile.consents, profile.consent_requests, statements,
                                         addresses_of(profile))
    if consents == profile.consents and requests == profile.consent_requests:
        return profile
    return profile.model_copy(update={"consents": consents, "consent_requests": requests})


def confirm_request(profile: Profile, channel: Channel, address: str, at: datetime,
                    source: str = DOUBLE_OPT_IN) -> Profile:
    """The profile once the shopper confirmed its open request on ``channel`` (the hook for the flows'
    double opt-in): consent is granted from ``at``, by ``source``.

    ``address`` is where the confirmation was sent (the link's email, the SMS's phone): it must still be
    the profile's address on that channel, so a confirmation proves its owner agreed. Raises
    ConsentNotConfirmable otherwise, or when no request is open. Write the result with its timeline lines
    (``consent_history``).
    """
    request = profile.consent_requests.get(channel.value)
    if request is None:
        raise ConsentNotConfirmable(f"no {channel.value} consent request awaits confirmation")
    if address != addresses_of(profile)[channel]:
        raise ConsentNotConfirmable(f"the {channel.value} confirmation was sent to another address than the "
                                    "profile's")
    if at < request.at:
        raise ConsentNotConfirmable("a confirmation cannot come before its request")
    granted = Consent(channel=channel, state=ConsentState.SUBSCRIBED, source=source, at=at)
    # The address is proven now: it stays the profile's even if a browser first stated it (crm.profiles
    # drops browser-stated contact fields once a signed source knows the profile).
    field = _ADDRESS_FIELDS[channel]
    proven = profile.model_copy(update={"contact_sources": {**profile.contact_sources,
                                                            field: f"{at.isoformat()}|{source}|{channel.value}"}})
    return with_consent_statements(proven, [granted])


def consent_history(before: Profile | None, after: Profile) -> list[TimelineEntry]:
    """One timeline line per change of a channel's consent or request between two versions of a profile:
    its old and new state, its source and the time it was stated. Stamped with the statement's own time,
    so a replay writes the same lines."""
    entries: list[TimelineEntry] = []
    for channel in Channel:
        old = before.consents.get(channel.value) if before else None
        new = after.consents.get(channel.value)
        old_state = old.state.value if old else None
        if new is not None and new != old:
            entries.append(_line(after, new.at, "consent_changed", f"{channel.value}:{new.state.value}:{new.source}",
                                 channel, old_state, new.state.value, new.source))
        asked = after.consent_requests.get(channel.value)
        if asked is not None and asked != (before.consent_requests.get(channel.value) if before else None):
            current = new.state.value if new else None
            entries.append(_line(after, asked.at, "consent_requested", f"{channel.value}:{asked.source}",
                                 channel, current, PENDING_CONFIRMATION, asked.source))
    return entries


def _line(profile: Profile, at: datetime, kind: str, ref: str, channel: Channel, old: str | None, new: str,
          source: str) -> TimelineEntry:
    return TimelineEntry(workspace_id=profile.workspace_id, profile_id=profile.profile_id, occurred_at=at,
                         type=kind, ref=ref,
                         summary={"channel": channel.value, **({"old": old} if old else {}), "new": new,
                                  "source": source})
