"""A workspace's reporting currency and exchange rates, and the job that re-derives its profiles' figures."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# ISO 4217's active currencies (funds, precious metals and test codes left out: no store sells in them).
ISO_4217 = frozenset(str.split("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF
CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD
HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD
MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP
TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL
"""))

# A rate as text: positive, at most 9 digits before the point and 12 after (the exchange rates in use lie
# between about 1e-5 and 1e5). docs/openapi.yaml states the same pattern.
RATE_PATTERN = r"^(?:[1-9][0-9]{0,8}(?:\.[0-9]{1,12})?|0?\.[0-9]{0,11}[1-9][0-9]{0,11})$"
_RATE = re.compile(RATE_PATTERN)


def _iso_4217(code: str) -> str:
    if code not in ISO_4217:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code (three capital letters, such as USD)")
    return code


def _rate(value: object) -> Decimal:
    # Rates travel as strings ("1.10"): a JSON number reaches Python as a float and may have lost digits.
    if not isinstance(value, str):
        raise ValueError(f'a rate is given as a decimal string, such as "1.10"; got {value!r}')
    if not _RATE.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise ValueError("a rate is a positive decimal with at most 9 digits before the point and 12 after, "
                         f"such as \"1.10\"; got {shown!r}")
    return Decimal(value)


CurrencyCode = Annotated[str, AfterValidator(_iso_4217)]
RateText = Annotated[Decimal, BeforeValidator(_rate)]


class CurrencySettingsRequest(BaseModel):
    """The body of PUT /settings/currency: ``rates`` maps a currency to what one unit of it is worth in the
    reporting currency ({"EUR": "1.10"} with USD: 1 EUR = 1.10 USD)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reporting_currency: CurrencyCode
    rates: dict[CurrencyCode, RateText] = Field(default_factory=dict, max_length=len(ISO_4217))

    @model_validator(mode="after")
    def _no_rate_for_itself(self) -> CurrencySettingsRequest:
        # The reporting currency's own rate is 1 whatever is sent: one sent is not kept.
        self.rates.pop(self.reporting_currency, None)
        return self


class CurrencySettings(BaseModel):
    """A workspace's settings as held: ``version`` goes up with each change, and each profile notes the
    version its figures were derived at (``Profile.currency_settings_version``)."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    reporting_currency: str
    rates: dict[str, Decimal] = Field(default_factory=dict)
    version: int = Field(default=0, ge=0)
    updated_at: datetime | None = None

    def rate(self, currency: str) -> Decimal | None:
        """What one unit of ``currency`` is worth in the reporting currency; None without a rate."""
        return Decimal(1) if currency == self.reporting_currency else self.rates.get(currency)


class JobStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"


class CurrencyJob(BaseModel):
    """Re-deriving every profile of a workspace after its settings changed, fanned out over scan shares."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    job_id: str
    settings_version: int
    shares: int = Field(ge=1)
    shares_done: tuple[int, ...] = ()
    profiles: int = 0  # read so far
    rederived: int = 0  # written with new figures so far
    started_at: datetime
    finished_at: datetime | None = None

    @property
    def status(self) -> JobStatus:
        return JobStatus.DONE if len(self.shares_done) >= self.shares else JobStatus.RUNNING


class CurrencyTask(BaseModel):
    """One worker's share of a re-derivation job (carried on the segment task queue)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace_id: str
    job_id: str
    share: int = Field(ge=0)
    shares: int = Field(ge=1)
