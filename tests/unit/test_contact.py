from __future__ import annotations

import pytest
from crm.contact import normalise_email, normalise_phone


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
