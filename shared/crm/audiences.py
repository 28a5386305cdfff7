"""Audiences for ads: a profile as one row of a Meta Custom Audience or Google Customer Match customer file.

Each platform matches its users against the SHA-256 of normalised identifiers; a value normalised differently
from the platform's own rule hashes to something that matches no one, so each rule here is the platform's
as documented (docs/audiences.md cites the pages):

- Meta (customer list, column headers ``email``, ``phone``, ``fn``, ``ln``, ``country``): email trimmed and
  lowercased; phone digits only with the country code (no ``+``, no leading zeros); names lowercased without
  punctuation; country the ISO 3166-1 alpha-2 code, lowercased. Every column hashed.
- Google (Customer Match, headers ``Email``, ``Phone``, ``First Name``, ``Last Name``, ``Country``, ``Zip``):
  email trimmed and lowercased, and for gmail.com and googlemail.com the periods before the ``@`` removed;
  phone in E.164 (``+`` and the country code); names lowercased, spaces trimmed and single, no
  punctuation. Email, phone and names hashed; Country and Zip are sent in the clear, as Google asks.

Consent decides what leaves: an email only when the profile is subscribed to marketing email, a phone only
when subscribed to SMS marketing (``consented_identifiers``); names and country only ride along with one of
them, and a profile with neither is left out of the file.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from enum import StrEnum

from crm.contact import normalise_email, normalise_phone
from crm.models.consent import Channel, ConsentState
from crm.models.profile import Profile


class AdPlatform(StrEnum):
    META = "meta"
    GOOGLE = "google"


# The header rows, exactly as each platform's upload template names them.
META_COLUMNS = ("email", "phone", "fn", "ln", "country")
GOOGLE_COLUMNS = ("Email", "Phone", "First Name", "Last Name", "Country", "Zip")
COLUMNS = {AdPlatform.META: META_COLUMNS, AdPlatform.GOOGLE: GOOGLE_COLUMNS}

_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_COUNTRY_CODE = re.compile(r"[a-z]{2}")
_SPACES = re.compile(r"\s+")


def sha256_hex(text: str) -> str:
    """The lowercase hex SHA-256 of the UTF-8 text, unsalted: what both platforms match on."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- normalising -----------------------------------------------------------------------------------


def meta_email(value: str | None) -> str | None:
    return normalise_email(value)


def google_email(value: str | None) -> str | None:
    email = normalise_email(value)
    if email is None:
        return None
    local, _, domain = email.rpartition("@")
    if domain in _GMAIL_DOMAINS:
        # Gmail ignores periods in the name: Google documents hashing that one spelling.
        undotted = local.replace(".", "")
        return undotted + "@" + domain if undotted else None
    return email


def google_phone(value: str | None) -> str | None:
    """E.164 (``+`` and the country code); None for a number without a country code or not valid."""
    if value is None:
        return None
    return normalise_phone(value.strip())


def meta_phone(value: str | None) -> str | None:
    """Digits only, country code first: E.164 without its ``+`` (E.164 never starts with a zero)."""
    e164 = google_phone(value)
    return e164[1:] if e164 is not None else None


def name(value: str | None) -> str | None:
    """Lowercase, without punctuation, spaces trimmed and single: Meta's ``fn``/``ln`` and Google's first and
    last name rule alike. Letters keep their accents (both take UTF-8), in their composed (NFC) form."""
    if value is None:
        return None
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).lower())
    spaced = _SPACES.sub(" ", folded)
    # Punctuation goes, and so do invisible format and control characters (zero-width spaces, bidi marks).
    kept = "".join(char for char in spaced if not unicodedata.category(char).startswith(("P", "C")))
    single = _SPACES.sub(" ", unicodedata.normalize("NFC", kept)).strip()
    return single or None


def country(value: str | None) -> str | None:
    """The ISO 3166-1 alpha-2 code, lowercased; None for anything else (a name, a three-letter code)."""
    if value is None:
        return None
    code = value.strip().lower()
    return code if _COUNTRY_CODE.fullmatch(code) else None


# --- consent and rows ------------------------------------------------------------------------------


def _subscribed(profile: Profile, channel: Channel) -> bool:
    statement = profile.consents.get(channel.value)
    return statement is not None and statement.state is ConsentState.SUBSCRIBED


def consented_identifiers(profile: Profile) -> tuple[str | None, str | None]:
    """The profile's email and phone that its consent lets out: each only while its channel is subscribed."""
    email = profile.email if _subscribed(profile, Channel.EMAIL) else None
    phone = profile.phone if _subscribed(profile, Channel.SMS) else None
    return email, phone


def _hashed(value: str | None) -> str:
    return sha256_hex(value) if value is not None else ""


def audience_row(profile: Profile, platform: AdPlatform) -> dict[str, str] | None:
    """The profile as one row of the platform's customer file (every column, "" where unknown), or None when
    nothing consented can be matched on."""
    email, phone = consented_identifiers(profile)
    if platform is AdPlatform.META:
        keys = (meta_email(email), meta_phone(phone))
        if keys == (None, None):
            return None
        return {"email": _hashed(keys[0]), "phone": _hashed(keys[1]), "fn": _hashed(name(profile.first_name)),
                "ln": _hashed(name(profile.last_name)), "country": _hashed(country(profile.country))}
    keys = (google_email(email), google_phone(phone))
    if keys == (None, None):
        return None
    return {"Email": _hashed(keys[0]), "Phone": _hashed(keys[1]), "First Name": _hashed(name(profile.first_name)),
            "Last Name": _hashed(name(profile.last_name)), "Country": country(profile.country) or "",
            "Zip": ""}  # profiles hold no postal code yet; the column is in Google's combined template
