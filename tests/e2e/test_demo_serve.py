"""`crm demo --serve`: after the report the stack stays up, and the sign-in it printed opens the console, until
it is told to stop (here a browser's look stands in for Ctrl-C). The demo's own run is `make demo`'s: this
drives its last step on a stack of its own, in this process."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from crm import config, wiring
from crm.adapters import clients
from crm_local.browser import INSTALL_HINT, LAUNCH_ARGS, find_chromium
from crm_local.demo import free_port, http
from crm_local.demo_console import demo_user, show_console
from crm_local.operations import add_store
from crm_local.runtime import LocalRuntime
from crm_local.simulation import SHOPIFY

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
CHROMIUM = find_chromium()
if CHROMIUM is None:
    pytest.skip(f"no Chromium found: {INSTALL_HINT}", allow_module_level=True)

STACK = "crm-demo-serve"
PRINTED = re.compile(r"console: (?P<url>\S+)  sign in as (?P<email>\S+) with password (?P<password>\S+)")


@pytest.fixture
def own_environment() -> Iterator[None]:
    """The runtime sets this process's AWS endpoint and functions' settings: put back as they were after."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    config.reset()
    wiring.reset()
    clients.reset()


def test_serve_keeps_the_stack_up_with_a_sign_in_that_works_until_stopped(
        own_environment: None, capsys: pytest.CaptureFixture[str]) -> None:
    looked: list[str] = []

    def look() -> None:
        """What a user does between the report and Ctrl-C: signs in with what was printed."""
        printed = PRINTED.search(capsys.readouterr().out)
        assert printed is not None
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(LAUNCH_ARGS))
            page = browser.new_page()
            page.goto(printed["url"])
            page.get_by_label("Email").fill(printed["email"])
            page.get_by_label("Password").fill(printed["password"])
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("heading", name="Dashboard").wait_for()
            # The workspace has no order yet: the dashboard says how data comes in rather than showing nothing.
            looked.append(page.get_by_role("status").inner_text())
            browser.close()

    runtime = LocalRuntime(port=free_port(), aws_port=free_port(), stack_name=STACK)
    with runtime:
        shop = add_store(STACK, SHOPIFY, "serve-outfitters.myshopify.com", "serve-secret")
        show_console(demo_user(STACK, shop.workspace_id, runtime.api_url), serve=True, until=look)
        assert http("GET", f"{runtime.api_url}/console/sign-in")[0] == 200  # still up once the look is over
    assert looked and "no orders" in looked[0]
    with pytest.raises(OSError):  # stopped with the runtime
        http("GET", f"{runtime.api_url}/console/sign-in")
