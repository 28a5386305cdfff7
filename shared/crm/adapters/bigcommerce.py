"""BigCommerce's REST API: read one order (webhooks carry only its id). Standard library only.

The base URL is configuration (``BIGCOMMERCE_API_URL``, default https://api.bigcommerce.com).
A 404 is an answer (``None``); any other failure (5xx, timeouts, bad JSON) raises, so the
ingest queue retries the delivery.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from crm.config import settings

TIMEOUT_SECONDS = 10.0


class BigCommerceApiError(Exception):
    """The API answered with something other than an order or a 404; the delivery is retried."""


def fetch_order(store_hash: str, order_id: int, api_token: str) -> dict[str, Any] | None:
    """GET /stores/{store_hash}/v2/orders/{order_id}: the order as JSON, or None when it does not exist."""
    base = settings().bigcommerce_api_url.rstrip("/")
    url = f"{base}/stores/{urllib.parse.quote(store_hash, safe='')}/v2/orders/{int(order_id)}"
    request = urllib.request.Request(url, method="GET", headers={
        "X-Auth-Token": api_token, "Accept": "application/json",
    })
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise BigCommerceApiError(f"GET {url}: HTTP {error.code}") from None
    except json.JSONDecodeError as error:
        raise BigCommerceApiError(f"GET {url}: response is not JSON ({error})") from None
    if not isinstance(payload, dict):
        raise BigCommerceApiError(f"GET {url}: response is not a JSON object")
    return payload
