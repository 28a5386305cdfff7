"""Screenshots of every console page at desktop and phone width (docs/console/): a local stack filled with a
small run of the demo's simulated stores, two users invited (an editor and a viewer), and Playwright driving the
system's Chromium (crm_local.browser). `python -m crm_local.console_screenshots [--out docs/console]`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from crm_local.browser import INSTALL_HINT, LAUNCH_ARGS, find_chromium
from crm_local.demo import STACK, Api, create_custom_segments, drive, free_port, recompute_all, set_rates
from crm_local.demo_timing import Phases
from crm_local.operations import add_store
from crm_local.runtime import LocalRuntime
from crm_local.simulation import DOMAINS, SHOPIFY, START, STORE_CURRENCY, WOOCOMMERCE, Store, simulate
from crm_local.users import add_user

WIDTHS = {"desktop": (1280, 900), "phone": (360, 760)}
PASSWORD = "Screenshots-only-1"
SECRETS = {SHOPIFY: "screens-shopify-secret", WOOCOMMERCE: "screens-woocommerce-secret"}


def _accept(page: Any, invitation_url: str) -> None:
    page.goto(invitation_url)
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD)
    page.get_by_role("button", name="Set password and sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


def _shoot(browser: Any, out: Path, name: str, visit: Callable[[Any], None], storage: Any = None) -> None:
    for width, (x, y) in WIDTHS.items():
        context = browser.new_context(viewport={"width": x, "height": y}, storage_state=storage)
        page = context.new_page()
        visit(page)
        page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=True)
        print(f"wrote {out / f'{name}-{width}.png'}", flush=True)
        context.close()


def _template_editor(url: str) -> Callable[[Any], None]:
    """The editor once its preview frame shows the rendered email."""
    def visit(page: Any) -> None:
        page.goto(url)
        page.frame_locator("iframe[name=email-preview]").locator("body *").first.wait_for()
        # The frame is sandboxed (another process): Chromium paints it in a full-page shot only within the
        # viewport, so the viewport is made as tall as the page (a phone's shot showed it blank).
        width = page.viewport_size["width"]
        page.set_viewport_size({"width": width, "height": page.evaluate("document.documentElement.scrollHeight")})
        page.wait_for_timeout(300)
    return visit


def _build(page: Any, root: str) -> None:
    page.goto(f"{root}/segments")
    page.get_by_role("button", name="Add event condition", exact=True).click()
    page.locator("#n-1-within_days").fill("")  # ever: the simulated shoppers browsed months ago
    page.locator("#n-1-within_days").press("Tab")
    page.locator("#n-1-within_days[value='']").wait_for()
    page.get_by_role("button", name="Add group", exact=True).click()
    page.locator("#n-2-0-field").wait_for()
    page.locator("[data-figure=draft-count]").wait_for()


def _export(page: Any, segment: str) -> None:
    page.goto(segment)
    page.get_by_role("button", name="Start the export").click()
    page.get_by_role("link", name="Download the file").wait_for(timeout=60_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/console"))
    parser.add_argument("--shoppers", type=int, default=80)
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit(f"no Chromium: {INSTALL_HINT}")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["TRACK_MAX_EVENT_AGE_DAYS"] = str(max(7, (datetime.now(UTC) - START).days + 1))
    with LocalRuntime(port=free_port(), aws_port=free_port(), stack_name=STACK) as runtime:
        shop = add_store(STACK, SHOPIFY, DOMAINS[SHOPIFY], SECRETS[SHOPIFY], currency=STORE_CURRENCY[SHOPIFY])
        woo = add_store(STACK, WOOCOMMERCE, DOMAINS[WOOCOMMERCE], SECRETS[WOOCOMMERCE],
                        workspace_id=shop.workspace_id, currency=STORE_CURRENCY[WOOCOMMERCE])
        stores = {SHOPIFY: Store(SHOPIFY, shop.domain, SECRETS[SHOPIFY], shop.write_key or ""),
                  WOOCOMMERCE: Store(WOOCOMMERCE, woo.domain, SECRETS[WOOCOMMERCE], woo.write_key or "")}
        api = Api(runtime.api_url, shop.api_key)
        create_custom_segments(api)
        drive(runtime, stores, simulate(args.shoppers, 7), Phases())
        set_rates(api)  # the EUR store's orders count in the workspace's USD totals, as in the demo
        runtime.wait_idle()
        recompute_all(api)
        vip = api.ok("GET", "/segments/builtin:vip/members?limit=1")["members"]
        customer = vip[0] if vip else None
        editor = add_user(STACK, shop.workspace_id, "editor@demo-outfitters.example", "editor", runtime.api_url)
        viewer = add_user(STACK, shop.workspace_id, "viewer@demo-outfitters.example", "viewer", runtime.api_url)
        root = f"{runtime.api_url}/console"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium), args=list(LAUNCH_ARGS))
            _shoot(browser, args.out, "sign-in", lambda page: page.goto(f"{root}/sign-in"))
            signed_in = {}
            for who, invited in (("editor", editor), ("viewer", viewer)):
                context = browser.new_context()
                _accept(context.new_page(), invited["invitation_url"])
                signed_in[who] = context.storage_state()
                context.close()
            board = f"{root}?from={START.date()}&to={START.date().replace(month=6, day=30)}"
            _shoot(browser, args.out, "dashboard", lambda page: page.goto(board), signed_in["editor"])
            if customer is not None:
                search = f"{root}/customers?q={quote(customer['email'])}"
                _shoot(browser, args.out, "customers", lambda page: page.goto(search), signed_in["editor"])
                profile = f"{root}/customers/{customer['profile_id']}"
                _shoot(browser, args.out, "customer", lambda page: page.goto(profile), signed_in["editor"])
            _shoot(browser, args.out, "segments", lambda page: page.goto(f"{root}/segments"), signed_in["editor"])
            _shoot(browser, args.out, "segments-viewer", lambda page: page.goto(f"{root}/segments"),
                   signed_in["viewer"])
            _shoot(browser, args.out, "segment", lambda page: page.goto(f"{root}/segments/builtin:vip"),
                   signed_in["editor"])
            _shoot(browser, args.out, "flows", lambda page: page.goto(f"{root}/flows"), signed_in["editor"])
            # A flow's page (its diagram, editor, test send and backtest) and the template editor's live preview.
            flow = f"{root}/flows/builtin:abandoned_checkout?backtest_days=30"
            _shoot(browser, args.out, "flow", lambda page: page.goto(flow), signed_in["editor"])
            _shoot(browser, args.out, "templates", lambda page: page.goto(f"{root}/templates"), signed_in["editor"])
            _shoot(browser, args.out, "template", _template_editor(f"{root}/templates/builtin:abandoned_checkout_1"),
                   signed_in["editor"])
            # The segment builder (a condition, an event window, a nested group) and a segment's export, done.
            _shoot(browser, args.out, "builder", lambda page: _build(page, root), signed_in["editor"])
            _shoot(browser, args.out, "segment-export", lambda page: _export(page, f"{root}/segments/builtin:vip"),
                   signed_in["editor"])
            # Settings: each page, the keys page as a key is created (its one showing), and a viewer's users page.
            def created_key(page: Any) -> None:
                page.goto(f"{root}/settings/keys")
                page.get_by_role("button", name="Create API key").click()
                page.get_by_role("heading", name="New key", exact=False).wait_for()

            def visiting(url: str) -> Callable[[Any], None]:
                return lambda page: page.goto(url)

            _shoot(browser, args.out, "settings-keys", created_key, signed_in["editor"])
            for page_name in ("stores", "users", "messaging", "currency"):
                _shoot(browser, args.out, f"settings-{page_name}", visiting(f"{root}/settings/{page_name}"),
                       signed_in["editor"])
            _shoot(browser, args.out, "settings-viewer", lambda page: page.goto(f"{root}/settings/users"),
                   signed_in["viewer"])
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
