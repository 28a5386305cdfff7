"""Fit every model on a store's history and, given a holdout, compare their expectations with what happened.

What ``crm predict fit`` prints. The models learn from the transactions up to ``calibration_end`` (the last
transaction's day when not given); customers whose first purchase comes later are not in the fit. With
``holdout_end``, each model's expected repeat purchases per customer over (calibration_end, holdout_end] are
compared with the actual ones: their sums and their correlation across customers.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np

from crm.predictions import btyd
from crm.predictions.summary import DAYS_PER_UNIT, TimeUnit, repeat_purchases_between, summarise
from crm.predictions.transactions_file import Histories

PURCHASE_MODELS: tuple[btyd.PurchaseModel, ...] = ("bgnbd", "mbgnbd")


def fit_report(histories: Histories, *, calibration_end: date | None = None, holdout_end: date | None = None,
               time_unit: TimeUnit = "weeks") -> dict[str, Any]:
    end = calibration_end or max(day for orders in histories.values() for day, _ in orders)
    if holdout_end is not None and holdout_end <= end:
        raise ValueError(f"the holdout must end after the calibration ({holdout_end} <= {end})")
    summaries = summarise(histories, end, time_unit)
    if summaries.repeat_buyers == 0:
        raise ValueError(f"no customer bought twice by {end}: nothing to fit")
    fits = {model: btyd.fit_purchases(model, summaries.x, summaries.t_x, summaries.T) for model in PURCHASE_MODELS}
    spend = btyd.fit_spend(summaries.x, summaries.zbar)
    report: dict[str, Any] = {
        "time_unit": time_unit, "calibration_end": end.isoformat(), "customers": len(summaries),
        "repeat_buyers": summaries.repeat_buyers,
        **{model: {**fit.parameters(), "log_likelihood": fit.log_likelihood} for model, fit in fits.items()},
        "gamma_gamma": {**spend.parameters(), "log_likelihood": spend.log_likelihood,
                        "population_mean_order_value": spend.population_mean},
    }
    if holdout_end is not None:
        length = (holdout_end - end).days / DAYS_PER_UNIT[time_unit]
        actual = repeat_purchases_between(histories, summaries.customers, end, holdout_end)
        holdout: dict[str, Any] = {"end": holdout_end.isoformat(), "length": length,
                                   "actual_repeat_purchases": int(actual.sum())}
        for model, fit in fits.items():
            expected = btyd.expected_purchases(fit, length, summaries.x, summaries.t_x, summaries.T)
            varied = actual.std() > 0 and expected.std() > 0
            holdout[model] = {"expected_repeat_purchases": float(expected.sum()),
                              "correlation": float(np.corrcoef(expected, actual)[0, 1]) if varied else None}
        report["holdout"] = holdout
    return report


def describe(report: dict[str, Any]) -> list[str]:
    """The report as lines for a person."""
    lines = [f"{report['customers']} customers ({report['repeat_buyers']} repeat buyers) to "
             f"{report['calibration_end']}; time in {report['time_unit']}"]
    for model in (*PURCHASE_MODELS, "gamma_gamma"):
        figures = report[model]
        lines.append(f"{model}: " + ", ".join(f"{name} {value:.4f}" for name, value in figures.items()
                                              if name != "log_likelihood")
                     + f", log-likelihood {figures['log_likelihood']:.1f}")
    holdout = report.get("holdout")
    if holdout is not None:
        lines.append(f"holdout to {holdout['end']} ({holdout['length']:.2f} {report['time_unit']}): "
                     f"{holdout['actual_repeat_purchases']} actual repeat purchases")
        for model in PURCHASE_MODELS:
            correlation = holdout[model]["correlation"]
            lines.append(f"  {model}: expected {holdout[model]['expected_repeat_purchases']:.1f}, correlation per "
                         f"customer {'n/a' if correlation is None else f'{correlation:.3f}'}")
    return lines
