"""How many events a /track request carries: the storefront snippet itself, run over simulated browsing sessions.

`storefront/crm-track.js` queues a page's events and sends them 1 s after the first (at most 20 a request) and when
the page is hidden or left. So what a request carries is decided by what a page does within its first second and by
how shoppers move between pages: this script loads the real snippet in node (`vm`, a virtual clock driving its
timers, sendBeacon recorded) once per page of each simulated session and counts what it sends. `bench/cost.py`
prices /track requests with the mean it finds and `bench/profile_events.py` folds its product views in the
requests it finds (docs/profile-writes.md): one number for both.

    .venv/bin/python bench/track_batching.py             # prints the sessions' requests; about a second

The session model (assumed, seeded; it is the one `crm_local.simulation` browses with, page by page): a landing
page; 1 to 4 product pages, each a page view and the theme's product view a moment after load, 5 to 120 s apart,
an add to cart clicked on 40 % of them; a quarter of the sessions go on to the cart page (a page view and a cart
view) and start a checkout; one in ten signs in (an identify on the account page). A view of one page never shares
a request with the next page's: leaving a page flushes the queue.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SNIPPET = Path(__file__).resolve().parents[1] / "storefront" / "crm-track.js"
SEED = 11
SESSIONS = 1_000
# The events a /track request carries that profile_events' "product viewed" kind stands for (its monthly mix:
# "product and page views").
VIEW_TYPES = frozenset({"page_viewed", "product_viewed"})

# One page: its events as [seconds after load, type], how long the shopper stays on it. The snippet is loaded
# afresh for each page (a page load), and the page is left (pagehide) after its dwell time.
_PAGES = r"""
const vm = require("vm"), fs = require("fs");
const [snippetPath, pagesPath] = process.argv.slice(-2);
const source = fs.readFileSync(snippetPath, "utf8");
const pages = JSON.parse(fs.readFileSync(pagesPath, "utf8"));
const storage = () => { const m = new Map();
  return { getItem: k => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)) }; };
const sizes = [];
for (const session of pages) {
  const local = storage(), sessionStore = storage();
  for (const page of session) {
    let now = 0, timers = [], next = 1;
    const listeners = {}, sent = [];
    const setTimeout_ = (f, ms) => { const id = next++; timers.push({ id, at: now + ms, f }); return id; };
    const clearTimeout_ = id => { timers = timers.filter(t => t.id !== id); };
    const advance = to => {
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        const due = timers[0];
        if (!due || due.at > to) break;
        timers.shift(); now = due.at; due.f();
      }
      now = to;
    };
    const win = { location: { href: "https://shop.example/", search: "" }, localStorage: local,
      sessionStorage: sessionStore, addEventListener: (name, f) => { listeners[name] = f; }, console };
    const doc = { referrer: "", visibilityState: "visible",
      addEventListener: (name, f) => { listeners["document:" + name] = f; } };
    const context = { window: win, document: doc, Blob, URLSearchParams, crypto: require("crypto").webcrypto,
      navigator: { sendBeacon: (url, blob) => { sent.push(blob); return true; } },
      setTimeout: setTimeout_, clearTimeout: clearTimeout_, console };
    vm.createContext(context);
    vm.runInContext(source, context);
    win.crm.init({ endpoint: "https://api.example/v1", writeKey: "wk_abcdefghijklmnopqrstuvwx",
                   pageView: page.events[0][1] === "page_viewed" });
    for (const [at, type] of page.events) {
      if (at === 0 && type === "page_viewed") continue;  // init sent it
      advance(at * 1000);
      win.crm.track(type, type === "identify" ? { email: "jane@example.com" } : {});
    }
    advance(page.dwell * 1000);
    doc.visibilityState = "hidden"; listeners["document:visibilitychange"](); listeners["pagehide"]();
    for (const blob of sent) sizes.push(blob);
  }
}
Promise.all(sizes.map(b => b.text())).then(bodies => process.stdout.write(JSON.stringify(
  bodies.map(body => JSON.parse(body).events.map(e => e.type)))));
"""


def sessions(seed: int = SEED, count: int = SESSIONS) -> list[list[dict[str, Any]]]:
    """Browsing sessions as pages: each page's events (seconds after load, type) and its dwell time."""
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        pages: list[dict[str, Any]] = [{"events": [[0, "page_viewed"]], "dwell": rng.randint(5, 60)}]
        for _ in range(rng.randint(1, 4)):
            events: list[list[Any]] = [[0, "page_viewed"], [round(rng.uniform(0.05, 0.4), 3), "product_viewed"]]
            dwell = rng.randint(5, 120)
            if rng.random() < 0.4:
                events.append([rng.randint(3, dwell), "product_added_to_cart"])
            pages.append({"events": events, "dwell": dwell})
        if rng.random() < 0.25:
            pages.append({"events": [[0, "page_viewed"], [round(rng.uniform(0.05, 0.4), 3), "cart_viewed"],
                                     [rng.randint(5, 60), "checkout_started"]], "dwell": 90})
        if rng.random() < 0.1:
            pages.append({"events": [[0, "page_viewed"], [rng.randint(5, 40), "identify"]], "dwell": 10})
        found.append(pages)
    return found


@dataclass(frozen=True)
class Batching:
    """What the snippet sent for the sessions: each request's event types, in order."""

    requests: list[list[str]]

    @property
    def events(self) -> int:
        return sum(len(request) for request in self.requests)

    @property
    def events_per_request(self) -> float:
        return self.events / len(self.requests)

    @property
    def views_per_request(self) -> list[int]:
        """How many product and page views each request that carries any carries, in order."""
        return [n for n in (sum(t in VIEW_TYPES for t in request) for request in self.requests) if n]

    def sizes(self) -> Counter[int]:
        return Counter(len(request) for request in self.requests)


def run_snippet(pages: list[list[dict[str, Any]]], work: Path) -> Batching:
    """The real snippet over ``pages`` in node: what it sent, a request at a time."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("bench/track_batching.py needs node (the storefront snippet is JavaScript)")
    path = work / "track_batching_pages.json"
    path.write_text(json.dumps(pages))
    done = subprocess.run([node, "-e", _PAGES, "--", str(SNIPPET), str(path)], capture_output=True, text=True,
                          timeout=300, check=True)
    return Batching(json.loads(done.stdout))


def measure(seed: int = SEED, count: int = SESSIONS) -> Batching:
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        return run_snippet(sessions(seed, count), Path(work))


def describe(batching: Batching) -> str:
    sizes = ", ".join(f"{n} events: {k}" for n, k in sorted(batching.sizes().items()))
    views = batching.views_per_request
    return (f"the snippet (storefront/crm-track.js in node) over {SESSIONS:,} simulated sessions, seed {SEED}: "
            f"{batching.events:,} events in {len(batching.requests):,} /track requests, "
            f"{batching.events_per_request:.2f} events a request ({sizes}); product and page views "
            f"{sum(views) / len(views):.2f} a request that carries any")


def main() -> int:
    print(describe(measure()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
