"""Normalised contact points: emails trimmed and lowercased, phones in E.164."""

from __future__ import annotations

import phonenumbers


def normalise_email(value: str | None) -> str | None:
    if value is None:
        return None
    email = value.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        return None
    return email


def normalise_phone(value: str | None, default_region: str | None = None) -> str | None:
    """E.164 form of a phone number, or None when it is not a valid number."""
    if not value or not value.strip():
        return None
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
