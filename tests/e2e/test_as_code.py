"""`crm apply` and `crm export` as a user runs them, against `crm local` over real HTTP: apply twice gives an empty
plan, export then apply gives an empty plan, an invalid file is refused naming file, line and field."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import ROOT
from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

EXAMPLE = ROOT / "examples" / "crm-config"


def crm(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crm_local.cli", *args], env=stack.env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_apply_twice_then_export_and_apply_again(local_stack: LocalStack, store: dict[str, str],
                                                 tmp_path: Path) -> None:
    config = tmp_path / "crm-config"
    shutil.copytree(EXAMPLE, config)
    target = ("--api", local_stack.api_url, "--workspace", store["workspace_id"])

    first = crm(local_stack, "apply", str(config), *target)
    assert first.returncode == 0, first.stderr
    assert "plan: 5 to create, 0 to change, 0 to delete, 0 unchanged" in first.stdout
    assert "done: create flow win-back-big-spenders" in first.stdout
    status, flow = local_stack.get("/flows/win-back-big-spenders", store["api_key"])
    assert (status, flow["definition"]["managed_by"]) == (200, "shop-config")

    second = crm(local_stack, "apply", str(config), *target)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == ["plan: 0 to create, 0 to change, 0 to delete, 5 unchanged"]

    # The keys issued for the two commands were revoked when each ended.
    keys = [json.loads(line) for line in local_stack.crm("keys", "list", "--workspace", store["workspace_id"])
            .splitlines()]
    assert sorted(key["state"] for key in keys) == ["active", "revoked", "revoked"]

    exported = tmp_path / "exported"
    done = crm(local_stack, "export", str(exported), "--api", local_stack.api_url, "--key", store["api_key"],
               "--managed-by", "shop-config")
    assert done.returncode == 0, done.stderr
    assert "flows/win-back-big-spenders.yaml" in json.loads(done.stdout)["written"]
    again = crm(local_stack, "apply", str(exported), "--dry-run", "--api", local_stack.api_url,
                "--key", store["api_key"])
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["plan: 0 to create, 0 to change, 0 to delete, 5 unchanged"]


def test_an_invalid_file_is_refused_naming_file_line_and_field(local_stack: LocalStack, store: dict[str, str],
                                                              tmp_path: Path) -> None:
    config = tmp_path / "crm-config"
    shutil.copytree(EXAMPLE, config)
    flow = config / "flows" / "win-back-big-spenders.yaml"
    flow.write_text(flow.read_text().replace("duration: P7D", "duration: a week"))
    refused = crm(local_stack, "apply", str(config), "--api", local_stack.api_url, "--key", store["api_key"])
    assert refused.returncode == 1
    line = next(n for n, text in enumerate(flow.read_text().splitlines(), 1) if "duration: a week" in text)
    assert refused.stderr.startswith(f"crm: flows/win-back-big-spenders.yaml:{line}: steps[1].duration: "), \
        refused.stderr
    assert refused.stdout == ""  # no plan, nothing applied
