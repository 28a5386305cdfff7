"""An import: parse an export, keep the file as-is, apply its events through the one ingestion path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from crm.archive import import_key
from crm.imports.shopify_csv import ParseReport, parse_customers, parse_orders, summary
from crm.ingestion import Outcome, apply_events
from crm.models.canonical import CanonicalEvent
from crm.models.stores import Platform, Store
from crm.ports import ProfileRepository, RawArchive


class ExportKind(StrEnum):
    ORDERS = "orders"
    CUSTOMERS = "customers"


class UnsupportedImport(ValueError):
    """No parser for this platform's exports."""


@dataclass(frozen=True)
class ImportResult:
    kind: ExportKind
    store: Store
    filename: str
    events: Sequence[CanonicalEvent]
    report: ParseReport
    outcome: Outcome | None  # None for a dry run
    archive_key: str | None

    def as_json(self) -> dict[str, Any]:
        found = summary(self.report)
        return {
            "store_id": self.store.store_id,
            "platform": self.store.platform.value,
            "file": self.filename,
            "kind": self.kind.value,
            "dry_run": self.outcome is None,
            "rows_read": found["rows_read"],
            f"{self.kind.value}_found": len(self.events),
            "applied": self.outcome.applied if self.outcome else 0,
            "unchanged": self.outcome.unchanged if self.outcome else 0,
            **{name: value for name, value in found.items() if name != "rows_read"},
            "archive_key": self.archive_key,
        }


def parse_export(kind: ExportKind, data: bytes, store: Store, now: datetime,
                 filename: str) -> tuple[Sequence[CanonicalEvent], ParseReport]:
    if store.platform is not Platform.SHOPIFY:
        raise UnsupportedImport(f"imports from {store.platform} exports are not supported yet (only shopify)")
    if kind is ExportKind.ORDERS:
        orders = parse_orders(data, store, now, filename)
        return orders.events, orders.report
    customers = parse_customers(data, store, now, filename)
    return customers.events, customers.report


def import_export(
    kind: ExportKind, data: bytes, filename: str, store: Store, now: datetime, *,
    repository: ProfileRepository, archive: RawArchive, dry_run: bool = False,
) -> ImportResult:
    """Parse ``data``; unless a dry run, archive it verbatim, then apply its events (idempotent: importing
    the same file again changes nothing, and never overrides a newer webhook about the same order)."""
    events, report = parse_export(kind, data, store, now, filename)
    if dry_run:
        return ImportResult(kind, store, filename, events, report, None, None)
    key = import_key(store.store_id, now, data, filename)
    # Archived before anything is applied: whatever the parser makes of it today, the file stays.
    archive.put(key, data, {
        "platform": store.platform.value, "workspace-id": store.workspace_id, "store-id": store.store_id,
        "import-kind": kind.value, "imported-at": now.isoformat(),
        "filename": filename.encode("ascii", "replace").decode(),
    })
    outcome = apply_events(repository, events, now)
    return ImportResult(kind, store, filename, events, report, outcome, key)
