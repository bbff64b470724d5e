"""A loopback HTTP proxy that counts the requests it passes on (for Azurite's table endpoint).

The function's table client is built inside the app, out of a benchmark's reach; pointing the
connection string's ``TableEndpoint`` at this proxy counts every table call it makes, by
method, over the real wire, without touching the SDK. Plain HTTP only (Azurite speaks HTTP).
"""

from __future__ import annotations

import http.client
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.counts: Counter[str] = Counter()
        self.counts_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A host killed mid-request (the soak's SIGKILL) breaks its connection: expected.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with self.server.counts_lock:
            self.server.counts[self.command] += 1
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        for attempt in range(2):
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(*self.server.upstream, timeout=60)
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                answer = self._upstream.getresponse()
                payload = answer.read()
                break
            except (http.client.HTTPException, OSError):
                # A kept-alive upstream connection may have been closed: one fresh try.
                self._upstream.close()
                self._upstream = None
                if attempt:
                    raise
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_MERGE = do_HEAD = _forward

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def log_message(self, format: str, *args: object) -> None:
        pass


class CountingProxy:
    """``with CountingProxy(host, port) as proxy:`` then use ``proxy.port``; ``counts`` by
    HTTP method, ``total`` in all."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._server = _Server(upstream_host, upstream_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="counting-proxy", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def counts(self) -> Counter[str]:
        with self._server.counts_lock:
            return Counter(self._server.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
