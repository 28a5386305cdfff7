"""The demo's last word: the console's URL and a demo user's sign-in, and with `crm demo --serve` the stack kept
up for a look until Ctrl-C (docs/console.md, README)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from crm.adapters.users import CognitoUsers, temporary_password

from crm_local.operations import stack_outputs

DEMO_USER = "marketer@demo-outfitters.example"


@dataclass(frozen=True)
class ConsoleLook:
    url: str
    email: str
    password: str


def demo_user(stack_name: str, workspace_id: str, api_url: str) -> ConsoleLook:
    """An editor of the demo's workspace in the stack's console pool, with a password set (the invitation
    accepted on the user's behalf: nobody is there to click the link)."""
    outputs = stack_outputs(stack_name)
    users = CognitoUsers(outputs["ConsoleUserPoolId"], outputs["ConsoleUserPoolClientId"])
    password = temporary_password()
    invitation = users.invite(workspace_id, DEMO_USER, "editor")
    users.accept(DEMO_USER, invitation.temporary_password, password)
    return ConsoleLook(f"{api_url.rstrip('/')}/console", DEMO_USER, password)


def until_interrupted() -> None:
    """Wait for Ctrl-C (SIGINT's KeyboardInterrupt), the way `crm local` waits."""
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopping the demo's stack", flush=True)


def show_console(look: ConsoleLook, serve: bool, until: Callable[[], None] = until_interrupted) -> None:
    """Print where the console is and how to sign in; when serving, return only once ``until`` does (the stack
    stays up meanwhile: the caller stops it after)."""
    print(f"console: {look.url}  sign in as {look.email} with password {look.password}", flush=True)
    if not serve:
        print("the demo's stack stops now: `crm demo --serve` keeps it up for a look", flush=True)
        return
    print("the demo's stack stays up for a look: Ctrl-C stops it", flush=True)
    until()
