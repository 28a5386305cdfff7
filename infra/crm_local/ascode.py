"""`crm apply DIR` and `crm export DIR`: the marketer API over real HTTP, and the key to call it with.

The logic is crm.ascode's; this module sends its requests (urllib, JSON with Decimals kept exact) and finds
the key: ``--key`` or the CRM_API_KEY environment variable; else, with ``--workspace``, a key issued for this
one command in the stack's table (as `crm keys create` does, so AWS credentials for the stack are needed) and
revoked when the command ends. (No expiry: a local runtime's clock may be fast-forwarded past any.)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from crm.ascode.layout import DirectoryInvalid, load_directory
from crm.ascode.plan import PlanRefused, Step, describe_plan, make_plan
from crm.ascode.workspace import (
    ApiRefused,
    MarketerHttp,
    apply_plan,
    exported,
    json_text,
    read_workspace,
    write_files,
)

KEY_VARIABLE = "CRM_API_KEY"
REQUEST_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class UrlHttp:
    """The marketer API at ``base`` (API Gateway's stage URL, or the local runtime's), with one key."""

    base: str
    key: str

    def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        request = Request(self.base.rstrip("/") + path, method=method,
                          data=json_text(body) if body is not None else None,
                          headers={"x-api-key": self.key, "content-type": "application/json",
                                   "accept": "application/json"})
        try:
            with urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as answer:  # the URL is the user's --api
                return answer.status, _json(answer.read())
        except HTTPError as error:
            return error.code, _json(error.read())
        except URLError as error:
            raise ApiRefused(f"{method} {self.base}{path}: {error.reason}") from None


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw, parse_float=Decimal)
    except ValueError:
        return raw.decode(errors="replace")


@contextmanager
def marketer_http(api: str, key: str | None, stack: str, workspace: str | None) -> Iterator[MarketerHttp]:
    chosen = key or os.environ.get(KEY_VARIABLE)
    if chosen:
        yield UrlHttp(api, chosen)
        return
    if workspace is None:
        raise ValueError(f"give --key (or set {KEY_VARIABLE}), or --workspace to issue a key for this command")
    from crm_local.access import create_key, revoke_key

    issued = create_key(stack, workspace)
    try:
        yield UrlHttp(api, str(issued["api_key"]))
    finally:
        revoke_key(stack, workspace, str(issued["key_id"]))


def run_apply(http: MarketerHttp, directory: Path, dry_run: bool, out: TextIO = sys.stdout,
              err: TextIO = sys.stderr) -> int:
    """Prints the plan, then applies it unless ``dry_run``. Exit codes: 0 done (or nothing to do), 1 the
    files or the plan refused, 2 the API refused a step."""
    try:
        wanted = load_directory(directory)
    except DirectoryInvalid as invalid:
        for problem in invalid.problems:
            print(f"crm: {problem}", file=err)
        return 1
    try:
        workspace = read_workspace(http)
        plan = make_plan(wanted, workspace.held, workspace.builtin_segments)
    except PlanRefused as refused:
        for line in str(refused).splitlines():
            print(f"crm: {line}", file=err)
        return 1
    except ApiRefused as refused:
        print(f"crm: {refused}", file=err)
        return 2
    for line in describe_plan(plan):
        print(line, file=out)
    if dry_run or plan.empty:
        return 0
    def done(step: Step) -> None:
        print(f"done: {step.action.value} {step.kind.value} {step.id}", file=out, flush=True)

    try:
        requests = apply_plan(http, plan, done)
    except ApiRefused as refused:
        print(f"crm: {refused}", file=err)
        return 2
    print(f"applied ({requests} requests)", file=out)
    return 0


def run_export(http: MarketerHttp, directory: Path, managed_by: str | None, out: TextIO = sys.stdout,
               err: TextIO = sys.stderr) -> int:
    """Writes the export; exit code 2 when the API refused a read (nothing is written then)."""
    try:
        files = exported(read_workspace(http), managed_by)
    except ApiRefused as refused:
        print(f"crm: {refused}", file=err)
        return 2
    removed = write_files(directory, files)
    print(json.dumps({"written": sorted(files), "removed": removed}), file=out)
    return 0
