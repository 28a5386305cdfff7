from __future__ import annotations

import unicodedata

import pytest
from crm.contact import normalise_email, normalise_phone
from hypothesis import example, given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jon@example.com", "jon@example.com"),
        ("  Jon@Example.COM \n", "jon@example.com"),
        ("JANE.DOE+Shop@Mail.Example.org", "jane.doe+shop@mail.example.org"),
        (None, None),
        ("", None),
        ("   ", None),
        ("not-an-email", None),
        ("@example.com", None),
        ("jon@", None),
        # Invisible and compatibility characters: the address a reader sees is the identity.
        ("ev\u200bzw@example.com", "evzw@example.com"),
        ("\ufeffev\u200c\u200dzw\u2060@example.com\u200e", "evzw@example.com"),
        ("\u00a0Jon@Example.com\u00a0", "jon@example.com"),
        ("".join(chr(ord(c) + 0xFEE0) for c in "jon@example.com"), "jon@example.com"),  # full-width
        ("\u200b@example.com", None),
    ],
)
def test_normalise_email(raw: str | None, expected: str | None) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 613-555-0123", None, "+16135550123"),
        ("(613) 555-0123", "CA", "+16135550123"),
        ("202-456-1111", "US", "+12024561111"),
        ("+44 20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("  +49 30 901820  ", None, "+4930901820"),
    ],
)
def test_normalise_phone_to_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        (None, None),
        ("", "US"),
        ("   ", "US"),
        ("613-555-0123", None),  # national form without a region cannot be placed
        ("123-123-1234", "CA"),  # no such area code
        ("555-555-SHIP", "US"),  # the published sample's billing phone
        ("not a phone", None),
    ],
)
def test_normalise_phone_refuses_what_is_not_a_valid_number(raw: str | None, region: str | None) -> None:
    assert normalise_phone(raw, region) is None


def test_same_number_in_different_notations_normalises_to_one_identity() -> None:
    forms = ["+1 (202) 456-1111", "202.456.1111", "1-202-456-1111", "+12024561111"]
    assert {normalise_phone(form, "US") for form in forms} == {"+12024561111"}


def test_a_zero_width_character_does_not_make_another_identity() -> None:
    assert normalise_email("ev\u200bzw@example.com") == normalise_email("EVZW@example.com ") == "evzw@example.com"


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
@example("ev\u200bzw@Example.com")
@example("\u1e9e@\u01c5.com")  # capital sharp s and a titlecase digraph: lowercasing must not undo NFKC
def test_normalising_an_email_twice_changes_nothing(raw: str) -> None:
    once = normalise_email(raw)
    assert once is None or normalise_email(once) == once
    if once is not None:
        assert not any(unicodedata.category(char) == "Cf" for char in once)
