"""A workspace's settings for its built-in segments, as the marketer API reads and replaces them.

The settings are one document, replaced whole (a setting left out takes its default), and take effect at
each built-in's next computation: a change moves nobody until then. Each setting is a whole number in a
range; a refused document names the first setting at fault and its range, as ``path: message`` like the
segment definitions' errors.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from crm.models.segments import BuiltinSettings
from crm.ports import SegmentStore

SETTING_NAMES = tuple(BuiltinSettings.model_fields)


class SettingsInvalid(ValueError):
    """The settings document is refused; the message starts with the setting at fault."""


def setting_range(name: str) -> tuple[int, int]:
    """The least and greatest value the setting takes (both included)."""
    schema = BuiltinSettings.model_json_schema()["properties"][name]
    return int(schema["minimum"]), int(schema["maximum"])


def _whole(value: Any) -> Any:
    # As in segment definitions: 3.0 is the whole number 3; "3" and true are not numbers.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def parse_settings(body: bytes | str) -> BuiltinSettings:
    """The settings in a JSON body; SettingsInvalid naming the first setting at fault."""
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SettingsInvalid("body: not JSON; send an object of settings ({} for the defaults)") from None
    if not isinstance(document, dict):
        raise SettingsInvalid(f"body: must be an object of settings ({', '.join(SETTING_NAMES)})")
    unknown = sorted(set(document) - set(SETTING_NAMES))
    if unknown:
        raise SettingsInvalid(f"{unknown[0]}: unknown setting; the settings are {', '.join(SETTING_NAMES)}")
    try:
        return BuiltinSettings.model_validate({k: _whole(v) for k, v in document.items()}, strict=True)
    except ValidationError as error:
        name = str(error.errors()[0]["loc"][0])
        low, high = setting_range(name)
        raise SettingsInvalid(f"{name}: must be a whole number from {low} to {high}; got "
                              f"{json.dumps(document[name])}") from None


def view(settings: BuiltinSettings) -> dict[str, int]:
    return settings.model_dump()


def replace_settings(store: SegmentStore, workspace_id: str, settings: BuiltinSettings) -> dict[str, int]:
    """Store the settings whole and answer them as stored."""
    store.put_settings(workspace_id, settings)
    return view(store.settings(workspace_id))


__all__ = ["SETTING_NAMES", "SettingsInvalid", "parse_settings", "replace_settings", "setting_range", "view"]
