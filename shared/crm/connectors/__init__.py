"""One module per store platform: verify its signature, map its payloads to canonical events."""

from __future__ import annotations

from crm.connectors.base import Connector
from crm.connectors.bigcommerce import BIGCOMMERCE
from crm.connectors.custom import CUSTOM
from crm.connectors.shopify import SHOPIFY
from crm.connectors.woocommerce import WOOCOMMERCE
from crm.models.stores import Platform

CONNECTORS: dict[Platform, Connector] = {
    Platform.SHOPIFY: SHOPIFY, Platform.WOOCOMMERCE: WOOCOMMERCE, Platform.BIGCOMMERCE: BIGCOMMERCE,
    Platform.CUSTOM: CUSTOM,
}


def connector_for(platform: str) -> Connector:
    """The connector of a platform named in a URL; KeyError names the unknown one."""
    try:
        return CONNECTORS[Platform(platform)]
    except ValueError:
        raise KeyError(platform) from None
