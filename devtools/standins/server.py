"""The HTTPS server every stand-in runs on: stdlib ``ThreadingHTTPServer`` speaking HTTP/1.1
(keep-alive, so clients reuse connections as they do against Azure), with TLS done per
connection in the handler thread so a slow handshake never stalls the accept loop.

The server knows nothing about Partner Center or Key Vault: it turns bytes into a
:class:`~devtools.standins.wire.Request`, hands it to its target, and writes the answer back,
or, when the target asks for it, stalls or drops the connection (the network faults).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import sys
import threading
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from requests.structures import CaseInsensitiveDict

from .wire import Request, Response

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
IDLE_CONNECTION_SECONDS = 30.0


class Connection(Protocol):
    """What a target may do to the client's connection besides answering."""

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the server is stopping."""

    def drop(self) -> None:
        """Close the connection without answering."""


class RequestTarget(Protocol):
    def serve(self, request: Request, connection: Connection) -> Response | None:
        """The answer, or None when the connection was dropped instead."""


class _BodyTooLarge(Exception):
    pass


class _HttpsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        target: RequestTarget,
        tls_context: ssl.SSLContext,
    ) -> None:
        self.target = target
        self.tls_context = tls_context
        self.stopping = threading.Event()
        self._connections_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup loopback never needs.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_all_connections(self) -> None:
        with self._connections_lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            shut_down(connection)

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            # Resets, TLS refusals and timeouts are the client's business (or an injected fault).
            log.debug("connection from %s ended: %r", client_address, error)
            return
        log.exception("stand-in failed serving %s", client_address)


def shut_down(connection: socket.socket) -> None:
    """Shut a (TLS) socket down at the TCP level.

    The plain-socket method is called on purpose: ``SSLSocket.shutdown`` discards its TLS state,
    which would break a handler thread that is reading from it at that moment.
    """
    with suppress(OSError):
        socket.socket.shutdown(connection, socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpsServer
    timeout = IDLE_CONNECTION_SECONDS
    # Buffered, so headers and body leave in one write (the handler flushes after each
    # request): separate small writes meet the client's delayed ACK and cost ~40 ms each.
    wbufsize = 64 * 1024

    def setup(self) -> None:
        raw = self.request
        assert isinstance(raw, socket.socket)
        raw.settimeout(self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = self.server.tls_context.wrap_socket(raw, server_side=True)
        self.server.track(self.request)
        super().setup()

    def finish(self) -> None:
        try:
            with suppress(OSError):
                super().finish()
        finally:
            self.server.untrack(self.connection)
            with suppress(OSError):
                self.connection.close()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    # Connection interface for the target -------------------------------------------------

    def pause(self, seconds: float) -> None:
        self.server.stopping.wait(seconds)

    def drop(self) -> None:
        self.close_connection = True
        shut_down(self.connection)

    # ----------------------------------------------------------------------------------------

    def _serve(self) -> None:
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(self.headers.items())
        try:
            body = self._read_body(headers)
        except _BodyTooLarge:
            self._send(Response.json(413, {"error": "request body too large"}))
            self.close_connection = True
            return
        request = Request.from_target(self.command, self.path, headers, body)
        try:
            response = self.server.target.serve(request, self)
        except Exception:
            log.exception("stand-in failed handling %s %s", self.command, request.path)
            response = Response.json(500, {"error": "stand-in internal error"})
        if response is None:
            return
        self._send(response)

    def _read_body(self, headers: CaseInsensitiveDict[str]) -> bytes:
        if headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked_body()
        length = int(headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise _BodyTooLarge
        return self.rfile.read(length) if length else b""

    def _read_chunked_body(self) -> bytes:
        chunks: list[bytes] = []
        received = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # Trailer section: read until the blank line that ends the message.
                while self.rfile.readline().strip():
                    pass
                return b"".join(chunks)
            received += size
            if received > MAX_BODY_BYTES:
                raise _BodyTooLarge
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class StandInServer:
    """One stand-in listening on 127.0.0.1 over HTTPS, served from a background thread."""

    def __init__(
        self,
        target: RequestTarget,
        tls_context: ssl.SSLContext,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._httpd = _HttpsServer((host, port), target, tls_context)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"standin-{type(target).__name__}",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._httpd.server_port

    @property
    def base_url(self) -> str:
        return f"https://{self._httpd.server_name}:{self.port}"

    def stop(self) -> None:
        """Stop accepting, end stalled (hanging) handlers and idle keep-alive connections."""
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.close_all_connections()
        self._httpd.server_close()
        self._thread.join(timeout=5)
