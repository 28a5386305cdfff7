"""crm.connectors: every platform has its connector, loaded only when a delivery names it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from crm.connectors import connector_for
from crm.models.stores import Platform

from tests.builders import TEMPLATE


@pytest.mark.parametrize("platform", list(Platform))
def test_every_platform_has_its_connector(platform: Platform) -> None:
    assert connector_for(platform.value).platform is platform


def test_an_unknown_platform_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="magento"):
        connector_for("magento")


def test_a_shopify_delivery_loads_no_other_platforms_code() -> None:
    probe = ("import json, sys; from crm.connectors import connector_for; connector_for('shopify'); "
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('crm.connectors.'))))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                           check=True, cwd=TEMPLATE.parent / "shared").stdout))
    assert "crm.connectors.shopify" in loaded
    assert not {"crm.connectors.woocommerce", "crm.connectors.bigcommerce", "crm.connectors.custom"} & loaded
