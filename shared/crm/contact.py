"""Normalised contact points: emails folded to one spelling, phones in E.164."""

from __future__ import annotations

import unicodedata

import phonenumbers


def normalise_email(value: str | None) -> str | None:
    """One spelling per address, so an address is one identity however it was typed or pasted.

    NFKC first (full-width and compatibility forms become their plain letters), then every format
    character (Unicode category Cf: zero-width spaces and joiners, the byte order mark, bidi marks) is
    removed: they are invisible, so ``ev\\u200bzw@example.com`` is the address a reader sees,
    ``evzw@example.com``, and must not become a second shopper. Then trimmed and lowercased.
    """
    if value is None:
        return None
    folded = unicodedata.normalize("NFKC", value)
    visible = "".join(char for char in folded if unicodedata.category(char) != "Cf")
    email = visible.strip().lower()
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
