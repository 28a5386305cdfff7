"""API Gateway, emulated: one local HTTP server routing the template's API paths to each function's
Chalice app, through chalice's own local gateway (the same request/response handling as `chalice local`).
Paths under /_local/ are the runtime's own (crm_local.clock_control; SES's tracking links, crm_local.ses_tracking);
the deployed API has none of them."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalGateway, ThreadedHTTPServer

from crm_local.clock_control import LocalRoute
from crm_local.lambdas import Function

LOCAL_PREFIX = "/_local/"

# The server handles each connection on a thread of its own: the peer's address travels with that thread.
_peer = threading.local()


class PeerAwareGateway(LocalGateway):
    """chalice's gateway, with API Gateway's ``requestContext.identity.sourceIp`` set to the connection's peer
    rather than chalice's fixed 127.0.0.1, so per-client limits (the /track rate limit) see distinct clients."""

    def _generate_lambda_event(self, method: str, path: str, headers: Any, body: bytes | None) -> Any:
        event = super()._generate_lambda_event(method, path, headers, body)
        peer = getattr(_peer, "address", None)
        if peer:
            event["requestContext"]["identity"]["sourceIp"] = peer
        return event


@dataclass(frozen=True)
class LocalRequest:
    """A request to one of the runtime's own routes under a path prefix (``rest``: the path after it)."""

    method: str
    rest: str
    headers: Mapping[str, str]
    peer: str


@dataclass(frozen=True)
class LocalAnswer:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


# A local route that answers any path under its prefix, in any content type (a redirect, an image).
PrefixRoute = Callable[[LocalRequest], LocalAnswer]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    gateway: PeerAwareGateway


def route_pattern(path: str) -> re.Pattern[str]:
    """`/customers/{profile_id}` -> a regex matching one path segment per parameter ({proxy+} many)."""
    escaped = re.sub(r"\\\{[^}]+\\\+\\\}", ".+", re.escape(path))
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", escaped) + "$")


class RoutingRequestHandler(ChaliceRequestHandler):
    routes: list[Route] = []
    local_routes: Mapping[tuple[str, str], LocalRoute] = {}
    prefix_routes: Mapping[tuple[str, str], PrefixRoute] = {}

    def __init__(self, request: Any, client_address: Any, server: Any) -> None:
        # chalice's handler builds one gateway per connection; ours picks it per request instead.
        super(ChaliceRequestHandler, self).__init__(request, client_address, server)

    def _generic_handle(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith(LOCAL_PREFIX):
            self._local(path)
            return
        allowed = [r for r in self.routes if r.pattern.match(path)]
        matched = [r for r in allowed if r.method == self.command or self.command == "OPTIONS"]
        if not matched:
            status, message = (405, "method not allowed") if allowed else (404, f"no route for {path}")
            self._send_json(status, {"error": message})
            return
        self.local_gateway = matched[0].gateway
        _peer.address = str(self.client_address[0])
        super()._generic_handle()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, QUERY, ...) is routed too, so that one no route takes is a 405 (or 404), as
        # API Gateway answers, rather than http.server's 501 for a method it has no do_ for.
        if name.startswith("do_"):
            return self._generic_handle
        raise AttributeError(name)

    def _local(self, path: str) -> None:
        for (method, prefix), prefixed in self.prefix_routes.items():
            if path.startswith(prefix) and method == self.command:
                peer = str(self.client_address[0])
                answered = prefixed(LocalRequest(self.command, path[len(prefix):],
                                               {k.lower(): v for k, v in self.headers.items()}, peer))
                self.send_response(answered.status)
                for name, value in {"Content-Length": str(len(answered.body)), **answered.headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answered.body)
                return
        route = self.local_routes.get((self.command, path))
        if route is None:
            known = any(p == path for _, p in self.local_routes)
            status, message = (405, "method not allowed") if known else (404, f"no route for {path}")
            self._send_json(status, {"error": message})
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, answer = route(body)
        self._send_json(status, answer)

    def _send_json(self, status: int, body: Mapping[str, Any]) -> None:
        encoded = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def api_server(host: str, port: int, routes: list[tuple[str, str, Function]],
               local_routes: Mapping[tuple[str, str], LocalRoute] | None = None,
               prefix_routes: Mapping[tuple[str, str], PrefixRoute] | None = None) -> ThreadedHTTPServer:
    gateways: dict[str, PeerAwareGateway] = {}
    table = []
    for method, path, function in routes:
        name = function.spec.logical_id
        if name not in gateways:
            config = Config(chalice_stage="local", function_name=name,
                            user_provided_params={"lambda_timeout": function.spec.timeout})
            gateways[name] = PeerAwareGateway(cast(Any, function.handler), config)
        table.append(Route(method, route_pattern(path), gateways[name]))
    handler = type("TemplateRoutes", (RoutingRequestHandler,), {"routes": table, "local_routes": local_routes or {},
                                                                 "prefix_routes": prefix_routes or {}})
    return ThreadedHTTPServer((host, port), handler)
