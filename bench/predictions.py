"""`make bench`: the buy-till-you-die models, ours (crm.predictions.btyd) against the `lifetimes` package.

Same run, same data, same machine: fit time on CDNOW (all 23,570 customers, calibration weeks 1-39) and the
time to predict 1M profiles (conditional expected purchases, P(alive), 12-month CLV at 1 % a month), the
predictions made by both with OUR fitted parameters so that the values can be checked against each other.

The 1M profiles are a simulated store: first purchases spread over three years, each customer's purchases drawn
from the BG/NBD fitted on CDNOW (Gamma rates, Beta drop-out) and their spend from the Gamma-Gamma fit, times
in whole days (stated in weeks, as lifetimes' freq="W" wants). Whole days matter: ours computes the
hypergeometric term once per distinct (x, T) pair, as a store's summaries repeat. Times are CPU seconds
(both sides single-threaded); lifetimes runs in its own virtualenv (.venv-lifetimes: `make bench` makes it,
or --lifetimes-python). Prints the ratios lifetimes/ours; fails (exit 1) when the values differ.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from crm.predictions import btyd
from crm.predictions.summary import summarise
from figures import record

ROOT = Path(__file__).resolve().parent.parent
CDNOW = ROOT / "tests" / "fixtures" / "cdnow" / "CDNOW_master.txt"
CALIBRATION_END = date(1997, 9, 30)
LIFETIMES_PYTHON = ROOT / ".venv-lifetimes" / "bin" / "python"
PROFILES = 1_000_000
SEED = 13
HORIZON_WEEKS = 52.0
MONTHS, RATE, WEEKS_PER_MONTH = 12, 0.01, 4.345  # lifetimes' month in weeks
HISTORY_DAYS = 3 * 365
AGREE = 1e-6  # relative


def cdnow_history() -> dict[str, list[tuple[date, Decimal]]]:
    history: dict[str, list[tuple[date, Decimal]]] = {}
    for line in CDNOW.read_text().splitlines()[1:]:
        customer, day, _, value = line.split()
        history.setdefault(customer, []).append((date(int(day[:4]), int(day[4:6]), int(day[6:])), Decimal(value)))
    return history


def cpu(step: Callable[[], Any]) -> tuple[float, Any]:
    started = time.process_time()
    value = step()
    return time.process_time() - started, value


def simulate(purchases: btyd.PurchaseFit, spend: btyd.SpendFit, n: int, seed: int) -> dict[str, np.ndarray]:
    """n customers of a store under BG/NBD and Gamma-Gamma, observed today; times in weeks of whole days."""
    rng = np.random.default_rng(seed)
    T_days = rng.integers(0, HISTORY_DAYS, n)
    T = T_days / 7
    rate = rng.gamma(purchases.r, 1 / purchases.alpha, n)
    drop = rng.beta(purchases.a, purchases.b, n)
    x, t_x, now = np.zeros(n), np.zeros(n), np.zeros(n)
    active = np.arange(n)
    while active.size:
        now[active] += rng.exponential(1 / rate[active])
        bought = active[now[active] <= T[active]]
        x[bought] += 1
        t_x[bought] = now[bought]
        active = bought[rng.uniform(size=bought.size) >= drop[bought]]  # BG/NBD: a drop-out after a repeat purchase
    t_x = np.minimum(np.floor(t_x * 7), T_days) / 7
    value = rng.gamma(spend.q, 1 / spend.gamma, n)
    zbar = np.where(x > 0, rng.gamma(np.maximum(spend.p * x, 1e-9), 1 / (value * np.maximum(x, 1))), 0.0)
    return {"x": x, "t_x": t_x, "T": T, "zbar": zbar}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profiles", type=int, default=PROFILES)
    parser.add_argument("--lifetimes-python", type=Path, default=LIFETIMES_PYTHON)
    args = parser.parse_args(argv)
    print("Buy-till-you-die models: ours (crm.predictions.btyd, numpy/scipy) against lifetimes 0.11.3, same run")
    s = summarise(cdnow_history(), CALIBRATION_END, "weeks")
    print(f"fit: CDNOW, {len(s):,} customers ({s.repeat_buyers:,} repeat buyers), weeks to {CALIBRATION_END}")
    fits: dict[str, Any] = {}
    fit_s: dict[str, float] = {}
    for model in ("bgnbd", "mbgnbd"):
        fit_s[model], fits[model] = cpu(partial(btyd.fit_purchases, model, s.x, s.t_x, s.T))
    fit_s["gamma_gamma"], fits["gamma_gamma"] = cpu(lambda: btyd.fit_spend(s.x, s.zbar))
    purchases: btyd.PurchaseFit = fits["bgnbd"]
    spend: btyd.SpendFit = fits["gamma_gamma"]

    profiles = simulate(purchases, spend, args.profiles, SEED)
    x, t_x, T, zbar = (profiles[k] for k in ("x", "t_x", "T", "zbar"))
    distinct = len(np.unique(x * 10_000 + np.round(T * 7)))
    print(f"predict: {args.profiles:,} simulated profiles ({int((x > 0).sum()):,} repeat buyers, {distinct:,} "
          f"distinct (x, T)); E[Y({HORIZON_WEEKS:g} weeks)], P(alive), CLV over {MONTHS} months at {RATE:.0%}")
    steps: dict[str, Callable[[], Any]] = {
        "expected_purchases": lambda: btyd.expected_purchases(purchases, HORIZON_WEEKS, x, t_x, T),
        "p_alive": lambda: btyd.probability_alive(purchases, x, t_x, T),
        "clv": lambda: btyd.customer_lifetime_value(purchases, btyd.expected_order_value(spend, x, zbar), x, t_x, T,
                                                    months=MONTHS, monthly_discount_rate=RATE,
                                                    units_per_month=WEEKS_PER_MONTH),
    }
    predict_s: dict[str, float] = {}
    values: dict[str, np.ndarray] = {}
    for name, step in steps.items():
        predict_s[name], values[name] = cpu(step)

    with tempfile.TemporaryDirectory() as scratch:
        source, target = Path(scratch) / "input.npz", Path(scratch) / "output.json"
        arrays: dict[str, Any] = {
            **{f"fit_{k}": getattr(s, k) for k in ("x", "t_x", "T", "zbar")},
            **{f"profiles_{k}": v for k, v in profiles.items()},
            "bgnbd": np.array([purchases.r, purchases.alpha, purchases.a, purchases.b]),
            "gamma_gamma": np.array([spend.p, spend.q, spend.gamma]), "horizon": HORIZON_WEEKS, "months": MONTHS,
            "rate": RATE}
        np.savez(source, **arrays)
        subprocess.run([str(args.lifetimes_python), str(ROOT / "bench" / "predictions_lifetimes.py"), str(source),
                        str(target)], check=True)
        theirs = json.loads(target.read_text())

    print(f"\n{'fit on CDNOW':<28}{'ours s':>10}{'lifetimes s':>13}{'ratio':>8}   parameters (ours | lifetimes)")
    for model in ("bgnbd", "mbgnbd", "gamma_gamma"):
        ours = fits[model].parameters()
        other = {("gamma" if k == "v" else k): v for k, v in theirs["fitted"][model].items() if k != "log_likelihood"}
        shown = " ".join(f"{k} {ours[k]:.4f}|{other[k]:.4f}" for k in ours)
        print(f"{model:<28}{fit_s[model]:>10.3f}{theirs['fit_s'][model]:>13.3f}"
              f"{theirs['fit_s'][model] / fit_s[model]:>7.1f}x   {shown}")
    print(f"\n{'predict ' + format(args.profiles, ',') + ' profiles':<28}{'ours s':>10}{'lifetimes s':>13}{'ratio':>8}"
          f"   max relative difference")
    failed = False
    ratios: dict[str, float] = {}
    for name in steps:
        mine, other_values = values[name][: len(theirs["values"][name])], np.array(theirs["values"][name])
        difference = float(np.max(np.abs(mine - other_values) / np.maximum(np.abs(other_values), 1e-12)))
        failed = failed or difference > AGREE
        ratios[name] = theirs["predict_s"][name] / predict_s[name]
        print(f"{name:<28}{predict_s[name]:>10.3f}{theirs['predict_s'][name]:>13.3f}{ratios[name]:>7.1f}x   "
              f"{difference:.1e}")
    print(f"\nCLV over {args.profiles:,} profiles: ours {ratios['clv']:.1f}x faster than lifetimes (target 10x)")
    record("predictions", {"profiles": args.profiles, "fit_s": {"ours": fit_s, "lifetimes": theirs["fit_s"]},
                           "predict_s": {"ours": predict_s, "lifetimes": theirs["predict_s"]},
                           "ratios_lifetimes_to_ours": ratios, "clv_ratio": ratios["clv"]})
    if failed:
        print(f"!!! FAILED: ours and lifetimes' values differ by more than {AGREE:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
