"""moto's server, with connections kept alive.

moto's ThreadedMotoServer serves through werkzeug's development server, which closes the connection after
every response ("Connection: close"): each AWS request then costs a new TCP connection, a new server thread,
and a 10 ms wait while the server drains the closed socket; a sampling profile of the demo showed a fifth of
the runtime's time in socket set-up and tear-down. botocore keeps a pool of connections per client: served
with HTTP/1.1 keep-alive, a function's or a poller's requests reuse theirs.

Keep-alive needs each request's body read to its end before the next request line (what werkzeug's server
cannot promise, hence its "close"): here the body is read whole (by Content-Length, or de-chunked) before moto
sees it, and the answer is buffered so that its length is known. moto's answers are small; nothing streams.
"""

from __future__ import annotations

import io
import logging
import threading
from typing import IO, Any, cast

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, DechunkedInput, make_server

log = logging.getLogger("crm.local")

# Hop-by-hop or framing headers: this server frames each answer itself.
_FRAMING = {"connection", "content-length", "transfer-encoding", "keep-alive"}


class KeepAliveHandler(MotoRequestHandler):
    """moto's request handler (its environ keeps S3's underscored metadata headers), answering on a connection
    the client may reuse."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = DechunkedInput(cast(IO[bytes], self.rfile)).read()
            environ.pop("wsgi.input_terminated", None)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        answer: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status, headers]
            return lambda data: answer.append(data)  # the legacy write(): appended after the status and headers

        try:
            chunks = self.server.app(environ, start_response)
            try:
                data = b"".join([*answer[2:], *chunks])
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
        except Exception:
            log.exception("moto failed on %s %s", self.command, self.path)
            answer[:] = ["500 Internal Server Error", [("Content-Type", "text/plain")]]
            data = b"internal error in the local AWS server"
        status, headers = answer[0], answer[1]
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        head = self.command == "HEAD"
        for name, value in headers:
            # A HEAD answer's Content-Length is the object's: kept; any other is this body's.
            if name.lower() not in _FRAMING or (head and name.lower() == "content-length"):
                self.send_header(name, value)
        if not head:
            self.send_header("Content-Length", str(len(data)))
        # Status, headers and body in one write: written apart, the body would wait on the client's delayed ACK
        # of the headers (Nagle's algorithm), 40 ms a request on a kept-alive connection.
        self._headers_buffer.append(b"\r\n")
        if not head:
            self._headers_buffer.append(data)
        self.flush_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class AwsServer:
    """moto's backends behind a threaded HTTP/1.1 server (ThreadedMotoServer's interface: start, stop)."""

    def __init__(self, host: str, port: int) -> None:
        self._server: BaseWSGIServer = make_server(host, port, DomainDispatcherApplication(create_backend_app),
                                                   threaded=True, request_handler=KeepAliveHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
