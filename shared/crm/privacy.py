"""Privacy requests (Shopify's mandatory compliance topics, or any store's): export or erase a shopper.

- A data request exports everything held on the shopper (profiles, timeline, orders, accounts) as one
  JSON document in the archive bucket, and records where.
- A redaction erases the shopper from every entity of the requesting workspace: profile (and the profiles
  merged into it), timeline, orders, accounts, activity markers, and every archived delivery or import row
  of that workspace that names them. Their identities stay behind only as hashes marked "redacted", so
  nothing that arrives later, or is replayed, brings them back. What remains is the request's record: its
  id, when, and counts, no personal data.
- A shop redaction erases a store: its shoppers' data as above when they belong to that store only, its
  orders, accounts and archive, and the store itself.

Another workspace's data is never touched, even where the same shopper is one of its customers: in the
Firehose objects (which mix tenants) only the requesting workspace's frames are dropped, and only its
stores' own prefixes are listed (docs/privacy.md).

The profiles function only hands a request over (`hand_over`); the privacy function carries it out
(`carry_out`) in steps: the table's records first, then the archive key by key in key order, storing the
last key handled as the job's cursor. When its time runs low it stores the cursor and queues the request
again; a redelivery resumes from the cursor, and doing a step again changes nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import phonenumbers

from crm.archive import FIREHOSE_PREFIX, IMPORT_PREFIX, OBJECT_PREFIX, ArchivedDelivery, frame, unframe
from crm.changes import distinct_entries
from crm.contact import normalise_email
from crm.models.canonical import ComplianceKind, ComplianceRequest
from crm.models.privacy import ArchiveProgress, PrivacyJob, PrivacyStage, Terms
from crm.models.profile import Profile
from crm.models.stores import Platform
from crm.ports import (
    ArchiveStore,
    ConcurrentUpdate,
    Erasure,
    Holdings,
    PrivacyQueue,
    PrivacyRecord,
    PrivacyStore,
    ProfileRepository,
    Reads,
)

EXPORT_PREFIX = "privacy/exports/"
# Progress is stored every so many archive objects, so a run that dies without warning redoes little.
CHECKPOINT_EVERY = 25
# Deletes one profile's flow runs and cancels their wake-ups (workspace id, profile id).
ForgetFlows = Callable[[str, str], object]
# Another privacy job rewriting the same Firehose object at the same moment: read it again, this often.
_REWRITE_ATTEMPTS = 5
_ID_KEYS = frozenset({"order_id", "customer_id", "anonymous_id", "cart_token", "checkout_token", "token"})
_NESTED_ID_OWNERS = frozenset({"customer", "order"})


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
    return Terms(emails=frozenset(filter(None, map(normalise_email, emails))), phones=frozenset(phones),
                 ids=frozenset(i for i in ids if i))


def store_prefixes(store_ids: Iterable[str]) -> tuple[str, ...]:
    """The archive prefixes that hold one store's objects only: its stand-alone raw deliveries (under each
    platform: the key names the platform first), its imports and its shoppers' data exports."""
    found = {prefix for store_id in store_ids
             for prefix in (*(f"{OBJECT_PREFIX}{platform.value}/{store_id}/" for platform in Platform),
                            f"{IMPORT_PREFIX}{store_id}/", f"{EXPORT_PREFIX}{store_id}/")}
    # Keys are listed prefix by prefix in this order, so the cursor (a key) orders the whole walk.
    return tuple(sorted(found))


def _frame_goes(job: PrivacyJob, header: ArchivedDelivery, body: bytes) -> bool:
    if header.workspace_id != job.workspace_id:
        return False  # another tenant's delivery, in a Firehose object both share
    if job.request == ComplianceKind.SHOP_REDACT:
        return header.store_id == job.store_id
    return mentions(body, job.terms)


def _without_frames(archive: ArchiveStore, key: str, job: PrivacyJob) -> tuple[ArchiveProgress, set[str]]:
    """Rewrite one Firehose object without the job's frames; answers what changed, and the stores of the
    job's workspace seen in it. The rewrite is conditional: two jobs rewriting one object never undo each other."""
    for _ in range(_REWRITE_ATTEMPTS):
        data, version = archive.read(key)
        frames = list(unframe(data))
        kept = [(header, body) for header, body in frames if not _frame_goes(job, header, body)]
        seen = {header.store_id for header, _ in frames if header.workspace_id == job.workspace_id}
        removed = len(frames) - len(kept)
        if not removed:
            return ArchiveProgress(), seen
        if not kept:
            # Every frame was the job's own: nothing another job could still want from this object.
            archive.delete(key)
            return ArchiveProgress(objects_deleted=1, deliveries_removed=removed), seen
        try:
            archive.replace(key, b"".join(frame(h.envelope(b), b) for h, b in kept), version)
        except ConcurrentUpdate:
            continue
        return ArchiveProgress(objects_rewritten=1, deliveries_removed=removed), seen
    raise ConcurrentUpdate(f"archive object {key} kept changing while it was rewritten")


def _without_rows(archive: ArchiveStore, key: str, terms: Terms) -> ArchiveProgress:
    for _ in range(_REWRITE_ATTEMPTS):
        data, version = archive.read(key)
        rows = data.decode("utf-8-sig", "replace").splitlines(keepends=True)
        kept = rows[:1] + [row for row in rows[1:] if not mentions(row.encode(), terms)]
        removed = len(rows) - len(kept)
        if not removed:
            return ArchiveProgress()
        try:
            archive.replace(key, "".join(kept).encode(), version)
        except ConcurrentUpdate:
            continue
        return ArchiveProgress(objects_rewritten=1, rows_removed=removed)
    raise ConcurrentUpdate(f"archive object {key} kept changing while it was rewritten")


def _scrub_object(archive: ArchiveStore, key: str, job: PrivacyJob) -> tuple[ArchiveProgress, set[str]]:
    """What changed, and the stores of the workspace whose own prefixes the walk must visit as well."""
    if key.startswith(FIREHOSE_PREFIX):
        change, seen = _without_frames(archive, key, job)
        # A shop redaction erases one store's objects: the workspace's other stores are not its business.
        return change, set() if job.request == ComplianceKind.SHOP_REDACT else seen
    # Every other key is under one of the job's stores' own prefixes.
    if job.request == ComplianceKind.SHOP_REDACT:
        archive.delete(key)
        return ArchiveProgress(objects_deleted=1), set()
    if key.startswith(IMPORT_PREFIX):
        return _without_rows(archive, key, job.terms), set()
    if mentions(archive.get(key), job.terms):
        archive.delete(key)
        return ArchiveProgress(objects_deleted=1), set()
    return ArchiveProgress(), set()


def _added(progress: ArchiveProgress, change: ArchiveProgress, key: str) -> ArchiveProgress:
    return ArchiveProgress(cursor=key, objects_scanned=progress.objects_scanned + 1,
                           objects_rewritten=progress.objects_rewritten + change.objects_rewritten,
                           objects_deleted=progress.objects_deleted + change.objects_deleted,
                           deliveries_removed=progress.deliveries_removed + change.deliveries_removed,
                           rows_removed=progress.rows_removed + change.rows_removed)


def _walk(job: PrivacyJob, prefixes: Iterable[str], archive: ArchiveStore, store: PrivacyStore,
          out_of_time: Callable[[], bool]) -> tuple[PrivacyJob, bool]:
    for handled, key in enumerate(archive.keys(prefixes, start_after=job.archive.cursor), start=1):
        change, seen = _scrub_object(archive, key, job)
        job = job.model_copy(update={"archive": _added(job.archive, change, key),
                                     "store_ids": tuple(sorted({*job.store_ids, *seen}))})
        if out_of_time():
            return job, False
        if handled % CHECKPOINT_EVERY == 0:
            store.save_job(job)
    return job, True


def scrub_archive(job: PrivacyJob, archive: ArchiveStore, store: PrivacyStore,
                  out_of_time: Callable[[], bool]) -> PrivacyJob:
    """Walk the job's part of the archive after its cursor. Answers the job still at the archive stage
    (out of time; the caller stores it) or done. Each run handles at least one object, so it always advances."""
    # The shared Firehose objects first: they name the workspace's stores, whose own prefixes come next
    # (each sorts after "deliveries/", so one cursor orders both walks).
    job, finished = _walk(job, (FIREHOSE_PREFIX,), archive, store, out_of_time)
    if finished:
        job, finished = _walk(job, store_prefixes(job.store_ids), archive, store, out_of_time)
    return job.model_copy(update={"stage": PrivacyStage.DONE}) if finished else job


def _profiles_of(repository: ProfileRepository, request: ComplianceRequest) -> list[Profile]:
    store = request.store_id
    identities = [i for i in (
        f"email#{request.email}" if request.email else None,
        f"phone#{request.phone}" if request.phone else None,
        f"customer#{store}#{request.customer_id}" if request.customer_id else None,
        *(f"order#{store}#{order_id}" for order_id in request.order_ids),
    ) if i]
    context = repository.load(Reads(request.workspace_id, tuple(identities)))
    # A profile marked as merging into the shopper's (a merge under way) goes with it: its contents are theirs.
    marked = (p for found in context.merging.values() for p in found)
    return list({p.profile_id: p for p in (*context.owners.values(), *marked)}.values())


def _export(holdings: Holdings) -> bytes:
    document = {
        "profiles": [p.model_dump(mode="json", exclude={"contact_sources", "revision"}) for p in holdings.profiles],
        "timeline": [e.model_dump(mode="json") for e in distinct_entries(holdings.timeline)],
        "orders": [o.model_dump(mode="json") for o in holdings.orders],
        "accounts": [c.model_dump(mode="json") for c in holdings.customers],
    }
    return json.dumps(document, indent=2, sort_keys=True).encode()


def hand_over(request: ComplianceRequest, store: PrivacyStore, queue: PrivacyQueue, now: datetime) -> PrivacyJob:
    """Record the request as queued (unless it is already known) and queue it for the privacy function."""
    job = store.job(request.workspace_id, request.request_id)
    if job is None:
        job = PrivacyJob(workspace_id=request.workspace_id, store_id=request.store_id,
                         request_id=request.request_id, request=request.request.value, created_at=now,
                         updated_at=now)
        store.save_job(job)
    queue.enqueue(request)
    return job


def carry_out(request: ComplianceRequest, repository: ProfileRepository, store: PrivacyStore,
              archive: ArchiveStore, queue: PrivacyQueue, now: datetime,
              out_of_time: Callable[[], bool], forget_flows: ForgetFlows | None = None) -> PrivacyJob:
    """Take the request as far as time allows; if it is not done, store where it stopped and queue it again.
    Doing it again finds nothing more to do. ``forget_flows`` deletes an erased profile's flow runs and their
    pending wake-ups (crm.flows.service.forget_runs)."""
    job = store.job(request.workspace_id, request.request_id) or PrivacyJob(
        workspace_id=request.workspace_id, store_id=request.store_id, request_id=request.request_id,
        request=request.request.value, created_at=now, updated_at=now)
    if job.stage == PrivacyStage.DONE:
        return job
    job = job.model_copy(update={"runs": job.runs + 1, "updated_at": now})
    if job.stage in (PrivacyStage.QUEUED, PrivacyStage.RECORDS):
        job = _erase_records(request, job, repository, store, archive, forget_flows)
    if job.stage == PrivacyStage.ARCHIVE:
        job = scrub_archive(job, archive, store, out_of_time)
    if job.stage == PrivacyStage.DONE:
        job = job.model_copy(update={"terms": Terms()})  # the shopper's terms go with the work they were for
        store.record(_record(job, now))
        store.save_job(job)
        return job
    store.save_job(job)
    queue.enqueue(request)
    return job


def _erase_records(request: ComplianceRequest, job: PrivacyJob, repository: ProfileRepository,
                   store: PrivacyStore, archive: ArchiveStore, forget_flows: ForgetFlows | None) -> PrivacyJob:
    if request.request == ComplianceKind.SHOP_REDACT:
        erased = store.erase_store(request.workspace_id, request.store_id)
        return job.model_copy(update={"stage": PrivacyStage.ARCHIVE, "counts": erased,
                                      "profiles_erased": erased.get("profiles", 0),
                                      "store_ids": (request.store_id,)})
    live = _profiles_of(repository, request)
    holdings = store.gather(request.workspace_id, live, request.store_id, request.order_ids)
    if request.request == ComplianceKind.CUSTOMER_DATA_REQUEST:
        key = f"{EXPORT_PREFIX}{request.store_id}/{request.request_id}.json"
        archive.put(key, _export(holdings))
        return job.model_copy(update={"stage": PrivacyStage.DONE, "export_key": key, "counts": {
            "profiles": len(holdings.profiles), "orders": len(holdings.orders)}})
    stores = {request.store_id, *job.store_ids, *(s for p in holdings.profiles for s in p.store_ids),
              *(o.store_id for o in holdings.orders), *(c.store_id for c in holdings.customers)}
    job = job.model_copy(update={"stage": PrivacyStage.RECORDS, "terms": job.terms | terms_for(request, holdings),
                                 "store_ids": tuple(sorted(stores))})
    # Kept before the records they come from are erased: a run that dies after the erasure still has them.
    store.save_job(job)
    erasure = Erasure.of(request.workspace_id, holdings, request.store_id, request.order_ids, request.customer_id)
    if forget_flows is not None:
        # Before the partitions go: the runs name the schedules that would otherwise still fire.
        for profile_id in erasure.profile_ids:
            forget_flows(request.workspace_id, profile_id)
    store.erase(erasure)
    # A retry after a crash finds less (some was erased already): the counts keep the first run's figures.
    counts = {"profiles": len(holdings.profiles), "orders": len(erasure.orders),
              "identities": len(erasure.identities), "timeline_entries": len(holdings.timeline)}
    return job.model_copy(update={
        "stage": PrivacyStage.ARCHIVE if job.terms else PrivacyStage.DONE,
        "profiles_erased": max(job.profiles_erased, len(holdings.profiles)),
        "counts": {name: max(value, job.counts.get(name, 0)) for name, value in counts.items()}})


def _record(job: PrivacyJob, now: datetime) -> PrivacyRecord:
    archive = job.archive
    counts = {**job.counts, "archive_objects_scanned": archive.objects_scanned,
              "archive_objects_rewritten": archive.objects_rewritten,
              "archive_objects_deleted": archive.objects_deleted,
              "archived_deliveries_removed": archive.deliveries_removed, "import_rows_removed": archive.rows_removed}
    return PrivacyRecord(workspace_id=job.workspace_id, store_id=job.store_id, request_id=job.request_id,
                         request=job.request, carried_out_at=now, counts=counts, export_key=job.export_key)
