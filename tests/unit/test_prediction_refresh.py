"""Predictions in the product (crm.predictions.histories, crm.predictions.refresh): the histories the models
learn from, the scheduled fit, the refresh after an order with the kept fit, and writing only what moved.
The models are a stand-in (tests/prediction_models.py): what is checked here is the plumbing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from crm.ingestion import apply_event
from crm.models.predictions import Prediction, PredictionSettings
from crm.predictions.histories import history_of, order_times
from crm.predictions.refresh import moved, refresh_profiles, run_workspace
from crm.predictions.settings import PredictionSettingsInvalid, parse_settings
from crm.profiles import profile_id_for
from crm.segments.definition import Definition, parse_segment
from crm.segments.evaluate import matches
from crm.segments.subject import subject_of
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW, order
from tests.fakes import FakePredictionStore, FakeProfileRepository
from tests.prediction_models import FakeModels

WS = "ws_a"


def parse_definition(node: dict[str, object]) -> Definition:
    return parse_segment({"name": "s", "definition": node}).definition
FEW = PredictionSettings(min_repeat_buyers=2)


def _buy(repository: FakeProfileRepository, email: str, days_ago: list[int], total: str = "50.00") -> str:
    for number, days in enumerate(days_ago):
        apply_event(repository, order(f"{email}-{number}", email=email, total=Decimal(total),
                                      created_at=NOW - timedelta(days=days)), NOW)
    return profile_id_for(WS, f"email#{email}")


def _world() -> tuple[FakeProfileRepository, FakePredictionStore, FakeModels]:
    repository = FakeProfileRepository()
    store = FakePredictionStore(repository)
    store.put_settings(WS, FEW)
    return repository, store, FakeModels()


def test_a_profiles_history_is_its_counted_orders_at_its_average_order_value() -> None:
    repository, _, _ = _world()
    ann = _buy(repository, "ann@example.com", [300, 200, 10], total="30.00")
    apply_event(repository, order("ann-x", email="ann@example.com", total=Decimal("90.00"),
                                  created_at=NOW - timedelta(days=5), paid=False), NOW)  # unpaid: not counted
    profile = repository.get_profile(WS, ann)
    assert profile is not None
    history = history_of(profile)
    assert [at for at, _ in history] == [NOW - timedelta(days=d) for d in (300, 200, 10)]
    assert {amount for _, amount in history} == {Decimal("30.00")}


def test_a_profile_without_kept_times_places_its_orders_at_first_and_last() -> None:
    repository, _, _ = _world()
    ann = _buy(repository, "ann@example.com", [300, 200, 10])
    profile = repository.get_profile(WS, ann)
    assert profile is not None
    old = profile.model_copy(update={"recent": None})
    assert order_times(old) == [NOW - timedelta(days=300), NOW - timedelta(days=10), NOW - timedelta(days=10)]


def test_the_scheduled_run_fits_keeps_the_fit_and_writes_every_profiles_prediction() -> None:
    repository, store, models = _world()
    ann = _buy(repository, "ann@example.com", [300, 200, 10])
    bob = _buy(repository, "bob@example.com", [100, 40])
    cat = _buy(repository, "cat@example.com", [5])
    outcome = run_workspace(store, repository, models.models(), WS, NOW)
    assert (outcome.profiles, outcome.written, models.fits) == (3, 3, 1)
    fit = store.fit(WS)
    assert fit is not None and fit.status == "fitted" and fit.repeat_buyers == 2 and fit.settings == FEW
    for profile_id in (ann, bob, cat):
        profile = repository.get_profile(WS, profile_id)
        assert profile is not None and profile.prediction is not None
        assert profile.prediction.status == "predicted"
        assert profile.prediction.currency == "USD"  # the reporting currency, filled in by the caller


def test_too_few_repeat_buyers_say_so_on_every_profile() -> None:
    repository, store, models = _world()
    store.put_settings(WS, PredictionSettings(min_repeat_buyers=30))
    ann = _buy(repository, "ann@example.com", [300, 10])
    run_workspace(store, repository, models.models(), WS, NOW)
    profile = repository.get_profile(WS, ann)
    assert profile is not None and profile.prediction is not None
    assert profile.prediction.status == "workspace_not_fitted"
    assert profile.prediction.reason and "30" in profile.prediction.reason
    assert profile.prediction.clv is None


def test_a_run_the_next_day_writes_only_predictions_that_moved() -> None:
    repository, store, models = _world()
    _buy(repository, "ann@example.com", [300, 200, 10])
    _buy(repository, "bob@example.com", [100, 40])
    run_workspace(store, repository, models.models(), WS, NOW)
    again = run_workspace(store, repository, models.models(), WS, NOW + timedelta(days=1))
    assert again.written == 0  # a day's drift is below every step
    later = run_workspace(store, repository, models.models(), WS, NOW + timedelta(days=60))
    assert later.written == 2


def test_after_an_order_the_profile_is_predicted_again_with_the_kept_fit() -> None:
    repository, store, models = _world()
    ann = _buy(repository, "ann@example.com", [300, 200, 100])
    _buy(repository, "bob@example.com", [100, 40])
    run_workspace(store, repository, models.models(), WS, NOW)
    before = repository.get_profile(WS, ann)
    assert before is not None and before.prediction is not None and before.prediction.p_alive is not None
    apply_event(repository, order("ann-new", email="ann@example.com", total=Decimal("50.00"), created_at=NOW), NOW)
    outcome = refresh_profiles(store, repository, models.models(), WS, [ann], NOW)
    assert (outcome.written, models.fits) == (1, 1)  # no second fit
    after = repository.get_profile(WS, ann)
    assert after is not None and after.prediction is not None and after.prediction.p_alive is not None
    assert after.prediction.p_alive > before.prediction.p_alive


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=4))
def test_after_every_run_each_stored_prediction_reads_as_todays(days_later: list[int]) -> None:
    """Whatever days the runs fall on, what a run leaves stored is within each figure's precision of what
    the models say that day: a run writes every prediction that moved past it, and only those."""
    repository, store, models = _world()
    for email, days in [("ann@example.com", [300, 200, 10]), ("bob@example.com", [100, 40]),
                        ("cat@example.com", [5]), ("dan@example.com", [700, 650, 600, 20])]:
        _buy(repository, email, days)
    run_workspace(store, repository, models.models(), WS, NOW)
    for days in sorted(days_later):
        now = NOW + timedelta(days=days)
        before = {p.profile_id: p.prediction for p in repository.live_profiles()}
        outcome = run_workspace(store, repository, models.models(), WS, now)
        fit = store.fit(WS)
        assert fit is not None
        stored = {p.profile_id: p for p in repository.live_profiles()}
        today = models.predict(fit, {pid: history_of(p) for pid, p in stored.items()}, now)
        assert not any(moved(p.prediction, today[pid].model_copy(update={"currency": "USD"}))
                       for pid, p in stored.items())
        assert outcome.written == sum(stored[pid].prediction != held for pid, held in before.items())


def test_a_batch_naming_a_profile_twice_or_by_a_merged_id_refreshes_it_once() -> None:
    repository, store, models = _world()
    ann = _buy(repository, "ann@example.com", [300, 200, 100])
    _buy(repository, "bob@example.com", [100, 40])
    run_workspace(store, repository, models.models(), WS, NOW)
    survivor = repository.get_profile(WS, ann)
    assert survivor is not None
    repository.profiles[(WS, "gone")] = survivor.model_copy(update={"profile_id": "gone", "merged_into": ann})
    apply_event(repository, order("ann-new", email="ann@example.com", total=Decimal("50.00"), created_at=NOW), NOW)
    writes, predicted = store.writes, models.predicted
    outcome = refresh_profiles(store, repository, models.models(), WS, [ann, "gone", ann, "nobody"], NOW)
    assert (outcome.profiles, outcome.written) == (1, 1)
    assert (store.writes - writes, models.predicted - predicted) == (1, 1)


def test_before_the_first_fit_a_refresh_leaves_the_profile_alone() -> None:
    repository, store, models = _world()
    ann = _buy(repository, "ann@example.com", [30])
    outcome = refresh_profiles(store, repository, models.models(), WS, [ann], NOW)
    profile = repository.get_profile(WS, ann)
    assert profile is not None and profile.prediction is None
    assert (outcome.written, models.predicted, store.writes) == (0, 0, 0)


def test_a_profile_written_meanwhile_is_read_and_predicted_again() -> None:
    repository, store, models = _world()
    ann = _buy(repository, "ann@example.com", [300, 200, 100])
    _buy(repository, "bob@example.com", [100, 40])
    run_workspace(store, repository, models.models(), WS, NOW)
    stale = repository.get_profile(WS, ann)
    store.before_write = lambda: apply_event(repository, order("ann-new", email="ann@example.com",
                                                               total=Decimal("50.00"), created_at=NOW), NOW)
    assert stale is not None
    later = NOW + timedelta(days=60)  # far enough for the prediction to have moved
    refresh_profiles(store, repository, models.models(), WS, [ann], later)
    profile = repository.get_profile(WS, ann)
    assert profile is not None and profile.orders_count == 4  # the order written meanwhile is kept ...
    assert profile.prediction is not None and profile.prediction.computed_at == later
    # ... and predicted from (the stand-in expects the next order 60 days after the last)
    assert profile.prediction.next_order_expected_at == NOW + timedelta(days=60)


def test_the_segments_example_likely_to_churn_worth_keeping_matches_on_the_stored_prediction() -> None:
    repository, store, models = _world()
    big = _buy(repository, "big@example.com", [500, 400, 300], total="400.00")
    small = _buy(repository, "small@example.com", [500, 400, 300], total="20.00")
    fresh = _buy(repository, "fresh@example.com", [20, 2], total="400.00")
    run_workspace(store, repository, models.models(), WS, NOW)
    definition = parse_definition({"all": [{"field": "predicted.churn_probability", "op": "gte", "value": "0.6"},
                                           {"field": "predicted.clv", "op": "gt", "value": "50"}]})
    found = {pid for pid in (big, small, fresh)
             if matches(definition, subject_of(repository.get_profile(WS, pid)), NOW)}  # type: ignore[arg-type]
    assert found == {big}
    nobody = parse_definition({"field": "predicted.clv", "op": "not_exists"})
    assert not any(matches(nobody, subject_of(p), NOW) for p in repository.live_profiles())


_figures = st.decimals(min_value=0, max_value=1, places=4)


@given(_figures, st.decimals(min_value=0, max_value=10_000, places=2))
def test_a_prediction_never_moves_from_itself(p_alive: Decimal, clv: Decimal) -> None:
    prediction = Prediction(status="predicted", computed_at=NOW, p_alive=p_alive, churn_probability=1 - p_alive,
                            clv=clv, currency="USD", next_order_expected_at=NOW)
    assert not moved(prediction, prediction.model_copy(update={"computed_at": NOW + timedelta(days=1)}))
    assert moved(None, prediction)


@pytest.mark.parametrize(("change", "expected"), [
    ({"p_alive": Decimal("0.505")}, False), ({"p_alive": Decimal("0.49")}, True),
    ({"clv": Decimal("104.90")}, False), ({"clv": Decimal("105.00")}, True),
    ({"expected_orders_365d": Decimal("2.09")}, False), ({"expected_orders_365d": Decimal("2.10")}, True),
    ({"next_order_expected_at": NOW + timedelta(hours=23)}, False),
    ({"next_order_expected_at": NOW + timedelta(days=1)}, True),
    ({"next_order_expected_at": NOW - timedelta(days=1)}, True),  # a date that came: to the day
    ({"status": "insufficient_history"}, True), ({"model": "mbgnbd"}, True),
    ({"clv": None}, True),
])
def test_what_counts_as_moved(change: dict[str, object], expected: bool) -> None:
    held = Prediction(status="predicted", model="bgnbd", computed_at=NOW, p_alive=Decimal("0.5"),
                      expected_orders_365d=Decimal("2.00"), clv=Decimal("100.00"), currency="USD",
                      next_order_expected_at=NOW)
    assert moved(held, held.model_copy(update=change)) is expected


@pytest.mark.parametrize(("days_off", "moved_by", "expected"), [
    (100, timedelta(days=9, hours=23), False), (100, timedelta(days=10), True),  # a tenth of 100 days
    (100, -timedelta(days=9), False), (100, -timedelta(days=10), True),  # the nearer date, 91 or 90 days off
    (5, timedelta(hours=23), False), (5, timedelta(days=1), True),  # ten days off or less: to the day
])
def test_a_later_next_order_date_is_kept_to_a_tenth_of_the_time_until_it(days_off: int, moved_by: timedelta,
                                                                         expected: bool) -> None:
    held = Prediction(status="predicted", model="bgnbd", computed_at=NOW,
                      next_order_expected_at=NOW + timedelta(days=days_off))
    new = held.model_copy(update={"next_order_expected_at": NOW + timedelta(days=days_off) + moved_by})
    assert moved(held, new) is expected


def test_the_settings_document_names_the_field_it_refuses() -> None:
    assert parse_settings(b'{"clv_months": 24}') == PredictionSettings(clv_months=24)
    for body, field in [(b'{"clv_months": 0}', "clv_months"), (b'{"monthly_discount_rate": "2"}',
                                                                 "monthly_discount_rate"),
                        (b'{"discount": 1}', "discount"), (b"[]", "body"), (b"{", "body")]:
        with pytest.raises(PredictionSettingsInvalid, match=f"^{field}:"):
            parse_settings(body)


# The precision each figure is kept to (docs/predictions-in-product.md): within it a stored prediction is never
# written again, past it always. Each figure is moved alone; churn_probability moves with p_alive.
_HELD = Prediction(status="predicted", model="bgnbd", computed_at=NOW, p_alive=Decimal("0.5"),
                   churn_probability=Decimal("0.5"), expected_orders_90d=Decimal("1"),
                   expected_orders_365d=Decimal("3"), expected_order_value=Decimal("80.00"), clv=Decimal("200.00"),
                   currency="USD", next_order_expected_at=NOW + timedelta(days=30))
_probability = st.decimals(min_value=0, max_value=1, places=4)
_count = st.decimals(min_value=0, max_value=50, places=4)
_money = st.decimals(min_value=0, max_value=100_000, places=2)


@given(_probability, _probability)
def test_a_probability_is_kept_to_a_percentage_point(held: Decimal, today: Decimal) -> None:
    stored = _HELD.model_copy(update={"p_alive": held, "churn_probability": 1 - held})
    new = stored.model_copy(update={"p_alive": today, "churn_probability": 1 - today, "computed_at": NOW})
    assert moved(stored, new) is (abs(today - held) >= Decimal("0.01"))


@given(st.sampled_from(["expected_orders_90d", "expected_orders_365d"]), _count, _count)
def test_an_expected_count_is_kept_to_five_hundredths_or_five_percent(name: str, held: Decimal,
                                                                       today: Decimal) -> None:
    stored = _HELD.model_copy(update={name: held})
    assert moved(stored, stored.model_copy(update={name: today})) is (
        abs(today - held) >= max(Decimal("0.05"), held / 20))


@given(st.sampled_from(["clv", "expected_order_value"]), _money, _money)
def test_money_is_kept_to_fifty_cents_or_five_percent(name: str, held: Decimal, today: Decimal) -> None:
    stored = _HELD.model_copy(update={name: held})
    assert moved(stored, stored.model_copy(update={name: today})) is (
        abs(today - held) >= max(Decimal("0.50"), held / 20))


_minutes = st.integers(min_value=-400 * 24 * 60, max_value=400 * 24 * 60)


@given(_minutes, _minutes, st.integers(min_value=0, max_value=60))
def test_the_next_order_date_is_kept_to_a_day_or_a_tenth_of_the_time_until_it(held: int, today: int,
                                                                              days_later: int) -> None:
    run = NOW + timedelta(days=days_later)
    stored = _HELD.model_copy(update={"next_order_expected_at": run + timedelta(minutes=held)})
    new = stored.model_copy(update={"next_order_expected_at": run + timedelta(minutes=today), "computed_at": run})
    apart, nearer = abs(today - held), min(held, today)
    assert moved(stored, new) is (apart >= max(24 * 60, nearer / 10))
    if apart < 24 * 60:
        assert not moved(stored, new)


@given(_probability, _probability, st.sampled_from(["0.3", "0.5", "0.6", "0.8"]))
def test_a_churn_segment_on_the_stored_prediction_is_right_but_within_a_point_of_its_cut(
        held: Decimal, today: Decimal, cut: str) -> None:
    """What a segment reads is the stored figure: when it was not written again, its verdict is today's
    unless today's figure is within the precision of the segment's threshold."""
    stored = _HELD.model_copy(update={"p_alive": 1 - held, "churn_probability": held})
    new = stored.model_copy(update={"p_alive": 1 - today, "churn_probability": today})
    repository, _, _ = _world()
    profile = repository.get_profile(WS, _buy(repository, "ann@example.com", [30]))
    assert profile is not None
    definition = parse_definition({"field": "predicted.churn_probability", "op": "gte", "value": cut})
    kept = new if moved(stored, new) else stored
    read = matches(definition, subject_of(profile.model_copy(update={"prediction": kept})), NOW)
    if abs(today - Decimal(cut)) >= Decimal("0.01"):
        assert read is (today >= Decimal(cut))


@given(_money, _money, st.sampled_from(["50", "300", "1000"]))
def test_a_clv_segment_on_the_stored_prediction_is_right_but_within_five_percent_of_its_cut(
        held: Decimal, today: Decimal, cut: str) -> None:
    stored = _HELD.model_copy(update={"clv": held})
    new = stored.model_copy(update={"clv": today})
    repository, _, _ = _world()
    profile = repository.get_profile(WS, _buy(repository, "ann@example.com", [30]))
    assert profile is not None
    definition = parse_definition({"field": "predicted.clv", "op": "gt", "value": cut})
    kept = new if moved(stored, new) else stored
    read = matches(definition, subject_of(profile.model_copy(update={"prediction": kept})), NOW)
    if abs(today - Decimal(cut)) >= max(Decimal("0.50"), Decimal(cut) / 20) * Decimal("1.06"):
        assert read is (today > Decimal(cut))
