"""crm.wiring: a function's cold start loads only the adapters it builds."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.builders import TEMPLATE


def loaded_after(code: str) -> set[str]:
    probe = f"import json, sys; {code}; print(json.dumps(sorted(m for m in sys.modules if m.startswith('crm'))))"
    return set(json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                                         cwd=TEMPLATE.parent / "shared",
                                         env={"TABLE_NAME": "t", "AWS_DEFAULT_REGION": "us-east-1"}).stdout))


def test_importing_the_wiring_builds_and_loads_no_adapter() -> None:
    loaded = loaded_after("import crm.wiring")
    assert not {m for m in loaded if m.startswith(("crm.adapters", "crm.flows", "crm.messaging"))}


def test_a_factory_loads_its_own_adapter_only() -> None:
    loaded = loaded_after("from crm import wiring; wiring.store_directory()")
    assert "crm.adapters.stores" in loaded
    assert not {m for m in loaded if m.startswith(("crm.adapters.flow_", "crm.adapters.segment", "crm.flows"))}
