"""A workspace's prediction settings as the API reads and replaces them, with its last fit beside them."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from crm.models.predictions import PredictionSettings, WorkspaceFit


class PredictionSettingsInvalid(ValueError):
    """The settings document is refused; the message starts with the field at fault."""


def parse_settings(body: bytes | str) -> PredictionSettings:
    """The settings in a JSON body (a field left out keeps its default); PredictionSettingsInvalid naming the
    first field at fault."""
    try:
        document = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PredictionSettingsInvalid('body: not JSON; send {"monthly_discount_rate": "0.01", "clv_months": 12, '
                                        '"min_repeat_buyers": 30}') from None
    if not isinstance(document, dict):
        raise PredictionSettingsInvalid("body: must be an object with monthly_discount_rate, clv_months and "
                                        "min_repeat_buyers")
    unknown = sorted(set(document) - set(PredictionSettings.model_fields))
    if unknown:
        raise PredictionSettingsInvalid(f"{unknown[0]}: not a prediction setting; they are "
                                        f"{', '.join(PredictionSettings.model_fields)}")
    try:
        return PredictionSettings.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise PredictionSettingsInvalid(f"{where}: {first['msg']}") from None


def fit_view(fit: WorkspaceFit | None) -> dict[str, Any] | None:
    if fit is None:
        return None
    return fit.model_dump(mode="json", exclude={"workspace_id", "settings"})


def settings_view(held: PredictionSettings | None, fit: WorkspaceFit | None) -> dict[str, Any]:
    """The settings (the defaults while none are held), and the last fit: the settings it used, whether it
    fitted, which model it chose and why, and each model's parameters. New settings apply from the next
    scheduled fit."""
    return {**(held or PredictionSettings()).model_dump(mode="json"), "last_fit": fit_view(fit)}


__all__ = ["PredictionSettingsInvalid", "fit_view", "parse_settings", "settings_view"]
