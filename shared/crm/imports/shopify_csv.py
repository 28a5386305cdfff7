"""Shopify's admin CSV exports (Orders -> Export, Customers -> Export) as canonical events.

Pure: bytes in, canonical events and a report out. Nothing here raises on one bad row; a row that
cannot be read is skipped with its row number (the header is row 1, as a spreadsheet shows it) and
why. Only a file that is not an export at all (not UTF-8, a required column missing) is refused.

The orders export has one row per line item. The order-level columns (Total, Currency, Financial
Status, ...) are filled on the first row of each order only; the line-item columns on every row.
Rows are grouped by Name (present on every row) rather than by position, so a file whose rows were
sorted or concatenated from two exports parses to the same orders.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from crm.connectors.shopify_payloads import is_paid
from crm.contact import normalise_email, normalise_phone
from crm.models.canonical import CustomerRecord
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.orders import CanonicalOrder, LineItem, version_stamp
from crm.models.stores import Platform, Store
from crm.money import to_money

ORDERS_SOURCE = "import:orders.csv"
CUSTOMERS_SOURCE = "import:customers.csv"

# A customers export carries no dates. Its records get the oldest version there is, so any webhook
# about the same customer (whose version is its updated_at) wins over the import, whichever arrives first.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CUSTOMER_IMPORT_VERSION = version_stamp(EPOCH, None)

SKIPPED_LIMIT = 50

_YES = frozenset({"yes", "true", "1", "y"})
_NO = frozenset({"no", "false", "0", "n"})


class NotAnExport(ValueError):
    """The file cannot be read as this export at all (encoding, a required column missing)."""


class BadRow(ValueError):
    """One row cannot be used; the message is the reason the report gives."""


@dataclass(frozen=True)
class SkippedRow:
    row: int
    reason: str


@dataclass
class ParseReport:
    rows_read: int = 0
    duplicates: int = 0
    duplicate_ids: list[str] = field(default_factory=list)
    cleaned: Counter[str] = field(default_factory=Counter)
    skipped: list[SkippedRow] = field(default_factory=list)


E = TypeVar("E", CanonicalOrder, CustomerRecord)


@dataclass(frozen=True)
class Parsed(Generic[E]):
    events: list[E]
    report: ParseReport


# --- reading the file ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    """A logical column and the header names Shopify has used for it, newest layout first."""

    name: str
    headers: tuple[str, ...]
    required: bool = False


def _header_key(header: str) -> str:
    return " ".join(header.replace("\ufeff", "").split()).lower()


def _rows(data: bytes, columns: Iterable[_Column], what: str, kind: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number, {logical column: stripped text}) for every non-blank row; headers matched case-insensitively."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise NotAnExport(f"{what} is not UTF-8 text (byte {error.start}); export it again from Shopify") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise NotAnExport(f"{what} is empty")
    position = {_header_key(name): index for index, name in enumerate(header)}
    found: dict[str, int] = {}
    for column in columns:
        index = next((position[_header_key(h)] for h in column.headers if _header_key(h) in position), None)
        if index is not None:
            found[column.name] = index
        elif column.required:
            names = " or ".join(repr(h) for h in column.headers)
            raise NotAnExport(f"{what} has no {names} column; is it a Shopify {kind} export?")
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        yield number, {name: cells[index].strip() if index < len(cells) else "" for name, index in found.items()}


# --- cell parsers: each raises BadRow naming the column ----------------------------------------------


def _money(text: str, column: str) -> Decimal:
    try:
        amount = to_money(text)
    except (InvalidOperation, ValueError):
        raise BadRow(f"{column}: not an amount: {text!r}") from None
    if amount < 0:
        raise BadRow(f"{column}: negative amount: {text!r}")
    return amount


def _optional_money(text: str, column: str) -> Decimal:
    return _money(text, column) if text else Decimal("0.00")


def _moment(text: str, column: str) -> datetime | None:
    """The moment in UTC, or None for an empty cell."""
    local = _local_moment(text, column)
    return None if local is None else local.astimezone(UTC)


def _local_moment(text: str, column: str) -> datetime | None:
    """Shopify writes "2024-03-05 14:22:10 -0500"; ISO 8601 is accepted too. A time without a zone is refused."""
    if not text:
        return None
    try:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise BadRow(f"{column}: not a date and time: {text!r}") from None
    if moment.tzinfo is None:
        raise BadRow(f"{column}: {text!r} has no time zone")
    return moment


def _quantity(text: str) -> int:
    try:
        quantity = int(text or "1")
    except ValueError:
        raise BadRow(f"Lineitem quantity: not a whole number: {text!r}") from None
    if quantity < 0:
        raise BadRow(f"Lineitem quantity: negative: {text!r}")
    return quantity


def _yes_no(text: str) -> bool | None:
    value = text.lower()
    return True if value in _YES else False if value in _NO else None


def _consent(text: str, channel: Channel, source: str, at: datetime, cleaned: Counter[str]) -> tuple[Consent, ...]:
    accepted = _yes_no(text)
    if accepted is None:
        if text:
            cleaned[f"{channel}_consent_unreadable"] += 1
        return ()
    state = ConsentState.SUBSCRIBED if accepted else ConsentState.NOT_SUBSCRIBED
    return (Consent(channel=channel, state=state, source=source, at=at),)


def _email(text: str, cleaned: Counter[str]) -> str | None:
    email = normalise_email(text) if text else None
    if text and email is None:
        cleaned["email_invalid_dropped"] += 1
    elif email is not None and email != text:
        cleaned["email_trimmed_lowercased"] += 1
    return email


def _phone(texts: Iterable[str], region: str | None, cleaned: Counter[str]) -> str | None:
    """The first readable phone of ``texts`` in E.164; national formats are read in ``region``."""
    for text in texts:
        if not text:
            continue
        # Spreadsheets turn "+1..." into a formula unless prefixed with an apostrophe; Shopify exports keep it.
        raw = text.lstrip("'")
        phone = normalise_phone(raw, region)
        if phone is None:
            cleaned["phone_invalid_dropped"] += 1
            continue
        if phone != text:
            cleaned["phone_to_e164"] += 1
        return phone
    return None


def _region(*codes: str) -> str | None:
    """A two-letter country code for reading national phone numbers, if one is given."""
    return next((code.upper() for code in codes if len(code) == 2 and code.isalpha()), None)


def _split_name(full: str) -> tuple[str | None, str | None]:
    # The export has one Billing Name; the first word is taken as the given name, the rest as the family name.
    first, _, last = full.partition(" ")
    return first or None, last.strip() or None


def _skip(report: ParseReport, row: int, reason: str) -> None:
    report.skipped.append(SkippedRow(row, reason))


def _dedupe(candidates: list[tuple[E, Counter[str]]], key: str, report: ParseReport) -> list[E]:
    """One event per id: the newest version, ties broken by content so the choice never depends on row order."""
    best: dict[str, tuple[E, Counter[str]]] = {}
    for event, cleaned in candidates:
        ident = str(getattr(event, key))
        held = best.get(ident)
        if held is None:
            best[ident] = (event, cleaned)
            continue
        report.duplicates += 1
        report.duplicate_ids.append(ident)
        if (event.version, event.model_dump_json()) > (held[0].version, held[0].model_dump_json()):
            best[ident] = (event, cleaned)
    for _, cleaned in best.values():
        report.cleaned.update(cleaned)
    report.duplicate_ids = sorted(set(report.duplicate_ids))
    return [best[ident][0] for ident in sorted(best)]


# --- orders ---------------------------------------------------------------------------------------------

ORDER_COLUMNS = (
    _Column("name", ("Name",), required=True),
    _Column("email", ("Email",), required=True),
    _Column("financial_status", ("Financial Status",)),
    _Column("paid_at", ("Paid at",)),
    _Column("fulfillment_status", ("Fulfillment Status",)),
    _Column("fulfilled_at", ("Fulfilled at",)),
    _Column("accepts_marketing", ("Accepts Marketing", "Accepts Email Marketing")),
    _Column("currency", ("Currency",), required=True),
    _Column("total", ("Total",), required=True),
    _Column("discount_code", ("Discount Code",)),
    _Column("created_at", ("Created at",), required=True),
    _Column("lineitem_quantity", ("Lineitem quantity",)),
    _Column("lineitem_name", ("Lineitem name",)),
    _Column("lineitem_price", ("Lineitem price",)),
    _Column("lineitem_sku", ("Lineitem sku",)),
    _Column("billing_name", ("Billing Name",)),
    _Column("billing_country", ("Billing Country",)),
    _Column("billing_phone", ("Billing Phone",)),
    _Column("shipping_country", ("Shipping Country",)),
    _Column("shipping_phone", ("Shipping Phone",)),
    _Column("cancelled_at", ("Cancelled at",)),
    _Column("refunded_amount", ("Refunded Amount",)),
    _Column("id", ("Id",)),
    _Column("phone", ("Phone",)),
)


class OrderRow(BaseModel):
    """One row of the orders export, as text (stripped); empty where the export leaves a cell blank."""

    model_config = ConfigDict(frozen=True)

    row: int
    name: str
    email: str = ""
    financial_status: str = ""
    paid_at: str = ""
    fulfillment_status: str = ""
    fulfilled_at: str = ""
    accepts_marketing: str = ""
    currency: str = ""
    total: str = ""
    discount_code: str = ""
    created_at: str = ""
    lineitem_quantity: str = ""
    lineitem_name: str = ""
    lineitem_price: str = ""
    lineitem_sku: str = ""
    billing_name: str = ""
    billing_country: str = ""
    billing_phone: str = ""
    shipping_country: str = ""
    shipping_phone: str = ""
    cancelled_at: str = ""
    refunded_amount: str = ""
    id: str = ""
    phone: str = ""

    @property
    def starts_order(self) -> bool:
        """The first row of an order: the only one with the order-level columns filled."""
        return bool(self.total or self.currency or self.financial_status)

    def content(self) -> tuple[str, ...]:
        """Everything but the row number: two rows with equal content are the same row exported twice."""
        return tuple(str(v) for k, v in self.model_dump().items() if k != "row")

    def line_item(self) -> LineItem | None:
        if not (self.lineitem_name or self.lineitem_sku):
            return None
        price = _optional_money(self.lineitem_price, "Lineitem price")
        return LineItem(title=self.lineitem_name or self.lineitem_sku, sku=self.lineitem_sku or None,
                        quantity=_quantity(self.lineitem_quantity), price=price)


def parse_orders(data: bytes, store: Store, now: datetime,
                 filename: str = "orders_export.csv") -> Parsed[CanonicalOrder]:
    """Canonical orders from an orders export. ``now`` stamps the marketing consents the file states."""
    report = ParseReport()
    groups: dict[str, list[OrderRow]] = {}
    for number, cells in _rows(data, ORDER_COLUMNS, filename, "orders"):
        report.rows_read += 1
        if not cells.get("name"):
            _skip(report, number, "no order Name")
            continue
        groups.setdefault(cells["name"], []).append(OrderRow(row=number, **cells))
    candidates = [found for name in sorted(groups) for found in _orders_of(name, groups[name], store, now, report)]
    orders = _dedupe(candidates, "order_id", report)
    report.skipped.sort(key=lambda skipped: skipped.row)
    return Parsed(orders, report)


def _orders_of(name: str, rows: list[OrderRow], store: Store, now: datetime,
               report: ParseReport) -> list[tuple[CanonicalOrder, Counter[str]]]:
    """The orders one Name's rows describe: normally one; several when the order was exported twice."""
    firsts = [row for row in rows if row.starts_order]
    if not firsts:
        for row in rows:
            _skip(report, row.row, f"line item of order {name}, whose first row (with its Total) is missing")
        return []
    items, unreadable = _further_items(name, rows, report)
    found: list[tuple[CanonicalOrder, Counter[str]]] = []
    for first in firsts:
        try:
            found.append(_order(first, items, store, now))
        except BadRow as error:
            _skip(report, first.row, f"order {name}: {error}")
    if not found:
        for row in rows:
            if not row.starts_order and row.row not in unreadable:
                _skip(report, row.row, f"line item of order {name}, which was skipped (row {firsts[0].row})")
    return found


def _further_items(name: str, rows: list[OrderRow], report: ParseReport) -> tuple[list[LineItem], set[int]]:
    """The line items on an order's further rows (a row exported twice counts once), and the unreadable rows."""
    distinct: dict[tuple[str, ...], OrderRow] = {}
    for row in rows:
        if not row.starts_order:
            distinct.setdefault(row.content(), row)
    items: list[LineItem] = []
    unreadable: set[int] = set()
    for row in distinct.values():
        try:
            item = row.line_item()
        except BadRow as error:
            _skip(report, row.row, f"line item dropped from order {name}: {error}")
            unreadable.add(row.row)
            continue
        if item is not None:
            items.append(item)
    return items, unreadable


def _order(first: OrderRow, more_items: list[LineItem], store: Store, now: datetime) -> tuple[CanonicalOrder,
                                                                                             Counter[str]]:
    cleaned: Counter[str] = Counter()
    region = _region(first.billing_country, first.shipping_country)
    email = _email(first.email, cleaned)
    phone = _phone((first.phone, first.billing_phone, first.shipping_phone), region, cleaned)
    if email is None and phone is None:
        raise BadRow("no email and no phone: the order cannot be linked to a shopper")
    currency = first.currency.upper()
    if len(currency) != 3 or not currency.isalpha():
        raise BadRow(f"Currency: not a currency code: {first.currency!r}")
    total = _money(first.total, "Total")
    refunded = _optional_money(first.refunded_amount, "Refunded Amount")
    created_local = _local_moment(first.created_at, "Created at")
    if created_local is None:
        raise BadRow("Created at: empty")
    if created_local.utcoffset() != timedelta(0):
        cleaned["time_to_utc"] += 1
    created_at = created_local.astimezone(UTC)
    cancelled_at = _moment(first.cancelled_at, "Cancelled at")
    moments = (_moment(first.paid_at, "Paid at"), _moment(first.fulfilled_at, "Fulfilled at"), cancelled_at)
    # The export's newest moment stands for updated_at: a webhook about the same order carries an
    # updated_at at least as new (and a trigger time), so it always wins over the import.
    updated_at = max([created_at, *(m for m in moments if m is not None)])
    first_item = first.line_item()
    items = sorted([*([first_item] if first_item else []), *more_items],
                   key=lambda item: (item.title, item.sku or "", item.price, item.quantity))
    first_name, last_name = _split_name(first.billing_name)
    # Stated at checkout: stamped with the order's time, so importing the file again states nothing new.
    consents = _consent(first.accepts_marketing, Channel.EMAIL, ORDERS_SOURCE, created_at, cleaned)
    try:
        order = CanonicalOrder(
            workspace_id=store.workspace_id, store_id=store.store_id, platform=Platform.SHOPIFY,
            order_id=first.id or first.name, order_number=first.name, email=email, phone=phone,
            first_name=first_name, last_name=last_name, currency=currency, total_price=total,
            refunds={"import": refunded} if refunded > 0 else {},
            financial_status=first.financial_status or None, paid=is_paid(first.financial_status or None),
            fulfillment_status=first.fulfillment_status or None,
            created_at=created_at, updated_at=updated_at, cancelled_at=cancelled_at,
            version=version_stamp(updated_at, None),
            line_items=tuple(items),
            discount_codes=tuple(code.strip() for code in first.discount_code.split(",") if code.strip()),
            country=region, consents=consents,
        )
    except ValidationError as error:
        problem = error.errors()[0]
        raise BadRow(f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}") from None
    return order, cleaned



# --- customers ------------------------------------------------------------------------------------------

CUSTOMER_COLUMNS = (
    _Column("customer_id", ("Customer ID", "Id")),
    _Column("first_name", ("First Name",)),
    _Column("last_name", ("Last Name",)),
    _Column("email", ("Email",), required=True),
    _Column("accepts_email", ("Accepts Email Marketing", "Accepts Marketing"), required=True),
    _Column("accepts_sms", ("Accepts SMS Marketing",)),
    _Column("country_code", ("Default Address Country Code", "Country Code")),
    _Column("address_phone", ("Default Address Phone",)),
    _Column("phone", ("Phone",)),
    _Column("tags", ("Tags",)),
)


class CustomerRow(BaseModel):
    """One row of the customers export (either layout), as text."""

    model_config = ConfigDict(frozen=True)

    row: int
    customer_id: str = ""
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    accepts_email: str = ""
    accepts_sms: str = ""
    country_code: str = ""
    address_phone: str = ""
    phone: str = ""
    tags: str = ""


def parse_customers(data: bytes, store: Store, now: datetime,
                    filename: str = "customers_export.csv") -> Parsed[CustomerRecord]:
    """Customer records from a customers export; ``now`` stamps the consents the file states."""
    report = ParseReport()
    candidates: list[tuple[CustomerRecord, Counter[str]]] = []
    for number, cells in _rows(data, CUSTOMER_COLUMNS, filename, "customers"):
        report.rows_read += 1
        try:
            candidates.append(_customer(CustomerRow(row=number, **cells), store, now))
        except BadRow as error:
            _skip(report, number, str(error))
    return Parsed(_dedupe(candidates, "customer_id", report), report)


def _customer(row: CustomerRow, store: Store, now: datetime) -> tuple[CustomerRecord, Counter[str]]:
    cleaned: Counter[str] = Counter()
    email = _email(row.email, cleaned)
    phone = _phone((row.phone, row.address_phone), _region(row.country_code), cleaned)
    if email is None and phone is None:
        raise BadRow("no email and no phone: the customer cannot be linked to a shopper")
    # Older exports have no Customer ID column: the contact stands in for it, so the row is still usable.
    customer_id = row.customer_id.lstrip("'") or email or phone or ""
    consents = (_consent(row.accepts_email, Channel.EMAIL, CUSTOMERS_SOURCE, now, cleaned)
                + _consent(row.accepts_sms, Channel.SMS, CUSTOMERS_SOURCE, now, cleaned))
    try:
        record = CustomerRecord(
            workspace_id=store.workspace_id, store_id=store.store_id, platform=Platform.SHOPIFY,
            customer_id=customer_id, email=email, phone=phone,
            first_name=row.first_name or None, last_name=row.last_name or None,
            country=_region(row.country_code),
            tags=tuple(tag.strip() for tag in row.tags.split(",") if tag.strip()),
            consents=consents, created_at=EPOCH, updated_at=EPOCH, version=CUSTOMER_IMPORT_VERSION,
        )
    except ValidationError as error:
        problem = error.errors()[0]
        raise BadRow(f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}") from None
    return record, cleaned


def summary(report: ParseReport) -> Mapping[str, object]:
    """The report's JSON-ready form; the skipped list is capped, its total is not."""
    return {
        "rows_read": report.rows_read,
        "duplicates": report.duplicates,
        "duplicate_ids": report.duplicate_ids[:SKIPPED_LIMIT],
        "cleaned": dict(sorted(report.cleaned.items())),
        "skipped": [{"row": s.row, "reason": s.reason} for s in report.skipped[:SKIPPED_LIMIT]],
        "skipped_total": len(report.skipped),
    }
