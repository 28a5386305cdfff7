"""storefront/crm-track.js speaks the /track API's model: its event types and body fields are the
pydantic model's, it stays small enough to paste into a theme, and (where node is installed) what it
actually sends validates against TrackRequest."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any, get_args

import pytest
from crm.models.tracking import MAX_EVENTS, TrackEvent, TrackRequest, TrackType, TrackUtm

from tests.builders import ROOT

SNIPPET = ROOT / "storefront" / "crm-track.js"
SOURCE = SNIPPET.read_text()


def _keys(object_literal: str) -> set[str]:
    return set(re.findall(r"([a-z_]+)\s*:", object_literal))


def test_it_is_small_and_has_no_dependencies() -> None:
    assert len(SNIPPET.read_bytes()) < 4096
    assert "import " not in SOURCE and "require(" not in SOURCE


def test_its_event_types_are_exactly_the_accepted_ones() -> None:
    [listed] = re.findall(r"TYPES\s*=\s*\[([^\]]*)\]", SOURCE)
    assert re.findall(r'"([a-z_]+)"', listed) == list(get_args(TrackType))
    called = set(re.findall(r'track\("([a-z_]+)"', SOURCE))
    assert called and called <= set(get_args(TrackType))


def test_its_body_fields_are_the_models() -> None:
    [request] = re.findall(r"JSON\.stringify\(\{([^}]*)\}\)", SOURCE)
    assert _keys(request) == set(TrackRequest.model_fields)
    [event] = re.findall(r"var e = \{([^}]*)\}", SOURCE)
    assert _keys(event) <= set(TrackEvent.model_fields)
    [identify] = re.findall(r'track\("identify", \{([^}]*)\}', SOURCE)
    assert _keys(identify) <= set(TrackEvent.model_fields)
    [page_view] = re.findall(r'track\("page_viewed", \{([^}]*)\}', SOURCE)
    assert _keys(page_view) <= set(TrackEvent.model_fields)
    [utm_keys] = re.findall(r"keys = \[([^\]]*)\]", SOURCE)
    assert set(re.findall(r'"([a-z]+)"', utm_keys)) == set(TrackUtm.model_fields)
    assert re.search(rf"MAX = {MAX_EVENTS}\b", SOURCE)


HARNESS = r"""
const vm = require("vm"), fs = require("fs");
const beacons = [], fetches = [], listeners = {};
const storage = () => { const m = new Map();
  return { getItem: k => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)) }; };
const search = "?utm_source=newsletter&utm_medium=email&utm_campaign=spring";
const fetchStub = (url, options) => { fetches.push({ url, options }); return Promise.resolve({ ok: true }); };
const win = { location: { href: "https://shop.example/products/tee" + search, search },
  localStorage: storage(), sessionStorage: storage(), Shopify: { shop: "shop.myshopify.com" },
  addEventListener: (name, f) => { listeners[name] = f; }, fetch: fetchStub, console };
const doc = { referrer: "https://www.google.com/", visibilityState: "visible",
  addEventListener: (name, f) => { listeners["document:" + name] = f; } };
const context = { window: win, document: doc, Blob, URLSearchParams, crypto: require("crypto").webcrypto,
  navigator: { sendBeacon: (url, blob) => { beacons.push({ url, blob }); return true; } },
  fetch: fetchStub, setTimeout, clearTimeout, console };
vm.createContext(context);
vm.runInContext(fs.readFileSync(process.argv[process.argv.length - 1], "utf8"), context);
const crm = win.crm;
crm.init({ endpoint: "https://api.example/v1/", writeKey: "wk_abcdefghijklmnopqrstuvwx" });
crm.track("product_viewed", { product: { product_id: 632910392, title: "Tee", price: "19.00" }, value: "19.00",
  currency: "USD" });
crm.track("product_added_to_cart", { product: { product_id: "632910392", quantity: 2 }, cart_token: "c1" });
crm.track("cart_viewed", { cart_token: "c1", products: [{ product_id: "632910392", quantity: 2 }], value: "38.00",
  currency: "USD" });
crm.track("checkout_started", { cart_token: "c1", value: "38.00", currency: "USD" });
crm.identify({ email: "Jane@Example.com", phone: "+16135550100", consent: { email: "subscribed" } });
crm.track("not_a_type", {});
for (let i = 0; i < 20; i++) crm.track("page_viewed", {});
doc.visibilityState = "hidden"; listeners["document:visibilitychange"]();
Promise.all(beacons.map(async b => ({ url: b.url, type: b.blob.type, body: await b.blob.text() }))).then(sent => {
  process.stdout.write(JSON.stringify({ sent, fetches: fetches.map(f => ({ url: f.url, body: f.options.body })),
    anonymous_id: win.localStorage.getItem("crm_anonymous_id") }));
});
"""


@pytest.fixture(scope="module")
def sent() -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    done = subprocess.run([node, "-e", HARNESS, "--", str(SNIPPET)], capture_output=True, text=True, timeout=30,
                          check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_what_it_sends_is_a_valid_track_request(sent: dict[str, Any]) -> None:
    requests = [TrackRequest.model_validate_json(beacon["body"]) for beacon in sent["sent"]]
    assert {beacon["url"] for beacon in sent["sent"]} == {"https://api.example/v1/track"}
    assert {beacon["type"] for beacon in sent["sent"]} == {"text/plain;charset=utf-8"}  # no preflight needed
    assert [len(r.events) for r in requests] == [20, 6]  # batches of at most 20; the unknown type was dropped
    events = [event for r in requests for event in r.events]
    assert [e.type for e in events[:6]] == ["page_viewed", "product_viewed", "product_added_to_cart", "cart_viewed",
                                            "checkout_started", "identify"]
    assert {r.anonymous_id for r in requests} == {sent["anonymous_id"]}
    assert {r.write_key for r in requests} == {"wk_abcdefghijklmnopqrstuvwx"}
    assert len({e.event_id for e in events}) == len(events)
    landing = events[0]
    assert landing.utm is not None and (landing.utm.source, landing.utm.medium, landing.utm.campaign) == (
        "newsletter", "email", "spring")
    assert landing.referrer == "https://www.google.com/"
    assert events[5].consent is not None and events[5].consent.email == "subscribed"


def test_on_shopify_it_puts_the_anonymous_id_on_the_cart(sent: dict[str, Any]) -> None:
    [cart_update] = sent["fetches"]
    assert cart_update["url"] == "/cart/update.js"
    assert json.loads(cart_update["body"]) == {"attributes": {"crm_anonymous_id": sent["anonymous_id"]}}
