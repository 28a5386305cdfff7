"""Where a visit came from: UTM parameters first, then the referring site, else a direct visit."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from crm.models.canonical import Touch

_SEARCH_ENGINES = ("google.", "bing.", "duckduckgo.", "yahoo.", "baidu.", "yandex.", "ecosia.")
_UTM = ("source", "medium", "campaign", "term", "content")


def _host(url: str | None) -> str | None:
    if not url:
        return None
    host = urlsplit(url if "//" in url else f"//{url}").hostname
    return host.removeprefix("www.") if host else None


def referral_medium(referrer_host: str) -> str:
    """A visit from another site: "organic" from a search engine, else "referral"."""
    return "organic" if any(engine in referrer_host for engine in _SEARCH_ENGINES) else "referral"


def touch_from_urls(landing: str | None, referrer: str | None, at: datetime,
                    own_hosts: frozenset[str] = frozenset()) -> Touch | None:
    """The touch a landing URL (absolute or a path, as Shopify's landing_site) and its referrer stand for.

    None when neither is known (an imported or API order says nothing about how the shopper came).
    """
    if not landing and not referrer:
        return None
    query = parse_qs(urlsplit(landing or "").query)
    utm = {name: (query.get(f"utm_{name}") or [""])[0].strip() or None for name in _UTM}
    referrer_host = _host(referrer)
    if referrer_host in own_hosts:
        referrer_host = None  # moving around the store is not a new visit
    if utm["source"]:
        source, medium = utm["source"].lower(), (utm["medium"] or "").lower() or None
    elif referrer_host:
        source, medium = referrer_host, referral_medium(referrer_host)
    else:
        source, medium = "direct", None
    return Touch(source=source, medium=medium, campaign=utm["campaign"], term=utm["term"], content=utm["content"],
                 landing_page=landing, referrer=referrer, at=at)
