"""Which raw deliveries name a shopper: contact points anywhere, ids only where platforms put ids."""

from __future__ import annotations

import json

from crm.privacy import Terms, mentions

TERMS = Terms(emails=frozenset({"ann@example.com"}), phones=frozenset({"+12025550143"}),
              ids=frozenset({"5", "7300000000001"}))


def test_an_email_in_any_case_or_escaping_is_a_mention() -> None:
    assert mentions(b'{"note": "write to ANN@Example.com"}', TERMS)
    assert mentions(b"ann@example.com,Ann,Lee", TERMS)  # an import row


def test_a_phone_in_any_national_format_is_a_mention() -> None:
    assert mentions(b'{"billing": {"phone": "(202) 555-0143"}}', TERMS)
    assert mentions(b'{"phone": "+1 202-555-0143"}', TERMS)
    assert not mentions(b'{"phone": "(202) 555-0199"}', TERMS)


def test_ids_count_only_where_platforms_put_ids() -> None:
    assert mentions(json.dumps({"id": 5, "line_items": []}).encode(), TERMS)
    assert mentions(json.dumps({"id": 9, "customer": {"id": 7300000000001}}).encode(), TERMS)
    assert mentions(json.dumps({"order_id": "5"}).encode(), TERMS)
    # Another order whose line item, quantity or price happens to be 5 is someone else's.
    assert not mentions(json.dumps({"id": 9, "line_items": [{"id": 5, "quantity": 5}], "total": "5"}).encode(),
                        TERMS)


def test_nothing_to_look_for_mentions_nothing() -> None:
    assert not Terms()
    assert not mentions(b'{"id": 5}', Terms())
