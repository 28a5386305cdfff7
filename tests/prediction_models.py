"""A stand-in for crm.predictions.predict's two entry points, for tests of the plumbing around them only.

Deterministic and simple on purpose (no model): a workspace is fitted when it has ``min_repeat_buyers``
shoppers with orders on two days or more; a shopper's P(alive) halves every 100 days since the last order,
and the CLV is twice the mean order value times P(alive). Tests of the real models are in test_btyd*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from crm.models.predictions import ModelParameters, Prediction, PredictionSettings, WorkspaceFit
from crm.predictions.refresh import Models

FOUR = Decimal("0.0001")


class FakeModels:
    def __init__(self) -> None:
        self.fits = 0
        self.predicted = 0

    def fit(self, workspace_id: str, histories: Mapping[str, Sequence[tuple[datetime, Decimal]]], now: datetime,
            settings: PredictionSettings) -> WorkspaceFit:
        self.fits += 1
        repeat = sum(1 for history in histories.values() if len({at.date() for at, _ in history}) > 1)
        customers = sum(1 for history in histories.values() if history)
        if customers == 0:
            return WorkspaceFit(workspace_id=workspace_id, status="no_orders", reason="no orders", fitted_at=now,
                                settings=settings)
        if repeat < settings.min_repeat_buyers:
            return WorkspaceFit(workspace_id=workspace_id, status="too_few_repeat_buyers", fitted_at=now,
                                reason=f"{repeat} repeat buyers; at least {settings.min_repeat_buyers} are needed",
                                customers=customers, repeat_buyers=repeat, settings=settings)
        return WorkspaceFit(workspace_id=workspace_id, status="fitted", fitted_at=now, chosen="bgnbd",
                            why_chosen="the fake's only model", customers=customers, repeat_buyers=repeat,
                            purchase_models=(ModelParameters(model="bgnbd", parameters={"half_life_days": 100.0},
                                                             log_likelihood=0.0, customers=customers),),
                            settings=settings)

    def predict(self, fit: WorkspaceFit, histories: Mapping[str, Sequence[tuple[datetime, Decimal]]],
                now: datetime) -> dict[str, Prediction]:
        found = {}
        for profile_id, history in histories.items():
            self.predicted += 1
            if fit.status != "fitted":
                found[profile_id] = Prediction(status="workspace_not_fitted", reason=fit.reason, computed_at=now)
            elif not history:
                found[profile_id] = Prediction(status="insufficient_history", reason="no orders yet",
                                               computed_at=now)
            else:
                last = max(at for at, _ in history)
                mean = sum((amount for _, amount in history), Decimal(0)) / len(history)
                alive = Decimal(0.5 ** ((now - last) / timedelta(days=100))).quantize(FOUR)
                found[profile_id] = Prediction(
                    status="predicted", model="bgnbd", computed_at=now, p_alive=alive,
                    churn_probability=1 - alive, expected_orders_90d=alive, expected_orders_365d=2 * alive,
                    expected_order_value=mean.quantize(Decimal("0.01")),
                    clv=(2 * mean * alive).quantize(Decimal("0.01")), next_order_expected_at=last + timedelta(days=60))
        return found

    def models(self) -> Models:
        return Models(fit=self.fit, predict=self.predict)
