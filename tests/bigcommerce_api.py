"""A BigCommerce-shaped REST API on loopback: GET /stores/{hash}/v2/orders/250 answers the v2 fixture."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.builders import BC_STORE_HASH, BC_TOKEN, bc_order_json

ORDER_PATH = f"/stores/{BC_STORE_HASH}/v2/orders/250"


@dataclass
class FakeBigCommerceApi:
    url: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    fail_with: int | None = None


@contextmanager
def fake_bigcommerce_api() -> Iterator[FakeBigCommerceApi]:
    """Serve the v2 order for the right path and token, 404 otherwise (``fail_with`` forces a status)."""
    order = json.dumps(bc_order_json()).encode()
    state = FakeBigCommerceApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            if state.fail_with is not None:
                self._answer(state.fail_with, b'{"title": "unavailable"}')
            elif self.path == ORDER_PATH and self.headers.get("X-Auth-Token") == BC_TOKEN:
                self._answer(200, order)
            else:
                self._answer(404, b'[{"status": 404, "message": "The requested resource was not found."}]')

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
