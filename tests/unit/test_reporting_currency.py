"""Money in one currency per number: per-currency sums on the profile, figures in the reporting currency."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
import yaml
from crm.ingestion import apply_event
from crm.models.currency import ISO_4217, RATE_PATTERN, CurrencySettings, CurrencySettingsRequest, JobStatus
from crm.models.orders import CanonicalOrder
from crm.models.profile import Profile
from crm.reporting import CurrencySettingsInvalid, carry_out, parse_settings, replace_settings, with_figures
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW, ROOT, cents, order
from tests.fakes import FakeCurrencyStore, FakeCurrencyTasks, FakeProfileRepository

USD_EUR = CurrencySettings(workspace_id="ws_a", reporting_currency="USD", rates={"EUR": Decimal("1.10")}, version=1)


def _apply(repository: FakeProfileRepository, *orders: CanonicalOrder) -> Profile:
    for event in orders:
        apply_event(repository, event, NOW)
    [profile] = [p for p in repository.profiles.values() if not p.merged_into]
    return profile


def _three_currencies() -> tuple[CanonicalOrder, ...]:
    # The reproduction: 100 USD (Shopify), 100 EUR and 10000 JPY (a custom store), one shopper.
    return (order("1", store_id="st_shop", total=Decimal("100.00"), currency="USD"),
            order("2", store_id="st_custom", total=Decimal("100.00"), currency="EUR"),
            order("3", store_id="st_custom", total=Decimal("10000.00"), currency="JPY"))


def test_orders_in_three_currencies_are_never_added_at_face_value() -> None:
    repository = FakeProfileRepository()
    repository.currency["ws_a"] = USD_EUR
    profile = _apply(repository, *_three_currencies())
    assert profile.spent_by_currency == {"EUR": Decimal("100.00"), "JPY": Decimal("10000.00"),
                                         "USD": Decimal("100.00")}
    assert (profile.currency, profile.total_spent) == ("USD", Decimal("210.00"))  # 100 + 100 x 1.10
    assert profile.unconverted_currencies == ("JPY",)
    assert profile.orders_count == 3
    assert profile.average_order_value == Decimal("105.00")  # over the two converted orders


def test_without_settings_a_profile_reports_in_its_main_currency_and_names_the_others() -> None:
    profile = _apply(FakeProfileRepository(), *_three_currencies())
    assert profile.total_spent != Decimal("10200.00")
    assert profile.currency == "EUR"  # one order each: the first in alphabetical order
    assert (profile.total_spent, profile.unconverted_currencies) == (Decimal("100.00"), ("JPY", "USD"))


def test_a_merge_adds_the_sums_per_currency_and_derives_again() -> None:
    repository = FakeProfileRepository()
    repository.currency["ws_a"] = USD_EUR
    apply_event(repository, order("1", email="a@example.com", phone="+14155550100", currency="USD",
                                  total=Decimal("30.00")), NOW)
    apply_event(repository, order("2", email=None, phone="+14155550199", currency="EUR", total=Decimal("20.00")), NOW)
    # An order naming both phones proves the two profiles are one shopper.
    joined = order("3", email="a@example.com", phone="+14155550199", currency="EUR", total=Decimal("10.00"))
    profile = _apply(repository, joined)
    assert profile.spent_by_currency == {"EUR": Decimal("30.00"), "USD": Decimal("30.00")}
    assert profile.orders_by_currency == {"EUR": 2, "USD": 1}
    assert profile.total_spent == Decimal("63.00")


def test_refunds_are_net_per_currency_and_stated_in_the_reporting_currency() -> None:
    repository = FakeProfileRepository()
    repository.currency["ws_a"] = USD_EUR
    profile = _apply(repository, order("1", currency="EUR", total=Decimal("50.00"), refunded=Decimal("20.00")))
    assert profile.spent_by_currency == {"EUR": Decimal("30.00")}
    assert profile.refunded_by_currency == {"EUR": Decimal("20.00")}
    assert (profile.total_spent, profile.total_refunded) == (Decimal("33.00"), Decimal("22.00"))


def test_changing_the_rates_re_derives_every_profile_through_a_job() -> None:
    repository = FakeProfileRepository()
    store = FakeCurrencyStore(repository.currency)
    tasks = FakeCurrencyTasks()
    _apply(repository, order("1", currency="EUR", total=Decimal("100.00")),
           order("2", currency="USD", total=Decimal("5.00")))
    apply_event(repository, order("3", email="other@example.com", currency="JPY", total=Decimal("1000")), NOW)
    request = CurrencySettingsRequest.model_validate({"reporting_currency": "USD",
                                                     "rates": {"EUR": "1.10", "JPY": "0.0067"}})
    held, job = replace_settings(store, tasks, "ws_a", request, NOW, shares=3)
    assert (held.version, job.status, len(tasks.tasks)) == (1, JobStatus.RUNNING, 3)
    for task in tasks.tasks + tasks.tasks[:1]:  # a task delivered twice is counted once
        carry_out(task, repository, store, NOW + timedelta(seconds=1))
    done = store.job("ws_a", job.job_id)
    assert done is not None
    assert (done.status, done.profiles, done.rederived) == (JobStatus.DONE, 2, 2)
    figures = {p.email: (p.currency, p.total_spent, p.unconverted_currencies, p.currency_settings_version)
               for p in repository.profiles.values()}
    assert figures == {"shopper@example.com": ("USD", Decimal("115.00"), (), 1),
                       "other@example.com": ("USD", Decimal("6.70"), (), 1)}
    # The same settings again: nothing left to write.
    again, second = replace_settings(store, tasks, "ws_a", request, NOW, shares=1)
    carry_out(tasks.tasks[-1], repository, store, NOW)
    assert store.job("ws_a", second.job_id) is not None
    assert store.job("ws_a", second.job_id).rederived == 2  # type: ignore[union-attr]  # the version moved on
    assert again.version == 2


def test_an_order_applied_at_old_rates_while_the_job_runs_is_derived_again() -> None:
    repository = FakeProfileRepository()
    store = FakeCurrencyStore(repository.currency)
    tasks = FakeCurrencyTasks()
    _apply(repository, order("1", currency="EUR", total=Decimal("100.00")))
    request = CurrencySettingsRequest.model_validate({"reporting_currency": "USD", "rates": {"EUR": "2"}})

    def settings_change_between_the_orders_read_and_its_write() -> None:
        repository.before_save = None
        replace_settings(store, tasks, "ws_a", request, NOW, shares=1)
        carry_out(tasks.tasks[0], repository, store, NOW)

    repository.before_save = settings_change_between_the_orders_read_and_its_write
    profile = _apply(repository, order("2", currency="EUR", total=Decimal("10.00")))
    assert repository.conflicts >= 1
    assert (profile.total_spent, profile.currency, profile.currency_settings_version) == (Decimal("220.00"), "USD", 1)


@pytest.mark.parametrize(("body", "problem"), [
    (b"", "body: must be an object"),
    (b"[]", "body: must be an object"),
    (b"{", "body: not JSON"),
    (b'{"rates": {}}', "reporting_currency: Field required"),
    (b'{"reporting_currency": "usd"}', "reporting_currency: 'usd' is not an ISO 4217"),
    (b'{"reporting_currency": "ABC"}', "reporting_currency: 'ABC' is not an ISO 4217"),
    (b'{"reporting_currency": "USD", "rates": {"EUR": 1.1}}', "rates.EUR: a rate is given as a decimal string"),
    (b'{"reporting_currency": "USD", "rates": {"EUR": "-1"}}', "rates.EUR: a rate is a positive decimal"),
    (b'{"reporting_currency": "USD", "rates": {"EUR": "0"}}', "rates.EUR: a rate is a positive decimal"),
    (b'{"reporting_currency": "USD", "rates": {"EUR": "NaN"}}', "rates.EUR: a rate is a positive decimal"),
    (b'{"reporting_currency": "USD", "rates": {"EUR": "abc"}}', "rates.EUR: a rate is a positive decimal"),
    (b'{"reporting_currency": "USD", "rates": {"EUR": "1e10"}}', "rates.EUR: a rate is a positive decimal"),
    (b'{"reporting_currency": "USD", "rates": {"EUR": "1.1234567890123"}}', "12 after"),
    (b'{"reporting_currency": "USD", "rates": {"EUR": " 1.1"}}', "rates.EUR: a rate is a positive decimal"),
    (b'{"reporting_currency": "USD", "rates": {"XYZ": "1"}}', "rates.XYZ.\\[key\\]: 'XYZ' is not an ISO 4217"),
    (b'{"reporting_currency": "USD", "extra": 1}', "extra: Extra inputs are not permitted"),
])
def test_refused_settings_name_the_field_at_fault(body: bytes, problem: str) -> None:
    with pytest.raises(CurrencySettingsInvalid, match=problem):
        parse_settings(body)


def test_accepted_settings_keep_every_digit() -> None:
    chosen = parse_settings(b'{"reporting_currency": "USD", "rates": {"EUR": "1.0837", "JPY": ".0066891"}}')
    assert chosen.rates == {"EUR": Decimal("1.0837"), "JPY": Decimal("0.0066891")}
    # The reporting currency's own rate is 1, whatever is sent.
    assert parse_settings(b'{"reporting_currency": "USD", "rates": {"USD": "2"}}').rates == {}


def test_the_openapi_document_states_the_codes_and_rates_the_code_accepts() -> None:
    document = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    schemas = document["components"]["schemas"]
    assert set(schemas["CurrencyCode"]["enum"]) == ISO_4217
    rates = schemas["CurrencySettingsRequest"]["properties"]["rates"]
    assert rates["additionalProperties"]["pattern"] == RATE_PATTERN


# --- order-safety of the sums per currency, by property -----------------------------------------------

CURRENCIES = ("USD", "EUR", "JPY")
RATES = {"USD": Decimal(1), "EUR": Decimal("1.0837")}  # JPY has no rate: left out of the figures


@st.composite
def versions(draw: st.DrawFn) -> list[CanonicalOrder]:
    """Versions of a few orders (each with its own currency), some unpaid, some refunded."""
    found: list[CanonicalOrder] = []
    for number in range(draw(st.integers(1, 5))):
        currency = draw(st.sampled_from(CURRENCIES))
        created = NOW - timedelta(days=draw(st.integers(1, 300)))
        for step in range(draw(st.integers(1, 3))):
            total = draw(st.integers(0, 5_000_000))
            found.append(order(str(number), currency=currency, total=cents(total),
                               refunded=cents(draw(st.integers(0, total + 100))), paid=draw(st.booleans()),
                               created_at=created, updated_at=created + timedelta(seconds=step)))
    return found


@settings(max_examples=60, deadline=None)
@given(history=versions(), data=st.data())
def test_sums_per_currency_are_exact_whatever_the_arrival_order(history: list[CanonicalOrder],
                                                                data: st.DataObject) -> None:
    arrivals = data.draw(st.permutations(history + data.draw(st.lists(st.sampled_from(history), max_size=4))))
    repository = FakeProfileRepository()
    repository.currency["ws_a"] = CurrencySettings(workspace_id="ws_a", reporting_currency="USD",
                                                   rates={"EUR": RATES["EUR"]}, version=3)
    profile = _apply(repository, *arrivals)
    newest = {o.order_id: o for o in sorted(history, key=lambda o: o.version)}
    spent: dict[str, Decimal] = defaultdict(Decimal)
    counted: dict[str, int] = defaultdict(int)
    for last in newest.values():
        if last.paid:
            spent[last.currency] += max(last.total_price - last.total_refunded, Decimal(0))
            counted[last.currency] += 1
    assert profile.spent_by_currency == {c: v for c, v in spent.items() if v}
    assert profile.orders_by_currency == {c: n for c, n in counted.items() if n}
    assert profile.orders_count == sum(counted.values())
    assert profile.unpaid_orders_count == sum(1 for last in newest.values() if not last.paid)
    expected = sum((spent[c] * RATES[c] for c in spent if c in RATES), Decimal(0))
    assert profile.total_spent == expected.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    assert profile.unconverted_currencies == (("JPY",) if spent.get("JPY") or counted.get("JPY") else ())
    assert profile == with_figures(profile, repository.currency["ws_a"])  # derived is a fixed point


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_merge_keeps_every_currencys_sum_whatever_the_arrival_order(data: st.DataObject) -> None:
    # Orders of two identities that start as two profiles, and one order naming both: one shopper in the end.
    who = [("a@example.com", None), (None, "+14155550199"), ("a@example.com", "+14155550199")]
    placed = [order(str(n), email=email, phone=phone, currency=data.draw(st.sampled_from(CURRENCIES)),
                    total=cents(data.draw(st.integers(0, 1_000_000))), paid=data.draw(st.booleans()))
              for n, (email, phone) in enumerate(data.draw(st.lists(st.sampled_from(who[:2]), max_size=4)) + who[2:])]
    repository = FakeProfileRepository()
    repository.currency["ws_a"] = CurrencySettings(workspace_id="ws_a", reporting_currency="EUR",
                                                   rates={"USD": Decimal("0.9")}, version=1)
    profile = _apply(repository, *data.draw(st.permutations(placed)))
    spent: dict[str, Decimal] = defaultdict(Decimal)
    for each in placed:
        if each.paid:
            spent[each.currency] += each.total_price
    assert profile.spent_by_currency == {c: v for c, v in spent.items() if v}
    assert profile.unpaid_orders_count == sum(not each.paid for each in placed)
    expected = spent["EUR"] + spent["USD"] * Decimal("0.9")
    assert (profile.currency, profile.total_spent) == ("EUR", expected.quantize(Decimal("0.01")))
