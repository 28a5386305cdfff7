"""`crm demo`'s predictions part: the workspace fitted as the daily schedule would, the fit stated, a few
profiles' predictions (the biggest predicted CLVs, and the likeliest to churn among past buyers), and the
products bought together that the same run kept (docs/affinity.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from crm.adapters.affinity import DynamoAffinityStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.models.profile import Profile

from crm_local.runtime import LocalRuntime

SHOWN = 3


class MarketerApi(Protocol):
    def ok(self, method: str, path: str, body: Any = None) -> Any: ...


def _line(profile: Profile) -> str:
    held = profile.prediction
    assert held is not None
    upcoming = held.next_order_expected_at
    next_order = upcoming.date().isoformat() if upcoming else "not within a year"
    return (f"  {profile.email or profile.profile_id:<32} {profile.orders_count} orders: clv {held.clv} "
            f"{held.currency}, p_alive {held.p_alive}, churn {held.churn_probability}, next order {next_order}")


def _figure(profile: Profile, name: str) -> Decimal:
    value = getattr(profile.prediction, name, None)
    return value if isinstance(value, Decimal) else Decimal(0)


def demo_predictions(runtime: LocalRuntime, api: MarketerApi, table: str, workspace_id: str,
                     timeout: float) -> list[str]:
    """Fire the predictions schedule, wait for the fit and the writes, and print them; what went wrong."""
    print("\n== predictions ==")
    for rule, timer in runtime.schedules.items():
        if rule.startswith("PredictionsScheduleFunction"):
            timer.fire()
    if not runtime.wait_idle(timeout=timeout):
        return ["predictions: the fit did not finish in time"]
    fit = api.ok("GET", "/settings/predictions")["last_fit"]
    if fit is None:
        return ["predictions: the workspace was not fitted"]
    print(f"fit {fit['status']}: model {fit['chosen']}, {fit['customers']} customers, {fit['repeat_buyers']} "
          f"repeat buyers (time in {fit['time_unit']})")
    print(f"  {fit['why_chosen'] or fit['reason']}")
    profiles = list(DynamoProfileRepository(table).workspace_profiles(workspace_id))
    unpredicted = [p.profile_id for p in profiles if p.prediction is None]
    if unpredicted:
        return [f"predictions: {len(unpredicted)} profiles without a prediction after the run"]
    predicted = [p for p in profiles if p.prediction and p.prediction.status == "predicted"]
    print(f"profiles predicted: {len(predicted)} of {len(profiles)} (the rest: "
          f"{sorted({p.prediction.status for p in profiles if p.prediction} - {'predicted'})})")
    if predicted:
        print("highest predicted CLV:")
        for profile in sorted(predicted, key=lambda p: _figure(p, "clv"), reverse=True)[:SHOWN]:
            print(_line(profile))
        print("likeliest to churn:")
        for profile in sorted(predicted, key=lambda p: _figure(p, "churn_probability"), reverse=True)[:SHOWN]:
            print(_line(profile))
    _print_affinity(table, workspace_id)
    return []


def _print_affinity(table: str, workspace_id: str) -> None:
    products = DynamoAffinityStore(table).products(workspace_id)
    pairs = sorted({tuple(sorted((a.title, r.title))): r for a in products.values() for r in a.related}.items(),
                   key=lambda pair: (-pair[1].lift, pair[0]))
    print(f"products bought together: {len(products)} products bought, {len(pairs)} related pairs "
          f"(GET /products/{{product}}/related)")
    for (first, second), related in pairs[:SHOWN]:
        print(f"  {first} + {second}: {related.buyers_together} shoppers, lift {related.lift}")
