"""Shopify's admin CSV exports mapped to canonical events: the fixture files, every skip reason, both
customer layouts, and by property: row order and duplicated rows never change the orders parsed."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from crm.archive import IMPORT_PREFIX
from crm.imports.service import ExportKind, import_export
from crm.imports.shopify_csv import (
    CUSTOMER_IMPORT_VERSION,
    NotAnExport,
    parse_customers,
    parse_orders,
    summary,
)
from crm.ingestion import apply_event
from crm.models.consent import Channel, ConsentState
from crm.models.orders import CanonicalOrder, version_stamp
from crm.models.stores import Platform, Store
from crm.profiles import profile_id_for
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import FakeProfileRepository, FakeRawArchive

IMPORTS = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
ORDERS = (IMPORTS / "orders_export.csv").read_bytes()
CUSTOMERS = (IMPORTS / "customers_export.csv").read_bytes()
LEGACY_CUSTOMERS = (IMPORTS / "customers_export_legacy.csv").read_bytes()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STORE = Store(store_id="st_import", workspace_id="ws_import", platform=Platform.SHOPIFY,
              domain="northwind.myshopify.com", webhook_secrets=("secret",), created_at=NOW)


def _by_number(orders: list[CanonicalOrder]) -> dict[str, CanonicalOrder]:
    return {order.order_number or "": order for order in orders}


def _orders_csv(rows: list[dict[str, str]]) -> bytes:
    """An orders export with the real header and the given cells (the rest empty)."""
    header = next(csv.reader(io.StringIO(ORDERS.decode())))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _first_row(name: str = "#1", **cells: str) -> dict[str, str]:
    row = {"Name": name, "Email": "a@example.com", "Financial Status": "paid", "Currency": "USD", "Total": "10.00",
           "Created at": "2024-01-01 10:00:00 +0000", "Lineitem quantity": "1", "Lineitem name": "Pen",
           "Lineitem price": "10.00", "Id": f"id{name.strip('#')}"}
    return {**row, **cells}


def test_orders_export_maps_to_canonical_orders_to_the_cent() -> None:
    orders = _by_number(parse_orders(ORDERS, STORE, NOW).events)

    assert sorted(orders) == ["#1001", "#1002", "#1003", "#1004", "#1005", "#1006", "#1007", "#1010", "#1011"]
    nets = {number: order.net_total for number, order in orders.items()}
    assert nets == {"#1001": Decimal("143.02"), "#1002": Decimal("0.00"), "#1003": Decimal("60.00"),
                    "#1004": Decimal("0.00"), "#1005": Decimal("97.20"), "#1006": Decimal("55.50"),
                    "#1007": Decimal("42.00"), "#1010": Decimal("19.99"), "#1011": Decimal("30.00")}
    assert sum(nets.values()) == Decimal("447.71")

    multi = orders["#1001"]
    assert multi.order_id == "5630000000001"
    assert multi.email == "ann.lee@example.com"
    assert (multi.first_name, multi.last_name, multi.country) == ("Ann", "Lee", "US")
    assert [(i.title, i.quantity, i.price) for i in multi.line_items] == [
        ("Canvas Tote", 1, Decimal("25.00")), ("Linen Shirt - M", 2, Decimal("45.00")),
        ("Wool Socks", 1, Decimal("12.50"))]
    assert sum(i.price * i.quantity for i in multi.line_items) == Decimal("127.50")  # the Subtotal column
    assert multi.created_at == datetime(2024, 1, 10, 14, 15, tzinfo=UTC)
    assert multi.updated_at == datetime(2024, 1, 11, 21, 40, tzinfo=UTC)  # Fulfilled at, the latest moment
    assert multi.version == version_stamp(multi.updated_at, None)
    assert [(c.channel, c.state, c.source, c.at) for c in multi.consents] == [
        (Channel.EMAIL, ConsentState.SUBSCRIBED, "import:orders.csv", multi.created_at)]  # stated at checkout

    assert orders["#1002"].refunds == {"import": Decimal("60.00")}
    assert orders["#1002"].consents[0].state is ConsentState.NOT_SUBSCRIBED
    assert orders["#1003"].refunds == {"import": Decimal("20.00")}
    assert orders["#1001"].refunds == {}
    assert orders["#1004"].cancelled_at == datetime(2024, 2, 3, 20, 30, tzinfo=UTC)
    assert orders["#1004"].total_price == Decimal("35.00")
    assert orders["#1005"].discount_codes == ("WELCOME10",)
    assert (orders["#1006"].email, orders["#1006"].phone, orders["#1006"].currency) == (None, "+442079460018", "GBP")
    assert orders["#1010"].created_at == datetime(2024, 3, 5, 19, 22, 10, tzinfo=UTC)
    assert len(orders["#1007"].line_items) == 2


def test_orders_report_counts_duplicates_cleanings_and_skips() -> None:
    report = summary(parse_orders(ORDERS, STORE, NOW).report)

    assert report["rows_read"] == 18
    assert (report["duplicates"], report["duplicate_ids"]) == (1, ["5630000000007"])
    assert report["cleaned"] == {"email_trimmed_lowercased": 2, "phone_to_e164": 1, "time_to_utc": 7}
    assert report["skipped"] == [
        {"row": 14, "reason": "order #1008: Total: not an amount: '12,O0'"},
        {"row": 15, "reason": "order #1009: no email and no phone: the order cannot be linked to a shopper"},
    ]
    assert report["skipped_total"] == 2


@pytest.mark.parametrize(("rows", "expected"), [
    ([_first_row(Name="")], [(2, "no order Name")]),
    ([_first_row(Total="-5.00")], [(2, "order #1: Total: negative amount: '-5.00'")]),
    ([_first_row(Currency="US Dollar")], [(2, "order #1: Currency: not a currency code: 'US Dollar'")]),
    ([_first_row(**{"Created at": "2024-01-01 10:00:00"})],
     [(2, "order #1: Created at: '2024-01-01 10:00:00' has no time zone")]),
    ([_first_row(**{"Created at": "yesterday"})], [(2, "order #1: Created at: not a date and time: 'yesterday'")]),
    ([_first_row(**{"Refunded Amount": "lots"})], [(2, "order #1: Refunded Amount: not an amount: 'lots'")]),
    ([_first_row(**{"Paid at": "soon"})], [(2, "order #1: Paid at: not a date and time: 'soon'")]),
    ([_first_row(Email="", Phone="12")], [(2, "order #1: no email and no phone: the order cannot be linked to a "
                                          "shopper")]),
    ([{"Name": "#9", "Lineitem name": "Pen", "Lineitem quantity": "1"}],
     [(2, "line item of order #9, whose first row (with its Total) is missing")]),
    ([_first_row(), {"Name": "#1", "Lineitem name": "Cap", "Lineitem quantity": "two"}],
     [(3, "line item dropped from order #1: Lineitem quantity: not a whole number: 'two'")]),
    ([_first_row(Total="abc"), {"Name": "#1", "Lineitem name": "Cap", "Lineitem quantity": "1"}],
     [(2, "order #1: Total: not an amount: 'abc'"), (3, "line item of order #1, which was skipped (row 2)")]),
])
def test_every_skip_reason_names_the_row(rows: list[dict[str, str]], expected: list[tuple[int, str]]) -> None:
    report = parse_orders(_orders_csv(rows), STORE, NOW).report
    assert [(s.row, s.reason) for s in report.skipped] == expected


def test_a_bad_line_item_row_keeps_its_order() -> None:
    parsed = parse_orders(_orders_csv([_first_row(), {"Name": "#1", "Lineitem name": "Cap",
                                                      "Lineitem quantity": "two"}]), STORE, NOW)
    assert [(o.order_number, len(o.line_items)) for o in parsed.events] == [("#1", 1)]


def test_the_skipped_list_is_capped_but_counted() -> None:
    rows = [_first_row(f"#{n}", Total="x") for n in range(60)]
    report = summary(parse_orders(_orders_csv(rows), STORE, NOW).report)
    assert (len(report["skipped"]), report["skipped_total"]) == (50, 60)  # type: ignore[arg-type]


def test_order_id_falls_back_to_the_name() -> None:
    (order,) = parse_orders(_orders_csv([_first_row(Id="")]), STORE, NOW).events
    assert (order.order_id, order.order_number) == ("#1", "#1")


def test_a_missing_required_column_is_named() -> None:
    text = ORDERS.decode().replace(",Total,", ",Grand Total,", 1).encode()
    with pytest.raises(NotAnExport, match="has no 'Total' column"):
        parse_orders(text, STORE, NOW)


def test_headers_match_whatever_their_case_and_a_bom() -> None:
    header, _, rest = ORDERS.decode().partition("\n")
    assert parse_orders(("\ufeff" + header.upper() + "\n" + rest).encode(), STORE, NOW).events == \
        parse_orders(ORDERS, STORE, NOW).events


def test_a_file_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(NotAnExport, match="not UTF-8"):
        parse_orders(b"Name,Email\n\xff\xfe", STORE, NOW)


def test_customers_export_maps_to_customer_records() -> None:
    parsed = parse_customers(CUSTOMERS, STORE, NOW)
    records = {record.customer_id: record for record in parsed.events}

    assert sorted(records) == ["7010000000001", "7010000000002", "7010000000003", "7010000000004", "7010000000007"]
    ann = records["7010000000001"]
    assert (ann.email, ann.phone, ann.country, ann.tags) == ("ann.lee@example.com", "+15035550142", "US",
                                                             ("vip", "newsletter"))
    assert [(c.channel, c.state, c.source, c.at) for c in ann.consents] == [
        (Channel.EMAIL, ConsentState.SUBSCRIBED, "import:customers.csv", NOW),
        (Channel.SMS, ConsentState.NOT_SUBSCRIBED, "import:customers.csv", NOW)]
    assert ann.version == CUSTOMER_IMPORT_VERSION
    assert ann.updated_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert records["7010000000003"].phone == "+33612345678"  # national format, read in the address's country
    assert records["7010000000004"].email is None
    assert records["7010000000007"].consents == ()  # "maybe" is no answer

    report = summary(parsed.report)
    assert report["rows_read"] == 8
    assert (report["duplicates"], report["duplicate_ids"]) == (1, ["7010000000002"])
    # Cleanings are counted on the records kept: row 7's unreadable email and phone show as its skip reason.
    assert report["cleaned"] == {"email_consent_unreadable": 1, "email_trimmed_lowercased": 2, "phone_to_e164": 4}
    assert report["skipped"] == [
        {"row": 6, "reason": "no email and no phone: the customer cannot be linked to a shopper"},
        {"row": 7, "reason": "no email and no phone: the customer cannot be linked to a shopper"},
    ]


def test_legacy_customers_export_is_read_by_header_name() -> None:
    parsed = parse_customers(LEGACY_CUSTOMERS, STORE, NOW)
    records = {record.email: record for record in parsed.events}
    assert sorted(records, key=str) == ["ann.lee@example.com", "bob@example.com"]
    ann = records["ann.lee@example.com"]
    # No Customer ID column in that layout: the email stands in for it.
    assert (ann.customer_id, ann.phone, ann.country, ann.tags) == ("ann.lee@example.com", "+15035550142", "US",
                                                                   ("vip",))
    assert [(c.channel, c.state) for c in ann.consents] == [(Channel.EMAIL, ConsentState.SUBSCRIBED)]
    assert [(s.row, s.reason) for s in parsed.report.skipped] == [
        (4, "no email and no phone: the customer cannot be linked to a shopper")]


def test_customers_export_without_a_consent_column_is_refused_by_name() -> None:
    text = b"Customer ID,First Name,Email\n1,Ann,ann@example.com\n"
    with pytest.raises(NotAnExport, match="'Accepts Email Marketing' or 'Accepts Marketing'"):
        parse_customers(text, STORE, NOW)


# --- by property ------------------------------------------------------------------------------------------

_FIXTURE_ROWS = list(csv.reader(io.StringIO(ORDERS.decode())))
_HEADER, _BODY = _FIXTURE_ROWS[0], _FIXTURE_ROWS[1:]


def _as_csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([_HEADER, *rows])
    return out.getvalue().encode()


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(len(_BODY))), repeats=st.lists(st.integers(0, len(_BODY) - 1), max_size=10))
def test_row_order_and_duplicated_rows_do_not_change_the_orders(order: list[int], repeats: list[int]) -> None:
    expected = parse_orders(ORDERS, STORE, NOW).events
    rows = [_BODY[i] for i in order] + [_BODY[i] for i in repeats]
    assert parse_orders(_as_csv(rows), STORE, NOW).events == expected


# --- the import: archive, then apply, idempotently ---------------------------------------------------------


def test_import_archives_the_file_then_applies_and_a_second_import_changes_nothing() -> None:
    repository, archive = FakeProfileRepository(), FakeRawArchive()

    first = import_export(ExportKind.ORDERS, ORDERS, "orders_export.csv", STORE, NOW,
                          repository=repository, archive=archive)
    assert first.as_json()["orders_found"] == 9
    assert (first.as_json()["applied"], first.as_json()["unchanged"]) == (9, 0)
    (key,) = archive.objects
    assert key == first.archive_key
    assert key.startswith(f"{IMPORT_PREFIX}st_import/20260301T120000.000000Z-") and key.endswith("-orders_export.csv")
    assert archive.objects[key].body == ORDERS
    assert archive.objects[key].metadata["store-id"] == "st_import"

    bob = repository.get_profile("ws_import", profile_id_for("ws_import", "email#bob@example.com"))
    assert bob is not None and (bob.orders_count, bob.total_spent) == (2, Decimal("30.00"))
    saves = repository.saves

    second = import_export(ExportKind.ORDERS, ORDERS, "orders_export.csv", STORE, NOW,
                           repository=repository, archive=archive)
    assert (second.as_json()["applied"], second.as_json()["unchanged"]) == (0, 9)
    assert repository.saves == saves


def test_dry_run_writes_nothing() -> None:
    repository, archive = FakeProfileRepository(), FakeRawArchive()
    result = import_export(ExportKind.CUSTOMERS, CUSTOMERS, "customers_export.csv", STORE, NOW,
                           repository=repository, archive=archive, dry_run=True)
    report = result.as_json()
    assert (report["dry_run"], report["customers_found"], report["archive_key"]) == (True, 5, None)
    assert archive.empty and repository.saves == 0


def test_an_import_never_overrides_a_newer_webhook_version() -> None:
    repository, archive = FakeProfileRepository(), FakeRawArchive()
    imported = _by_number(parse_orders(ORDERS, STORE, NOW).events)["#1003"]
    webhook = imported.model_copy(update={"refunds": {"r1": Decimal("80.00")},
                                          "version": version_stamp(imported.updated_at, NOW)})
    assert apply_event(repository, webhook, NOW)
    result = import_export(ExportKind.ORDERS, ORDERS, "orders_export.csv", STORE, NOW,
                           repository=repository, archive=archive)
    assert result.outcome is not None and result.outcome.applied == 8
    cy = repository.get_profile("ws_import", profile_id_for("ws_import", "email#cy@example.com"))
    assert cy is not None and cy.total_spent == Decimal("0.00")
