"""The built-in segments' settings: what docs/openapi.yaml and docs/segments.md say is what the model takes."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from crm.models.segments import BuiltinSettings
from crm.segments.settings import SETTING_NAMES, SettingsInvalid, parse_settings, setting_range

from tests.builders import ROOT


def test_the_openapi_schema_has_every_setting_with_its_range_and_default() -> None:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    documented = document["components"]["schemas"]["BuiltinSettings"]["properties"]
    model = BuiltinSettings.model_json_schema()["properties"]
    assert list(documented) == list(SETTING_NAMES)
    for name, schema in documented.items():
        assert (schema["minimum"], schema["maximum"], schema["default"]) == (
            model[name]["minimum"], model[name]["maximum"], model[name]["default"]), name


def test_the_segments_doc_table_has_every_setting_with_its_default_and_range() -> None:
    text = (ROOT / "docs" / "segments.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \| (\d+)-(\d+) \|", text, re.MULTILINE)
    assert [(name, int(default), int(low), int(high)) for name, default, low, high in rows] == [
        (name, BuiltinSettings.model_fields[name].default, *setting_range(name)) for name in SETTING_NAMES]


@pytest.mark.parametrize("body", [b'{"vip_top_percent": 51}', b'{"vip_top_percent": 10.5}',
                                  b'{"vip_top_percent": "10"}', b'{"vip_top_percent": false}', b'{"vip": 10}', b"[]",
                                  b"null", b"", b"\xff"])
def test_what_is_refused(body: bytes) -> None:
    with pytest.raises(SettingsInvalid):
        parse_settings(body)


def test_what_is_taken() -> None:
    assert parse_settings(b"{}") == BuiltinSettings()
    assert parse_settings(b'{"vip_top_percent": 50, "cart_abandon_days": 1.0}') == BuiltinSettings(
        vip_top_percent=50, cart_abandon_days=1)
