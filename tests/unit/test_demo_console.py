"""`crm demo`'s last word (crm_local.demo_console): the console's URL and sign-in, and `--serve`."""

from __future__ import annotations

from typing import Any

import pytest
from crm_local import cli, demo
from crm_local.demo_console import ConsoleLook, show_console

LOOK = ConsoleLook("http://127.0.0.1:8123/console", "marketer@demo-outfitters.example", "Pass-word-1234")


def test_without_serve_the_sign_in_is_printed_and_nothing_is_awaited(capsys: pytest.CaptureFixture[str]) -> None:
    def never() -> None:
        raise AssertionError("the demo waited without --serve")

    show_console(LOOK, serve=False, until=never)
    printed = capsys.readouterr().out
    assert LOOK.url in printed and LOOK.email in printed and LOOK.password in printed
    assert "crm demo --serve" in printed


def test_serving_returns_only_when_told_to_stop(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []
    show_console(LOOK, serve=True, until=lambda: seen.append(capsys.readouterr().out))
    assert len(seen) == 1 and f"console: {LOOK.url}" in seen[0] and "Ctrl-C" in seen[0]


@pytest.mark.parametrize(("argv", "serve"), [(["demo"], False), (["demo", "--serve"], True)])
def test_crm_demo_passes_serve_on(monkeypatch: pytest.MonkeyPatch, argv: list[str], serve: bool) -> None:
    called: dict[str, Any] = {}
    monkeypatch.setattr(demo, "run_demo", lambda **kwargs: called.update(kwargs) or 0)
    args = cli.parser().parse_args(argv)
    assert args.run(args) == 0
    assert called["serve"] is serve and called["shoppers"] == 250
