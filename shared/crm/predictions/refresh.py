"""Keeping each profile's prediction current: the scheduled fit of a workspace, and the refresh after an order.

The models themselves are pure functions (crm.predictions.predict: ``fit_workspace`` and ``predict``); they
are passed in as :class:`Models` so that this module, and whatever imports it, never loads numpy or scipy
itself (the functions that fit carry them in a layer of their own).

- :func:`run_workspace` (the daily schedule): every live profile's history, one fit of the workspace, kept
  (the fit after an order is predicted with), and each profile's prediction written where it moved.
  The same pass gives the products bought together (crm.affinity), stored when an AffinityStore is given.
- :func:`refresh_profiles` (after OrderPlaced/OrderRefunded): the named profiles predicted again with the
  kept fit, without fitting again.

A prediction is written only when a figure moved past the precision it is kept to (:func:`moved`): the time
since a shopper's last order grows every day, so every figure drifts a little every day, and rewriting every
profile daily would cost the reference store more than its whole segments bill
(docs/predictions-in-product.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from crm.affinity import basket_of, changes, product_affinity, shown_products
from crm.models.predictions import Prediction, PredictionSettings, WorkspaceFit
from crm.models.profile import Profile
from crm.ports import AffinityStore, ConcurrentUpdate, PredictionStore, ProfileRepository
from crm.predictions.histories import History, history_of

Histories = Mapping[str, Sequence[tuple[datetime, Decimal]]]
FitWorkspace = Callable[[str, Histories, datetime, PredictionSettings], WorkspaceFit]
PredictProfiles = Callable[[WorkspaceFit, Histories, datetime], dict[str, Prediction]]
# Starts a reading of the DynamoDB meter (crm.wiring.fit_write_pause); what it gives says, whenever asked, how
# many seconds the units consumed since ran ahead of the pace.
Pace = Callable[[], Callable[[], int]]

# The precision a stored prediction keeps (a product decision, docs/predictions-in-product.md): a figure is
# written again when today's moved from the stored one by at least this much, never for less.
PROBABILITY_STEP = Decimal("0.01")  # p_alive, churn_probability: a percentage point, as the console shows them
ORDERS_STEP = Decimal("0.05")  # expected orders in 90 / 365 days: 0.05 orders ...
ORDERS_SHARE = Decimal("0.05")  # ... or 5 % of the stored figure, whichever is more
MONEY_STEP = Decimal("0.50")  # CLV and expected order value: 50 cents ...
MONEY_SHARE = Decimal("0.05")  # ... or 5 % of the stored figure, whichever is more
NEXT_ORDER_STEP = timedelta(days=1)  # next_order_expected_at: a day ...
NEXT_ORDER_SHARE = 0.1  # ... or a tenth of the time from now until the nearer of the two dates, whichever is more
CONFLICT_RETRIES = 3
# A paced fit writes until it is this far ahead of its pace, then hands the rest to its queue for as long
# (crm.predictions.daily): a minute's units at once, which target tracking (two minutes above its target)
# does not answer by scaling the table out, and few hops, each of which reads the profiles again.
HOP_AHEAD_SECONDS = 60


@dataclass(frozen=True)
class Models:
    """The pure entry points (crm.predictions.predict), given by the caller."""

    fit: FitWorkspace
    predict: PredictProfiles


@dataclass(frozen=True)
class Outcome:
    profiles: int
    written: int
    fit: WorkspaceFit | None = None
    products_written: int = 0  # products whose related products were written (new, moved or gone)
    read_from: str = "table"  # where the daily fit read the profiles: the table, or a segment run's id
    # A paced fit that ran ahead of its pace stopped after this profile (in id order): the rest is written later.
    rest_after: str | None = None
    held_back: int = 0  # seconds the writes ran ahead of their pace: how long the rest waits on the queue


def _figure_moved(old: Decimal | None, new: Decimal | None, step: Decimal, share: Decimal = Decimal(0)) -> bool:
    if old is None or new is None:
        return old is not new
    return abs(new - old) >= max(step, abs(old) * share)


def next_order_precision(held: datetime, new: datetime, now: datetime) -> timedelta:
    """How far apart two next-order dates may be and still read the same: a day, or a tenth of the time until
    the nearer of them. The expected wait of a shopper who does not buy barely changes from one day to the
    next, so the date itself slides with ``now``; to the day, that rewrote a quarter of all profiles daily. A
    date that has come, or is ten days off or less, is kept to the day."""
    return max(NEXT_ORDER_STEP, (min(held, new) - now) * NEXT_ORDER_SHARE)


def _next_order_moved(held: Prediction, new: Prediction) -> bool:
    old, fresh = held.next_order_expected_at, new.next_order_expected_at
    if old is None or fresh is None:
        return old is not fresh  # "within a year" or not is always news
    return abs(fresh - old) >= next_order_precision(old, fresh, new.computed_at)


def moved(held: Prediction | None, new: Prediction) -> bool:
    """Whether ``new`` says something ``held`` does not: another status, reason, model or currency, or a
    figure moved past its precision (the constants above)."""
    if held is None:
        return True
    if (held.status, held.reason, held.model, held.currency) != (new.status, new.reason, new.model, new.currency):
        return True
    return (_next_order_moved(held, new)
            or any(_figure_moved(getattr(held, name), getattr(new, name), PROBABILITY_STEP)
                   for name in ("p_alive", "churn_probability"))
            or any(_figure_moved(getattr(held, name), getattr(new, name), ORDERS_STEP, ORDERS_SHARE)
                   for name in ("expected_orders_90d", "expected_orders_365d"))
            or any(_figure_moved(getattr(held, name), getattr(new, name), MONEY_STEP, MONEY_SHARE)
                   for name in ("clv", "expected_order_value")))


def _in_currency(prediction: Prediction, profile: Profile) -> Prediction:
    # The models learn amounts in the reporting currency; the profile names it.
    if prediction.currency is None and prediction.clv is not None and profile.currency:
        return prediction.model_copy(update={"currency": profile.currency})
    return prediction


def _write(store: PredictionStore, profiles: ProfileRepository, profile: Profile, prediction: Prediction,
           again: Callable[[Profile], Prediction]) -> bool:
    """Write the prediction if it moved, under the profile's revision; a profile written meanwhile (a new
    order, say) is read and predicted again. Whether it was written."""
    current: Profile | None = profile
    for _ in range(CONFLICT_RETRIES):
        if current is None or current.merged_into is not None:
            return False
        if not moved(current.prediction, prediction):
            return False
        try:
            store.write_prediction(current, prediction)
            return True
        except ConcurrentUpdate:
            current = profiles.get_profile(profile.workspace_id, profile.profile_id)
            if current is not None:
                prediction = again(current)
    raise ConcurrentUpdate(f"profile {profile.profile_id} kept changing; its prediction is refreshed again")


def _predict_one(models: Models, fit: WorkspaceFit, profile: Profile, now: datetime) -> Prediction:
    found = models.predict(fit, {profile.profile_id: history_of(profile)}, now)
    return _in_currency(found[profile.profile_id], profile)


def _refresh_affinity(affinity: AffinityStore, workspace_id: str, held: Mapping[str, Profile], now: datetime) -> int:
    found = product_affinity(workspace_id, (basket_of(p) for p in held.values()), now,
                             shown=shown_products(held.values()))
    put, deleted = changes(affinity.products(workspace_id), found)
    affinity.replace(workspace_id, put, deleted)
    return len(put) + len(deleted)


def write_moved(store: PredictionStore, profiles: ProfileRepository, models: Models, fit: WorkspaceFit,
                held: Mapping[str, Profile], now: datetime, after: str | None = None,
                pace: Pace | None = None) -> Outcome:
    """Predict the held profiles after ``after`` (in id order) with ``fit`` as of ``now``, and write what
    moved; with ``pace``, stop once the writes are ``HOP_AHEAD_SECONDS`` ahead of it, saying after which
    profile (``rest_after``) and how far ahead (``held_back``). A profile's prediction depends on its history
    alone, so the rest predicted later with the same fit is what one pass would have written."""
    remaining = sorted(pid for pid in held if after is None or pid > after)
    predictions = models.predict(fit, {pid: history_of(held[pid]) for pid in remaining}, now)
    ahead = pace() if pace is not None else None  # from the first write: the fitting before consumed nothing
    written = 0
    for profile_id in remaining:
        profile = held[profile_id]
        written += _write(store, profiles, profile, _in_currency(predictions[profile_id], profile),
                          lambda current: _predict_one(models, fit, current, now))
        if ahead is not None and profile_id != remaining[-1] and (seconds := ahead()) >= HOP_AHEAD_SECONDS:
            return Outcome(profiles=len(held), written=written, fit=fit, rest_after=profile_id, held_back=seconds)
    return Outcome(profiles=len(held), written=written, fit=fit)


def run_workspace(store: PredictionStore, profiles: ProfileRepository, models: Models, workspace_id: str,
                  now: datetime, affinity: AffinityStore | None = None,
                  snapshot: Iterable[Profile] | None = None, pace: Pace | None = None) -> Outcome:
    """Fit the workspace on every live profile's history, keep the fit, and write what moved; with
    ``affinity``, the products bought together from the same read of the profiles.

    ``snapshot``: the workspace's profiles as read a little earlier (the day's segment run's work files,
    crm.segments.snapshot), in place of a read of the table. Each write is guarded by the revision the
    snapshot holds, so a profile written since is read again and predicted on what it holds now.
    ``pace``: the writes' pace (:func:`write_moved`)."""
    settings = store.settings(workspace_id) or PredictionSettings()
    read = profiles.workspace_profiles(workspace_id) if snapshot is None else snapshot
    held = {p.profile_id: p for p in read if p.merged_into is None}  # every profile read before any write
    products_written = _refresh_affinity(affinity, workspace_id, held, now) if affinity is not None else 0
    histories: dict[str, History] = {pid: history_of(p) for pid, p in held.items()}
    fit = models.fit(workspace_id, histories, now, settings)
    store.put_fit(fit)
    return replace(write_moved(store, profiles, models, fit, held, now, pace=pace), products_written=products_written)


def refresh_profiles(store: PredictionStore, profiles: ProfileRepository, models: Models, workspace_id: str,
                     profile_ids: Iterable[str], now: datetime, fit: WorkspaceFit | None = None) -> Outcome:
    """Predict these profiles again with the workspace's kept fit (``fit``, else read); a merged id
    refreshes the profile it was merged into, and a profile named twice (two orders of a batch) once. The
    profiles are read together, one batched read for all of them. Before the workspace's first fit there is
    nothing to predict with, and nothing is written: its first scheduled run gives every profile its
    prediction."""
    fit = fit or store.fit(workspace_id)
    if fit is None:
        return Outcome(profiles=0, written=0)
    found = profiles.get_profiles(workspace_id, set(profile_ids))
    live = {profile.profile_id: profile for profile in found.values()}
    written = 0
    for profile in live.values():
        written += _write(store, profiles, profile, _predict_one(models, fit, profile, now),
                          lambda current: _predict_one(models, fit, current, now))
    return Outcome(profiles=len(live), written=written, fit=fit)


__all__ = ["HOP_AHEAD_SECONDS", "Models", "Outcome", "Pace", "moved", "next_order_precision", "refresh_profiles",
           "run_workspace", "write_moved"]
