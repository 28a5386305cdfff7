"""SES's link rewriting and open pixel as the local runtime emulates them (crm_local.ses_tracking), read back by
crm_local.outbound's helpers (an SMS's links too)."""

from __future__ import annotations

from crm_local.outbound import SentEmail, SentSms, tracked_original
from crm_local.ses_tracking import Link, Tracking, link_tags, rewrite_html

BASE = "http://127.0.0.1:8000"
BOTH = Tracking(opens=True, clicks=True)


def _email(html: str) -> SentEmail:
    return SentEmail(message_id="m", kind="simple", source=None, destinations=[], to=[], html=html)


def test_every_http_link_is_rewritten_and_read_back_as_it_was_written() -> None:
    html = ("<html><BODY><A HREF='https://a.example/x?y=1&amp;z=2'>One</A>"
            '<a class="b" href=http://b.example/>Two</a>'
            '<a\nhref="https://c.example/" ses:no-track>Three</a>'
            '<a href="mailto:x@y.example">Four</a><a name="top">Five</a></BODY></html>')
    rewritten, links = rewrite_html(html, BASE, "tok", BOTH)
    assert links == [Link("https://a.example/x?y=1&z=2", {}), Link("http://b.example/", {})]
    email = _email(rewritten)
    assert [(link.original, link.text) for link in email.tracked_links] == \
        [("https://a.example/x?y=1&z=2", "One"), ("http://b.example/", "Two")]
    assert email.tracked_links[0].url == f"{BASE}/_local/ses/click/tok/0/https%3A%2F%2Fa.example%2Fx%3Fy%3D1%26z%3D2"
    assert email.links == ["https://a.example/x?y=1&z=2", "http://b.example/", "https://c.example/",
                           "mailto:x@y.example"]
    assert 'class="b"' in rewritten and "ses:no-track" in rewritten  # the rest of each tag is kept
    assert email.open_url == f"{BASE}/_local/ses/open/tok"
    assert rewritten.index(email.open_url) < rewritten.index("</BODY>")


def test_link_tags_as_ses_reads_them() -> None:
    assert link_tags("campaign:spring; step:1;;variant:a") == \
        {"campaign": ["spring"], "step": ["1"], "variant": ["a"]}
    _, [link] = rewrite_html('<a ses:tags="step:reminder" href="https://a.example/">x</a>', BASE, "t", BOTH)
    assert link.tags == {"step": ["reminder"]}


def test_opens_only_or_clicks_only() -> None:
    html = '<p><a href="https://a.example/">x</a></p>'
    opens, no_links = rewrite_html(html, BASE, "t", Tracking(opens=True, clicks=False))
    assert no_links == [] and _email(opens).tracked_links == [] and opens.startswith(html)
    assert _email(opens).open_url == f"{BASE}/_local/ses/open/t"  # no </body>: the pixel goes at the end
    clicks, [_] = rewrite_html(html, BASE, "t", Tracking(opens=False, clicks=True))
    assert _email(clicks).open_url is None and len(_email(clicks).tracked_links) == 1


def test_only_tracking_urls_have_an_original() -> None:
    assert tracked_original("https://shop.example/cart") is None
    assert tracked_original(f"{BASE}/_local/ses/click/tok/3/https%3A%2F%2Fa.example%2F") == "https://a.example/"


def test_an_sms_links_are_read_from_its_text() -> None:
    sms = SentSms(message_id="s", phone_number="+14255550100",
                  message="Your cart: http://127.0.0.1:8000/r/Ab3dE9. Or https://shop.example/help! Reply STOP")
    assert sms.links == ["http://127.0.0.1:8000/r/Ab3dE9", "https://shop.example/help"]
