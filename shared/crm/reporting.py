"""Money in one currency per number: a profile's figures in its workspace's reporting currency.

A profile keeps what each order contributed exactly, per ISO code (``spent_by_currency``,
``refunded_by_currency``, ``orders_by_currency``); its ``total_spent``, ``total_refunded``,
``average_order_value`` and ``currency`` are derived from those at the workspace's rates. An order in a
currency without a rate is left out of them and named in ``unconverted_currencies``: amounts in different
currencies are never added at face value. Deriving is a pure function of the per-currency sums and the
settings, so it does not depend on the order events arrived in, and a merge or a change of rates simply
derives again.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from pydantic import ValidationError

from crm.models.currency import CurrencyJob, CurrencySettings, CurrencySettingsRequest, CurrencyTask
from crm.models.profile import Profile
from crm.money import CENT
from crm.ports import Change, ConcurrentUpdate, CurrencyStore, CurrencyTasks, ProfileRepository


def default_currency(orders_by_currency: Mapping[str, int]) -> str | None:
    """The currency a profile reports in while its workspace has no settings: the one it has the most orders
    in (the first in alphabetical order on a tie)."""
    counted = Counter({code: n for code, n in orders_by_currency.items() if n > 0})
    if not counted:
        return None
    return min(counted, key=lambda code: (-counted[code], code))


def _converted(amounts: Mapping[str, Decimal], rates: Mapping[str, Decimal]) -> Decimal:
    total = sum((amount * rates[code] for code, amount in amounts.items() if code in rates), Decimal(0))
    return total.quantize(CENT, rounding=ROUND_HALF_EVEN)


def with_figures(profile: Profile, settings: CurrencySettings | None) -> Profile:
    """The profile with its reporting-currency figures derived from its per-currency sums."""
    held = {*profile.spent_by_currency, *profile.refunded_by_currency,
            *(code for code, n in profile.orders_by_currency.items() if n > 0)}
    if settings is None:
        currency = default_currency(profile.orders_by_currency) or profile.currency
        rates = {currency: Decimal(1)} if currency else {}
    else:
        currency = settings.reporting_currency
        rates = {code: rate for code in held if (rate := settings.rate(code)) is not None}
    return profile.model_copy(update={
        "currency": currency,
        "total_spent": _converted(profile.spent_by_currency, rates),
        "total_refunded": _converted(profile.refunded_by_currency, rates),
        "unconverted_currencies": tuple(sorted(held - set(rates))),
        "currency_settings_version": settings.version if settings else 0,
    })


def add_amount(sums: Mapping[str, Decimal], currency: str | None, amount: Decimal) -> dict[str, Decimal]:
    """``sums`` with ``amount`` added to ``currency``'s (a sum that comes to zero is dropped)."""
    total = dict(sums)
    if currency is not None and amount:
        total[currency] = total.get(currency, Decimal(0)) + amount
    return {code: value for code, value in sorted(total.items()) if value}


def add_sums(first: Mapping[str, Decimal], second: Mapping[str, Decimal]) -> dict[str, Decimal]:
    total = dict(first)
    for code, amount in second.items():
        total = add_amount(total, code, amount)
    return total


# --- the settings, and re-deriving every profile when they change ----------------------------------------

CONFLICT_RETRIES = 5


class CurrencySettingsInvalid(ValueError):
    """The settings document is refused; the message starts with the field at fault."""


def parse_settings(body: bytes | str) -> CurrencySettingsRequest:
    """The settings in a JSON body; CurrencySettingsInvalid naming the first field at fault."""
    try:
        document = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CurrencySettingsInvalid('body: not JSON; send {"reporting_currency": "USD", "rates": '
                                      '{"EUR": "1.10"}}') from None
    if not isinstance(document, dict):
        raise CurrencySettingsInvalid("body: must be an object with reporting_currency and rates")
    try:
        return CurrencySettingsRequest.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        message = first["msg"].removeprefix("Value error, ")
        raise CurrencySettingsInvalid(f"{where}: {message}") from None


def settings_view(held: CurrencySettings | None) -> dict[str, Any]:
    return {"reporting_currency": held.reporting_currency if held else None,
            "rates": {code: str(rate) for code, rate in sorted(held.rates.items())} if held else {},
            "version": held.version if held else 0,
            "updated_at": held.updated_at.isoformat() if held and held.updated_at else None}


def job_view(job: CurrencyJob) -> dict[str, Any]:
    return {"job_id": job.job_id, "status": job.status.value, "settings_version": job.settings_version,
            "shares": job.shares, "shares_done": len(job.shares_done), "profiles": job.profiles,
            "rederived": job.rederived, "started_at": job.started_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


def initial_settings(store: CurrencyStore, workspace_id: str, currency: str, now: datetime) -> bool:
    """The reporting currency a workspace starts with: the currency of its first store that names one.
    False when the workspace has settings already."""
    try:
        store.put_settings(CurrencySettings(workspace_id=workspace_id, reporting_currency=currency, version=0,
                                            updated_at=now), None)
    except ConcurrentUpdate:
        return False
    return True


def replace_settings(store: CurrencyStore, tasks: CurrencyTasks, workspace_id: str,
                     request: CurrencySettingsRequest, now: datetime, shares: int) -> tuple[CurrencySettings,
                                                                                             CurrencyJob]:
    """New settings (ConcurrentUpdate if they changed meanwhile), and the job that re-derives every profile
    of the workspace at them, fanned out over ``shares`` of the profiles' scan."""
    held = store.settings(workspace_id)
    chosen = CurrencySettings(workspace_id=workspace_id, reporting_currency=request.reporting_currency,
                              rates=request.rates, version=held.version + 1 if held else 1, updated_at=now)
    store.put_settings(chosen, held.version if held else None)
    job = CurrencyJob(workspace_id=workspace_id, job_id=f"cur_{now:%Y%m%dT%H%M%SZ}_{secrets.token_hex(4)}",
                      settings_version=chosen.version, shares=shares, started_at=now)
    store.start_job(job)
    tasks.send([CurrencyTask(workspace_id=workspace_id, job_id=job.job_id, share=share, shares=shares)
                for share in range(shares)])
    return chosen, job


def carry_out(task: CurrencyTask, profiles: ProfileRepository, store: CurrencyStore,
              now: datetime) -> CurrencyJob | None:
    """One share of a job: each profile of the share derived again at the settings held now (a later
    change's own job derives again: deriving twice at the same settings writes nothing)."""
    job = store.job(task.workspace_id, task.job_id)
    if job is None or task.share in job.shares_done:
        return job
    held = store.settings(task.workspace_id)
    read = written = 0
    for profile in profiles.workspace_profiles(task.workspace_id, task.share, task.shares):
        read += 1
        written += _rederive(profiles, held, profile)
    return store.share_done(task.workspace_id, task.job_id, task.share, read, written, now)


def _rederive(profiles: ProfileRepository, held: CurrencySettings | None, profile: Profile) -> int:
    # Written under the revision read, like every profile write: an order applied meanwhile read the
    # settings before this job's change (or its write would have failed on this one), so it is derived again.
    current: Profile | None = profile
    for _ in range(CONFLICT_RETRIES):
        if current is None or current.merged_into is not None:
            return 0
        derived = with_figures(current, held)
        if derived == current:
            return 0
        try:
            profiles.commit(Change(workspace_id=current.workspace_id, profiles=(
                (derived.model_copy(update={"revision": current.revision + 1}), current.revision),)))
            return 1
        except ConcurrentUpdate:
            current = profiles.get_profile(current.workspace_id, current.profile_id)
    raise ConcurrentUpdate(f"profile {profile.profile_id} kept changing; the task is retried")
