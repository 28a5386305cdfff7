"""One module per store platform: verify its signature, map its payloads to canonical events."""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, cast

from crm.models.stores import Platform

if TYPE_CHECKING:
    from crm.connectors.base import Connector

# Imported on first use: a store's webhooks load its own platform's payload models, not all four (cold starts,
# bench/cold_start.py).
CONNECTOR_MODULES: dict[Platform, tuple[str, str]] = {
    Platform.SHOPIFY: ("crm.connectors.shopify", "SHOPIFY"),
    Platform.WOOCOMMERCE: ("crm.connectors.woocommerce", "WOOCOMMERCE"),
    Platform.BIGCOMMERCE: ("crm.connectors.bigcommerce", "BIGCOMMERCE"),
    Platform.CUSTOM: ("crm.connectors.custom", "CUSTOM"),
}


@cache
def _connector(platform: Platform) -> Connector:
    module, name = CONNECTOR_MODULES[platform]
    return cast("Connector", getattr(import_module(module), name))


def connector_for(platform: str) -> Connector:
    """The connector of a platform named in a URL; KeyError names the unknown one."""
    try:
        return _connector(Platform(platform))
    except ValueError:
        raise KeyError(platform) from None
