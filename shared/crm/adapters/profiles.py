"""Profiles, identities, orders, customer accounts and timelines: the profile aggregate's repository."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from crm.adapters import keys
from crm.adapters.clients import client
from crm.adapters.items import Item, from_item, serializer, to_item, to_packed_item, wire_key
from crm.adapters.throttling import DEFAULT_BACKOFF, Backoff, batch_get, batch_write, transact_write
from crm.adapters.timeline_items import (
    activities_in,
    line_groups,
    line_item,
    may_group,
    newest_first,
    type_filter,
)
from crm.adapters.workspace_index import partition_items, profile_partitions
from crm.config import settings
from crm.models.currency import CurrencySettings
from crm.models.profile import CustomerState, OrderRecord, Profile, TimelineEntry
from crm.ports import (
    Change,
    ChangeRefused,
    ConcurrentUpdate,
    Context,
    IdentityLink,
    Reads,
)
from crm.profiles import named_profile_id, unmerged
from crm.unwritten_orders import order_state


def _write_change(writes: list[dict[str, Any]], backoff: Backoff) -> None:
    """One change's writes in one transaction: a refused condition is a concurrent update (read again), a
    refused item (over 400 KB, say) a change that can never be stored."""
    try:
        transact_write(writes, backoff)
    except ClientError as error:
        if error.response["Error"]["Code"] == "TransactionCanceledException":
            raise ConcurrentUpdate(str(error)) from None
        if error.response["Error"]["Code"] == "ValidationException":
            raise ChangeRefused(error.response["Error"].get("Message", str(error))) from None
        raise


class DynamoProfileRepository:
    """Profiles, identities, orders, customer accounts, timelines; every write is guarded by what was read."""

    # A profile is stored without its fields at their defaults, packed (crm.adapters.items.to_packed_item): most
    # fields are at their defaults on most profiles, the rest deflates well, and every profile write pays for the
    # item's bytes: a shopper fits in one write unit this way, not three. (True: every field written, as before
    # issue 12; the bench measures it.)
    profile_defaults = False
    # The lines of a folded /track request's activities are written as one item a profile (crm.adapters.
    # timeline_items). (False: a line an item, as before issue 12's viewlines lane; the bench measures it.)
    lines_grouped = True
    MOST_LINES_A_READ = 1000  # timeline lines one filtered query reads (timeline_of)

    def __init__(self, table_name: str | None = None, backoff: Backoff = DEFAULT_BACKOFF) -> None:
        self.table = table_name or settings().table_name
        self.backoff = backoff

    def _batch_get(self, wanted: list[keys.Key], consistent: bool = True) -> dict[str, Item]:
        """Items by pk (what DynamoDB leaves unprocessed is asked again after a backoff)."""
        found: dict[str, Item] = {}
        unique = list({k["pk"]: k for k in wanted}.values())
        for item in batch_get(self.table, [wire_key(k) for k in unique], consistent, self.backoff):
            plain = from_item(item)
            found[plain["pk"]] = plain
        return found

    def _live_profiles(self, workspace_id: str, profile_ids: set[str]) -> dict[str, Profile]:
        """Each id's live profile: merged profiles are followed to the profile they were merged into."""
        return self._follow(workspace_id, profile_ids)[0]

    def _follow(self, workspace_id: str, profile_ids: set[str], consistent: bool = True,
                read: Mapping[str, Item | None] | None = None, named: Collection[str] = ()) -> tuple[
            dict[str, Profile], dict[str, tuple[Profile, ...]], set[str]]:
        """Each id's live profile, and the profiles marked as merging (crm.changes._merge_guard_last) met on the
        way, by the live profile they lead to (crm.ports.Context.merging), and the ids of every profile item found.
        Not ``consistent``: read eventually consistent, and a profile not found asked again consistently (something
        names it: a stale "not found" would plan on no profile, where no guard refuses it), but for the ``named``
        ones, looked for only because an identity without a link is named after them: a new profile or a link
        taking that name planned on a stale "not found" is refused by its ``attribute_not_exists``. ``read``:
        profile items already read, by id (None: not there)."""
        read = read or {}
        held = {pid: Profile.model_validate(item) for pid, item in read.items() if item is not None}
        asked = {*profile_ids, *read}
        pending = (set(profile_ids) - set(read)) | {
            p.merged_into for p in held.values() if p.merged_into and p.merged_into not in asked}
        asked |= pending
        while pending:
            for item in self._profile_items(workspace_id, pending, consistent, set(named)).values():
                profile = Profile.model_validate(item)
                held[profile.profile_id] = profile
            # A survivor erased by a privacy request is asked for once (a merge left under way leads to it).
            pending = {p.merged_into for p in held.values() if p.merged_into and p.merged_into not in asked}
            asked |= pending
        live: dict[str, Profile] = {}
        merging: dict[str, dict[str, Profile]] = {}
        for pid in profile_ids:
            current, hops = held.get(pid), 0
            met: list[Profile] = []
            while current is not None and current.merged_into and hops < 50:
                if current.merging:
                    met.append(current)
                current, hops = held.get(current.merged_into), hops + 1
            if current is None and met and met[-1].merged_into not in held:
                current = unmerged(met.pop())
            if current is not None:
                live[pid] = current
                for profile in met:
                    if profile.profile_id != current.profile_id:
                        merging.setdefault(current.profile_id, {})[profile.profile_id] = profile
        return live, {pid: tuple(found.values()) for pid, found in merging.items()}, set(held)

    def _profile_items(self, workspace_id: str, profile_ids: set[str], consistent: bool,
                       named: Collection[str] = ()) -> dict[str, Item]:
        wanted = [keys.profile(workspace_id, pid) for pid in profile_ids]
        found = self._batch_get(wanted, consistent)
        missing = [keys.profile(workspace_id, pid) for pid in profile_ids - set(named)]
        if not consistent and (missing := [k for k in missing if k["pk"] not in found]):
            found |= self._batch_get(missing)
        return found

    def load(self, reads: Reads) -> Context:
        ws = reads.workspace_id
        identity_keys = {identity: keys.identity(ws, identity) for identity in reads.identities}
        # An identity without a link item leads to the profile named after it, if that exists (no link is written
        # to say so: docs/profile-writes.md). The first identity's, the name a new profile would take, is read
        # with the links: a browser's own profile is found in this one request. The others' once their links are
        # known to be missing.
        named = self._named(ws, reads.identities)
        first_named = {named[i]: keys.profile(ws, named[i]) for i in reads.identities[:1] if i in named}
        wanted = [*identity_keys.values(), *first_named.values()]
        order_key = keys.order(ws, *reads.order) if reads.order else None
        customer_key = keys.customer(ws, *reads.customer) if reads.customer else None
        currency_key = keys.currency_settings(ws)
        records = [k for k in (order_key, customer_key) if k is not None]
        # Not ``reads.consistent``: the records first, consistently (what they hold decides with no guard: a
        # duplicate, an order's refunds), then the rest eventually consistent, unless the event is held already.
        found = self._batch_get(records if not reads.consistent else [*wanted, *records, currency_key])
        order = OrderRecord.model_validate(found[order_key["pk"]]) if order_key and order_key["pk"] in found else None
        customer = (CustomerState.model_validate(found[customer_key["pk"]])
                    if customer_key and customer_key["pk"] in found else None)
        held_version = order.version if order else customer.version if customer else None
        already_held = reads.version is not None and reads.version == held_version
        if not reads.consistent and not already_held:
            found |= self._batch_get([*wanted, currency_key], consistent=False)
        pointers: dict[str, str] = {}
        redacted: set[str] = set()
        unlinked: list[str] = []
        for identity, key in identity_keys.items():
            item = found.get(key["pk"])
            if item is None:
                unlinked.append(identity)
                continue
            if item.get("redacted"):
                redacted.add(identity)
            else:
                pointers[identity] = str(item["profile_id"])
        if already_held:
            return Context(owners={}, pointers=pointers, redacted=frozenset(redacted), order=order, order_owner=None,
                           customer=customer, event_seen=False, already_held=True)
        leads_to = {**{identity: named[identity] for identity in unlinked if identity in named}, **pointers}
        profile_ids = set(leads_to.values())
        for owner in (order.profile_id if order else None, customer.profile_id if customer else None):
            if owner:
                profile_ids.add(owner)
        named_by_items = {*pointers.values(), *(r.profile_id for r in (order, customer) if r and r.profile_id)}
        live, merging, held = self._follow(ws, profile_ids, reads.consistent,
                                           {pid: found.get(key["pk"]) for pid, key in first_named.items()
                                            if pid in profile_ids},
                                           profile_ids - named_by_items)
        if not reads.consistent and not named_by_items.issubset(live):
            # A link or a record names a profile that is not there (a new profile's write ended after its links,
            # or it was erased): whether the link still names it, no write planned on it would check.
            return self.load(replace(reads, consistent=True))
        owners = {identity: live[pid] for identity, pid in leads_to.items() if pid in live}
        if customer is not None and customer.profile_id in live and reads.customer:
            owners.setdefault(f"customer#{reads.customer[0]}#{reads.customer[1]}", live[customer.profile_id])
        seen = self._lines_found(ws, [*owners.values(), *(p for found in merging.values() for p in found)],
                                 reads.lines)
        event_seen = reads.event in seen
        return Context(
            owners=owners, pointers=pointers, redacted=frozenset(redacted), order=order,
            order_owner=live.get(order.profile_id) if order and order.profile_id else None, customer=customer,
            event_seen=event_seen,
            currency=(CurrencySettings.model_validate(found[currency_key["pk"]])
                      if currency_key["pk"] in found else None),
            seen=seen, merging=merging,
            unnamed=frozenset(identity for identity in unlinked if identity in named and named[identity] not in held),
            named_into={identity: pointers.get(identity) or str(item["merged_into"])
                        for identity in reads.identities[:1] if identity in named
                        and (item := found.get(first_named[named[identity]]["pk"])) is not None
                        and item.get("merged_into")},
        )

    def _named(self, workspace_id: str, identities: Sequence[str]) -> dict[str, str]:
        """Where each identity leads without a link item: its named profile's id (crm.profiles.named_profile_id)."""
        return {identity: named for identity in identities if (named := named_profile_id(workspace_id, identity))}

    def _lines_found(self, workspace_id: str, owners: Iterable[Profile],
                     lines: Mapping[tuple[str, str], str]) -> frozenset[tuple[str, str]]:
        """The activities whose timeline line is on one of these profiles or a profile merged into one: applied
        (the line was written with or after the profile it counts on, crm.changes). An activity's line is on the
        profile that was live when it was written, so the profiles merged since are read too."""
        profile_ids = sorted({pid for owner in owners for pid in (owner.profile_id, *owner.merged_from)})
        wanted = {(keys.profile(workspace_id, pid)["pk"], sort_key): event
                  for event, sort_key in lines.items() for pid in profile_ids}
        if not wanted:
            return frozenset()
        found = (from_item(item) for item in batch_get(
            self.table, [wire_key({"pk": pk, "sk": sk}) for pk, sk in wanted], consistent=True, backoff=self.backoff))
        # What is found at an activity's key is its line or the group its line is in (keyed like the group's
        # earliest line, an activity of the same /track request: crm.ingestion reads every line key of the
        # request's run): every activity held is applied. A line's ref is its event id alone: its store must
        # match too.
        return frozenset(event for item in found for event in activities_in(item)).intersection(lines)

    def commit(self, change: Change) -> None:
        if change.guard_last and (change.merging or len(change.profiles) > 1):
            self._commit_merge_last(change)
            return
        if change.guard_last:
            (self._commit_order_last if change.order is not None else self._commit_guard_last)(change)
            return
        if change.timeline and not (change.profiles or change.order or change.customer or change.identities):
            # Timeline lines alone (a flow's message, an activity's line after its profile was written): each is
            # the same item whoever repeats it, so plain puts at 1 unit per KB do, not a transaction's 2.
            self._put_lines(change.workspace_id, change.timeline)
            return
        ws = change.workspace_id
        writes: list[dict[str, Any]] = []
        for profile, revision in change.profiles:
            writes.append(self._guarded_put(self._profile_item(ws, profile), "revision", revision))
        if change.order is not None:
            writes.append(self._order_put(ws, *change.order))
        if change.customer is not None:
            writes.append(self._customer_put(ws, *change.customer))
        writes += [put for link in change.identities for put in self._link_puts(ws, link)]
        writes += [{"Put": {"TableName": self.table, "Item": self._line_item(ws, (line,))}} for line in change.timeline]
        if not writes:
            return
        _write_change(writes, self.backoff)

    def _commit_guard_last(self, change: Change) -> None:
        """Single writes at 1 unit per KB, not a transaction's 2, in the order crm.changes._guard_last relies on:
        the profile under its revision guard (an activity's carries its digest) and each identity link under the
        pointer read (a new profile's links first), then the lines in BatchWriteItem (an activity's line is its
        marker, crm.ports.Reads.lines), and last an account item under the version read. A line is the same item
        whoever repeats it: it needs no condition. A refused guard is a concurrent update: what was written is
        finished by the retry."""
        ws = change.workspace_id
        (profile, revision), = change.profiles
        profile_put = self._guarded_put(self._profile_item(ws, profile), "revision", revision)
        links = [put for link in change.identities for put in self._link_puts(ws, link)]
        # A new profile is written after the links that lead to it: a retry that finds them plans the same profile
        # (its id comes from the event's first identity, crm.changes._target) and writes it. An existing one goes
        # first, so that a retry finds the digest it carries.
        for put in [*links, profile_put] if revision is None else [profile_put, *links]:
            self._put(put)
        self._put_lines(ws, change.timeline, grouped=bool(change.folded))
        if change.customer is not None:
            self._put(self._customer_put(ws, *change.customer))

    def _commit_merge_last(self, change: Change) -> None:
        """A merge in single writes at 1 unit per KB, in the order crm.changes._merge_guard_last relies on: each
        merged profile marked as merging into the survivor (its contents kept, under the revision read: from here
        on every reader follows it to the survivor, and no write can land on it), then the survivor holding their
        contents and listing them in ``merged_from`` (under its revision), then each tombstone (under the marked
        revision), the identity links (under the pointers read) and last the lines, the activity's its marker. A
        refused guard is a concurrent update: whoever reads a marked profile next finishes its merge."""
        ws = change.workspace_id
        for profile, revision in (*change.merging, *change.profiles):
            self._put(self._guarded_put(self._profile_item(ws, profile), "revision", revision))
        for link in change.identities:
            for put in self._link_puts(ws, link):
                self._put(put)
        self._put_lines(ws, change.timeline, grouped=bool(change.folded))

    def _put_lines(self, workspace_id: str, lines: Sequence[TimelineEntry], grouped: bool = False) -> None:
        """Lines are the same items whoever writes them: no condition. ``grouped``: the activities of a fold, each
        profile's written as one item (crm.adapters.timeline_items.line_groups)."""
        items = line_groups(lines) if grouped and self.lines_grouped else [(entry,) for entry in lines]
        batch_write(self.table, [{"PutRequest": {"Item": self._line_item(workspace_id, group)}} for group in items],
                    self.backoff)

    def _line_item(self, workspace_id: str, lines: Sequence[TimelineEntry]) -> Item:
        return line_item(workspace_id, lines)

    def _put(self, put: dict[str, Any]) -> None:
        try:
            client("dynamodb").put_item(**put["Put"])
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "ConditionalCheckFailedException":
                raise ConcurrentUpdate(str(error)) from None
            if code == "ValidationException":
                raise ChangeRefused(error.response["Error"].get("Message", str(error))) from None
            raise

    def _link_puts(self, workspace_id: str, link: IdentityLink) -> list[dict[str, Any]]:
        """The link under the pointer read, after the profile named after its identity when it takes that name
        (crm.ports.IdentityLink.named_tombstone): a tombstone merged into the link's profile, which no reader needs
        (the link wins) but which refuses the first write of that profile, and is refused by it. Interrupted
        between the two, the tombstone alone leads the identity where the link would. Without the workspace index's
        attributes: the segment runs never read it."""
        item = {**keys.identity(workspace_id, link.identity), "entity": "identity", "workspace_id": workspace_id,
                "profile_id": link.profile_id}
        put = self._guarded_put({k: serializer.serialize(v) for k, v in item.items()}, "profile_id",
                                link.previous_profile_id)
        if link.named_tombstone is None:
            return [put]
        stone = link.named_tombstone
        return [self._guarded_put(to_packed_item(keys.profile(workspace_id, stone.profile_id), "profile", stone,
                                                 kept=("revision",)), "revision", None), put]

    def _customer_put(self, workspace_id: str, state: CustomerState, version: str | None) -> dict[str, Any]:
        return self._guarded_put(to_item(keys.customer(workspace_id, state.store_id, state.customer_id), "customer",
                                         state), "version", version)

    def _commit_order_last(self, change: Change) -> None:
        """Single writes at 1 unit per KB, not a transaction's 2, in the order crm.changes._order_guard_last relies
        on: each identity link under the pointer read (the order's own first, so that another version of the order
        lands on this profile before its record says so), the profile under its revision (it says what the order
        record is being brought to; a retry that found it writes none), the timeline lines, and last the order
        record under the state read (``_order_put``), which says the change is applied. A refused guard is a
        concurrent update: what was written is finished by the retry."""
        ws = change.workspace_id
        assert change.order is not None
        for link in change.identities:
            for put in self._link_puts(ws, link):
                self._put(put)
        for profile, revision in change.profiles:
            self._put(self._guarded_put(self._profile_item(ws, profile), "revision", revision))
        self._put_lines(ws, change.timeline)
        self._put(self._order_put(ws, *change.order))

    def _profile_item(self, workspace_id: str, profile: Profile) -> Item:
        key = keys.profile(workspace_id, profile.profile_id)
        index = keys.workspace_index(workspace_id, profile.profile_id)
        if self.profile_defaults:
            return to_item(key, "profile", profile, **index)
        # Packed (crm.adapters.items): what the guards name stays an attribute of its own.
        return to_packed_item(key, "profile", profile, kept=("revision",), **index)

    def _order_put(self, workspace_id: str, record: OrderRecord, read: OrderRecord | None) -> dict[str, Any]:
        """The record under the state read: a refund or a removal leaves the version as it was, so two of them
        (or one and the order's first write) read at the same version would overwrite each other. A record
        written before the state was kept is guarded by its version once; its next write keeps the state."""
        item = self._order_item(workspace_id, record)
        if read is None:
            return self._guarded_put(item, "state", None)
        return {"Put": {
            "TableName": self.table, "Item": item,
            "ConditionExpression": "#state = :state OR (attribute_not_exists(#state) AND #version = :version)",
            "ExpressionAttributeNames": {"#state": "state", "#version": "version"},
            "ExpressionAttributeValues": {":state": {"S": order_state(read)}, ":version": {"S": read.version}}}}

    def _order_item(self, workspace_id: str, record: OrderRecord) -> Item:
        return to_packed_item(keys.order(workspace_id, record.store_id, record.order_id), "order", record,
                              version=record.version, state=order_state(record))

    def _guarded_put(self, item: Item, attribute: str, expected: str | int | None) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.table, "Item": item}
        if expected is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#guard = :expected"
            put["ExpressionAttributeNames"] = {"#guard": attribute}
            put["ExpressionAttributeValues"] = {":expected": serializer.serialize(
                Decimal(expected) if isinstance(expected, int) else expected)}
        return {"Put": put}

    def get_profile(self, workspace_id: str, profile_id: str) -> Profile | None:
        return self._live_profiles(workspace_id, {profile_id}).get(profile_id)

    def get_profiles(self, workspace_id: str, profile_ids: Collection[str]) -> dict[str, Profile]:
        return self._live_profiles(workspace_id, set(profile_ids))

    def profile_id_for_identity(self, workspace_id: str, identity: str) -> str | None:
        """Its link item's profile id (a redacted one's: None), or without one the profile named after it, read
        in the same request."""
        named = self._named(workspace_id, [identity]).get(identity)
        link = keys.identity(workspace_id, identity)
        found = self._batch_get([link, *([keys.profile(workspace_id, named)] if named else [])])
        if link["pk"] in found:
            item = found[link["pk"]]
            return str(item["profile_id"]) if item.get("profile_id") else None
        return named if len(found) else None

    def timeline(self, workspace_id: str, profile_ids: Sequence[str], before: str | None,
                 limit: int) -> list[TimelineEntry]:
        entries: list[TimelineEntry] = []
        for profile_id in profile_ids:
            request = self._timeline_request(workspace_id, profile_id, before)
            entries += self._lines(request, before, limit)
        entries.sort(key=lambda e: (e.sort_key, e.profile_id), reverse=True)
        return entries[:limit]

    def _timeline_request(self, workspace_id: str, profile_id: str, before: str | None) -> dict[str, Any]:
        pk = keys.profile(workspace_id, profile_id)["pk"]
        values: dict[str, Any] = {":pk": {"S": pk}, ":prefix": {"S": keys.TIMELINE_PREFIX}}
        condition = "pk = :pk AND begins_with(sk, :prefix)"
        if before is not None:
            condition = "pk = :pk AND sk BETWEEN :prefix AND :before"
            values[":before"] = {"S": before}
        return {"TableName": self.table, "KeyConditionExpression": condition, "ExpressionAttributeValues": values,
                "ScanIndexForward": False, "ConsistentRead": True}

    def timeline_of(self, workspace_id: str, profile_ids: Sequence[str], types: Collection[str], before: str | None,
                    limit: int) -> list[TimelineEntry]:
        entries: list[TimelineEntry] = []
        expression, names, values = type_filter(types)
        for profile_id in profile_ids:
            request = self._timeline_request(workspace_id, profile_id, before)
            request = {**request, "FilterExpression": expression, "ExpressionAttributeNames": names,
                       "ExpressionAttributeValues": {**request["ExpressionAttributeValues"], **values}}
            entries += self._lines(request, before, limit, types)
        entries.sort(key=lambda e: (e.sort_key, e.profile_id), reverse=True)
        return entries[:limit]

    def _next_read(self, scanned: int, found: int, limit: int) -> int:
        """No key holds a line's type before its time, and a query is billed for every line it reads, not only
        those it returns: the first read asks for ``limit`` lines, each next one for as many as the share of wanted
        lines so far says are still needed (twice as many as read so far while none is found; at most
        MOST_LINES_A_READ): a customer's orders among much browsing take a read or two more, not a read of the
        whole partition (bench/console_customer.py)."""
        missing = max(1, limit - found)
        return min(self.MOST_LINES_A_READ, max(missing, -(-missing * scanned // found)) if found else 2 * scanned)

    def _lines(self, request: dict[str, Any], before: str | None, limit: int,
               types: Collection[str] | None = None) -> list[TimelineEntry]:
        """Up to ``limit`` lines older than ``before`` (of ``types``, if given) a query finds, newest first, lines
        of groups included (crm.adapters.timeline_items.newest_first reads on while a later item can still hold a
        newer line)."""
        found: list[TimelineEntry] = []
        scanned = 0

        def pages() -> Iterator[tuple[list[Item], str | None]]:
            nonlocal scanned
            query, asked = request, limit if types is not None else limit + 1
            while True:
                answer = client("dynamodb").query(**query, Limit=asked)
                scanned += int(answer.get("ScannedCount", asked))
                stopped = answer.get("LastEvaluatedKey")
                yield [from_item(item) for item in answer.get("Items", [])], stopped["sk"]["S"] if stopped else None
                if stopped is None:
                    return
                query = {**query, "ExclusiveStartKey": stopped}
                asked = self._next_read(scanned, len(found), limit) if types is not None else limit + 1

        for line in newest_first(pages(), may_group(types) if types is not None else True):
            if (before is None or line.sort_key < before) and (types is None or line.type in types):
                found.append(line)
                if len(found) >= limit:
                    break
        return found

    def order_records(self, workspace_id: str, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], OrderRecord]:
        found = self._batch_get([keys.order(workspace_id, store_id, order_id) for store_id, order_id in refs])
        records = (OrderRecord.model_validate(item) for item in found.values() if item.get("entity") == "order")
        return {(r.store_id, r.order_id): r for r in records}


    def workspace_profiles(self, workspace_id: str, segment: int = 0, total_segments: int = 1) -> Iterator[Profile]:
        """Through the workspace index (crm.adapters.workspace_index): this workspace's profile items only."""
        partitions = profile_partitions(self.table, workspace_id, segment, total_segments)
        for (item,) in partition_items(self.table, partitions, (keys.PROFILE_SK,), self.backoff):
            profile = Profile.model_validate(from_item(item))
            if profile.merged_into is None:
                yield profile

    def profiles_by_id(self, workspace_id: str, profile_ids: Sequence[str]) -> dict[str, Profile]:
        found = self._batch_get([keys.profile(workspace_id, pid) for pid in profile_ids])
        held = (Profile.model_validate(item) for item in found.values())
        return {p.profile_id: p for p in held if p.merged_into is None}

