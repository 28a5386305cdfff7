"""bench/predictions.py's other side: the same fits and predictions with the `lifetimes` package (0.11.3).

Runs in its own virtualenv (.venv-lifetimes, `make bench` makes it), never with the project's code:
`python bench/predictions_lifetimes.py INPUT.npz OUTPUT.json`. INPUT holds the CDNOW calibration summaries
(weeks), the profiles to predict and the parameters to predict them with (ours, so that the figures can be
compared value for value); OUTPUT gets each step's CPU seconds and the first values of each prediction.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped, import-not-found, unused-ignore]
from lifetimes import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
    BetaGeoFitter,
    GammaGammaFitter,
    ModifiedBetaGeoFitter,
)

SAMPLE = 1000  # values sent back for the comparison


def timed(step: Callable[[], Any]) -> tuple[float, Any]:
    started = time.process_time()
    value = step()
    return time.process_time() - started, value


def main(source: str, target: str) -> None:
    warnings.simplefilter("ignore")
    data = np.load(source)
    x, t_x, T, zbar = (pd.Series(data[f"fit_{name}"]) for name in ("x", "t_x", "T", "zbar"))
    out: dict[str, Any] = {"fit_s": {}, "fitted": {}, "predict_s": {}, "values": {}}
    fitters: dict[str, Any] = {}
    for name, fitter in (("bgnbd", BetaGeoFitter), ("mbgnbd", ModifiedBetaGeoFitter)):
        seconds, fitted = timed(partial(fitter().fit, x, t_x, T))
        out["fit_s"][name] = seconds
        fitters[name] = fitted
        out["fitted"][name] = {**fitted.params_.to_dict(), "log_likelihood": -fitted._negative_log_likelihood_}
    repeat = (x > 0) & (zbar > 0)  # as ours: a repeat buyer whose purchases were all free tells nothing of spend
    seconds, spend = timed(lambda: GammaGammaFitter().fit(x[repeat], zbar[repeat]))
    out["fit_s"]["gamma_gamma"] = seconds
    out["fitted"]["gamma_gamma"] = spend.params_.to_dict()

    purchases = fitters["bgnbd"]  # fitted: its predict is set; the parameters become ours
    purchases.params_ = pd.Series(dict(zip(("r", "alpha", "a", "b"), data["bgnbd"], strict=True)))
    spend.params_ = pd.Series(dict(zip(("p", "q", "v"), data["gamma_gamma"], strict=True)))
    px, pt_x, pT, pz = (pd.Series(data[f"profiles_{name}"]) for name in ("x", "t_x", "T", "zbar"))
    horizon = float(data["horizon"])
    steps = {
        "expected_purchases": lambda: purchases.conditional_expected_number_of_purchases_up_to_time(
            horizon, px, pt_x, pT),
        "p_alive": lambda: purchases.conditional_probability_alive(px, pt_x, pT),
        "clv": lambda: spend.customer_lifetime_value(purchases, px, pt_x, pT, pz, time=int(data["months"]),
                                                     discount_rate=float(data["rate"]), freq="W"),
    }
    for name, step in steps.items():
        seconds, values = timed(step)
        out["predict_s"][name] = seconds
        out["values"][name] = np.asarray(values, dtype=np.float64)[:SAMPLE].tolist()
    with open(target, "w") as file:
        json.dump(out, file)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
