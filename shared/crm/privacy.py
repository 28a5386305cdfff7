"""Privacy requests (Shopify's mandatory compliance topics, or any store's): export or erase a shopper.

- A data request exports everything held on the shopper (profiles, timeline, orders, accounts) as one
  JSON document in the archive bucket, and records where.
- A redaction erases the shopper from every entity: profile (and the profiles merged into it), timeline,
  orders, accounts, activity markers, and every archived delivery or import row that names them. Their
  identities stay behind only as hashes marked "redacted", so nothing that arrives later, or is replayed,
  brings them back. What remains is the request's record: its id, when, and counts, no personal data.
- A shop redaction erases a store: its shoppers' data as above when they belong to that store only, its
  orders, accounts and archive, and the store itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers

from crm.archive import frame, unframe
from crm.changes import distinct_entries
from crm.models.canonical import ComplianceKind, ComplianceRequest
from crm.models.profile import Profile
from crm.ports import ArchiveStore, Erasure, Holdings, PrivacyRecord, PrivacyStore, ProfileRepository, Reads

EXPORT_PREFIX = "privacy/exports/"
ARCHIVE_PREFIXES = ("deliveries/", "raw/", "imports/", EXPORT_PREFIX)
_ID_KEYS = frozenset({"order_id", "customer_id", "anonymous_id", "cart_token", "checkout_token", "token"})
_NESTED_ID_OWNERS = frozenset({"customer", "order"})


@dataclass(frozen=True)
class Terms:
    """What names the shopper in a raw delivery: contact points, and the ids platforms use for them."""

    emails: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()  # E.164
    ids: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.emails or self.phones or self.ids)


@dataclass
class Scrubbed:
    objects_rewritten: int = 0
    objects_deleted: int = 0
    deliveries_removed: int = 0
    rows_removed: int = 0
    keys: list[str] = field(default_factory=list)


def _phones_in(text: str, phones: frozenset[str]) -> bool:
    regions = {phonenumbers.region_code_for_number(phonenumbers.parse(p)) for p in phones}
    for region in regions or {"US"}:
        for match in phonenumbers.PhoneNumberMatcher(text, region):
            if phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164) in phones:
                return True
    return False


def _names_in_json(value: Any, terms: Terms, key: str | None = None, owner: str | None = None) -> bool:
    if isinstance(value, dict):
        return any(_names_in_json(v, terms, str(k), key) for k, v in value.items())
    if isinstance(value, list):
        return any(_names_in_json(v, terms, key, owner) for v in value)
    text = str(value)
    return (key in _ID_KEYS or (key == "id" and owner in (None, *_NESTED_ID_OWNERS))) and text in terms.ids


def mentions(body: bytes, terms: Terms) -> bool:
    """True if a raw delivery names the shopper: an email or phone anywhere in it, or one of their ids
    where a platform puts ids (a payload's own id, customer and order ids, tokens)."""
    text = body.decode("utf-8", "replace")
    lowered = text.lower().replace("\\/", "/")
    if any(email in lowered for email in terms.emails):
        return True
    if terms.phones and _phones_in(text, terms.phones):
        return True
    if terms.ids:
        try:
            payload = json.loads(text)
        except ValueError:
            return any(identifier in text for identifier in terms.ids if len(identifier) >= 8)
        return _names_in_json(payload, terms)
    return False


def terms_for(request: ComplianceRequest, holdings: Holdings) -> Terms:
    emails = {request.email} if request.email else set()
    phones = {request.phone} if request.phone else set()
    ids = {*request.order_ids, *([request.customer_id] if request.customer_id else [])}
    for profile in holdings.profiles:
        for identity in profile.identities:
            kind, _, rest = identity.partition("#")
            if kind == "email":
                emails.add(rest)
            elif kind == "phone":
                phones.add(rest)
            else:
                ids.add(rest.partition("#")[2])
    ids.update(order.order_id for order in holdings.orders)
    return Terms(frozenset(e.lower() for e in emails), frozenset(phones), frozenset(i for i in ids if i))


def scrub_archive(archive: ArchiveStore, terms: Terms, prefixes: Iterable[str]) -> Scrubbed:
    """Remove every archived delivery and import row that names the shopper; keep everything else as it was."""
    result = Scrubbed()
    for key in archive.keys(prefixes):
        data = archive.get(key)
        if key.startswith("deliveries/"):
            kept = [(header, body) for header, body in unframe(data) if not mentions(body, terms)]
            removed = sum(1 for _ in unframe(data)) - len(kept)
            if removed:
                result.deliveries_removed += removed
                _replace(archive, key, b"".join(frame(h.envelope(b), b) for h, b in kept), result)
        elif key.startswith("imports/"):
            rows = data.decode("utf-8-sig", "replace").splitlines(keepends=True)
            kept_rows = rows[:1] + [row for row in rows[1:] if not mentions(row.encode(), terms)]
            if len(kept_rows) != len(rows):
                result.rows_removed += len(rows) - len(kept_rows)
                _replace(archive, key, "".join(kept_rows).encode(), result)
        elif mentions(data, terms):
            archive.delete(key)
            result.objects_deleted += 1
            result.keys.append(key)
    return result


def _replace(archive: ArchiveStore, key: str, data: bytes, result: Scrubbed) -> None:
    if data:
        archive.put(key, data)
        result.objects_rewritten += 1
    else:
        archive.delete(key)
        result.objects_deleted += 1
    result.keys.append(key)


def _profiles_of(repository: ProfileRepository, request: ComplianceRequest) -> list[Profile]:
    store = request.store_id
    identities = [i for i in (
        f"email#{request.email}" if request.email else None,
        f"phone#{request.phone}" if request.phone else None,
        f"customer#{store}#{request.customer_id}" if request.customer_id else None,
        *(f"order#{store}#{order_id}" for order_id in request.order_ids),
    ) if i]
    context = repository.load(Reads(request.workspace_id, tuple(identities)))
    return list({p.profile_id: p for p in context.owners.values()}.values())


def _export(holdings: Holdings) -> bytes:
    document = {
        "profiles": [p.model_dump(mode="json", exclude={"contact_sources", "revision"}) for p in holdings.profiles],
        "timeline": [e.model_dump(mode="json") for e in distinct_entries(holdings.timeline)],
        "orders": [o.model_dump(mode="json") for o in holdings.orders],
        "accounts": [c.model_dump(mode="json") for c in holdings.customers],
    }
    return json.dumps(document, indent=2, sort_keys=True).encode()


def carry_out(request: ComplianceRequest, repository: ProfileRepository, store: PrivacyStore,
              archive: ArchiveStore, now: datetime) -> PrivacyRecord:
    """Do what the request asks; doing it again finds nothing more to do (the record is rewritten)."""
    if request.request == ComplianceKind.SHOP_REDACT:
        return _redact_shop(request, store, archive, now)
    live = _profiles_of(repository, request)
    holdings = store.gather(request.workspace_id, live, request.store_id, request.order_ids)
    if request.request == ComplianceKind.CUSTOMER_DATA_REQUEST:
        key = f"{EXPORT_PREFIX}{request.store_id}/{request.request_id}.json"
        archive.put(key, _export(holdings))
        record = PrivacyRecord(workspace_id=request.workspace_id, store_id=request.store_id,
                               request_id=request.request_id, request=request.request.value, carried_out_at=now,
                               counts={"profiles": len(holdings.profiles), "orders": len(holdings.orders)},
                               export_key=key)
        store.record(record)
        return record
    terms = terms_for(request, holdings)
    erasure = Erasure.of(request.workspace_id, holdings, request.store_id, request.order_ids, request.customer_id)
    store.erase(erasure)
    scrubbed = scrub_archive(archive, terms, ARCHIVE_PREFIXES) if terms else Scrubbed()
    record = PrivacyRecord(
        workspace_id=request.workspace_id, store_id=request.store_id, request_id=request.request_id,
        request=request.request.value, carried_out_at=now,
        counts={"profiles": len(holdings.profiles), "orders": len(erasure.orders),
                "identities": len(erasure.identities), "timeline_entries": len(holdings.timeline),
                "archived_deliveries_removed": scrubbed.deliveries_removed,
                "archive_objects_deleted": scrubbed.objects_deleted, "import_rows_removed": scrubbed.rows_removed},
    )
    store.record(record)
    return record


def _redact_shop(request: ComplianceRequest, store: PrivacyStore, archive: ArchiveStore,
                 now: datetime) -> PrivacyRecord:
    erased = store.erase_store(request.workspace_id, request.store_id)
    removed = 0
    for key in list(archive.keys((f"raw/{request.platform.value}/{request.store_id}/", "deliveries/",
                                  f"imports/{request.store_id}/", f"{EXPORT_PREFIX}{request.store_id}/"))):
        if key.startswith("deliveries/"):
            data = archive.get(key)
            kept = [(h, b) for h, b in unframe(data) if h.store_id != request.store_id]
            if len(kept) != sum(1 for _ in unframe(data)):
                removed += 1
                _replace(archive, key, b"".join(frame(h.envelope(b), b) for h, b in kept), Scrubbed())
        else:
            archive.delete(key)
            removed += 1
    record = PrivacyRecord(workspace_id=request.workspace_id, store_id=request.store_id,
                           request_id=request.request_id, request=request.request.value, carried_out_at=now,
                           counts={**erased, "archive_objects_changed": removed})
    store.record(record)
    return record

