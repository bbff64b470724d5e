"""HTTP triggers on loopback: the host's routes, methods and key checks over a real server.

What the Functions host does for an HTTP-triggered function, as far as an app can tell:
routes under ``extensions.http.routePrefix`` (default ``api``), matched case-insensitively,
``{name}``, ``{name?}`` and ``{*name}`` parameters (route constraints are refused at load
time); the methods the binding lists; auth levels checked before the function runs, with the
key in the ``x-functions-key`` header or the ``code`` query parameter (401 without a valid
one); a function that raises answers 500 with no body. ``func start`` itself does not check
keys; this host does, so tests see what Azure answers.

Keys come from app settings (``local.settings.json`` or the environment), never from code:

- ``FUNCHOST_FUNCTION_KEY__<function name>``: that function's key (``function`` level);
- ``FUNCHOST_HOST_KEY``: a host key, valid for every ``function`` level function;
- ``FUNCHOST_MASTER_KEY``: the master key, valid everywhere (the only key for ``admin``).

A ``function`` level route with no key configured refuses every call.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

from devtools.funchost.app_loader import HttpFunction
from devtools.funchost.errors import FunctionHostError
from devtools.funchost.settings import lookup_setting
from devtools.funchost.worker import InvocationContext, InvocationScope, WorkerRuntime

logger = logging.getLogger("devtools.funchost")

KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"
FUNCTION_KEY_SETTING = "FUNCHOST_FUNCTION_KEY__"
HOST_KEY_SETTING = "FUNCHOST_HOST_KEY"
MASTER_KEY_SETTING = "FUNCHOST_MASTER_KEY"
DEFAULT_ROUTE_PREFIX = "api"
# The Functions host refuses request bodies over 100 MB (HTTP 413) before the function runs.
MAX_REQUEST_BODY_BYTES = 100 * 1024 * 1024
_PARAMETER = re.compile(r"^\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(\??)\}$")


@dataclass(frozen=True)
class HttpRoute:
    function: HttpFunction
    segments: tuple[str, ...]  # literal segments, or "{name}", "{name?}", "{*name}"
    keys: tuple[str, ...]  # every key that opens this route (empty: anonymous or none set)

    def match(self, path_segments: list[str]) -> dict[str, str] | None:
        values: dict[str, str] = {}
        for position, segment in enumerate(self.segments):
            parameter = _PARAMETER.match(segment)
            if parameter is None:
                if position >= len(path_segments):
                    return None
                if unquote(path_segments[position]).lower() != segment.lower():
                    return None
                continue
            catch_all, name, optional = parameter.groups()
            if catch_all:
                values[name] = unquote("/".join(path_segments[position:]))
                return values
            if position >= len(path_segments) or not path_segments[position]:
                if optional and position >= len(path_segments) - 1:
                    return values
                return None
            values[name] = unquote(path_segments[position])
        return values if len(path_segments) == len(self.segments) else None


def build_routes(
    functions: tuple[HttpFunction, ...], settings: Mapping[str, str], route_prefix: str
) -> tuple[HttpRoute, ...]:
    routes: list[HttpRoute] = []
    master = lookup_setting(settings, MASTER_KEY_SETTING)
    host_keys = [key for key in (lookup_setting(settings, HOST_KEY_SETTING), master) if key]
    for function in functions:
        parts = (route_prefix.strip("/"), function.route.strip("/"))
        template = "/".join(part for part in parts if part)
        segments = tuple(template.split("/")) if template else ()
        for segment in segments:
            if "{" in segment and not _PARAMETER.match(segment):
                raise FunctionHostError(
                    f"function {function.name!r}: route segment {segment!r} is not emulated "
                    "(only {name}, {name?} and {*name}, without constraints)"
                )
        if function.auth_level == "anonymous":
            keys: tuple[str, ...] = ()
        elif function.auth_level == "admin":
            keys = (master,) if master else ()
        else:
            own = lookup_setting(settings, f"{FUNCTION_KEY_SETTING}{function.name}")
            keys = tuple(key for key in (own, *host_keys) if key)
        if function.auth_level != "anonymous" and not keys:
            logger.warning(
                "Function %s (authLevel %s) has no key: set %s%s or %s; every call gets 401",
                function.name,
                function.auth_level,
                FUNCTION_KEY_SETTING,
                function.name,
                HOST_KEY_SETTING,
            )
        routes.append(HttpRoute(function, segments, keys))
    return tuple(routes)


class HttpTriggerServer:
    """A threading HTTP server on 127.0.0.1 that runs the app's HTTP functions."""

    def __init__(
        self,
        routes: tuple[HttpRoute, ...],
        runtime: WorkerRuntime,
        *,
        port: int,
        app_dir: str,
    ) -> None:
        self._routes = routes
        self._runtime = runtime
        self._app_dir = app_dir
        handler = _handler_class(self._serve)
        try:
            self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError as error:
            raise FunctionHostError(f"cannot listen on 127.0.0.1:{port}: {error}") from error
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="funchost-http", daemon=True
        )
        self._thread.start()
        for route in self._routes:
            methods = ",".join(route.function.methods or ("any",))
            logger.info(
                "Function %s: httpTrigger [%s] %s/%s (authLevel %s)",
                route.function.name,
                methods,
                self.base_url,
                "/".join(route.segments),
                route.function.auth_level,
            )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- one request

    def _serve(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        address = urlsplit(target)
        path_segments = address.path.strip("/").split("/") if address.path.strip("/") else []
        found = [(route, route.match(path_segments)) for route in self._routes]
        matching = [(route, values) for route, values in found if values is not None]
        allowed = [
            (route, values)
            for route, values in matching
            if route.function.methods is None or method in route.function.methods
        ]
        if not allowed:
            return (405 if matching else 404), {}, b""
        route, values = allowed[0]
        params = dict(parse_qsl(address.query, keep_blank_values=True))
        if route.function.auth_level != "anonymous":
            given = _header(headers, KEY_HEADER) or params.get(KEY_QUERY)
            if not given or not any(
                hmac.compare_digest(given.encode(), key.encode()) for key in route.keys
            ):
                return 401, {}, b""
        return self._invoke(route.function, method, target, headers, params, values, body)

    def _invoke(
        self,
        function: HttpFunction,
        method: str,
        target: str,
        headers: Mapping[str, str],
        params: dict[str, str],
        route_params: dict[str, str],
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        invocation_id = str(uuid.uuid4())
        logger.info(
            "Executing 'Functions.%s' (Reason='This function was programmatically called via "
            "the host APIs.', Id=%s)",
            function.name,
            invocation_id,
        )
        request = func.HttpRequest(
            method=method,
            url=f"{self.base_url}{target}",
            headers=dict(headers),
            params=params,
            route_params=route_params,
            body=body,
        )
        arguments: dict[str, object] = {function.trigger_arg: request}
        if function.context_arg:
            arguments[function.context_arg] = InvocationContext(
                function.name, invocation_id, self._app_dir
            )
        started = time.monotonic()
        try:
            result = self._runtime.call(
                function, arguments, InvocationScope(function.name, invocation_id)
            )
            answer = _response(result)
        except Exception as error:
            logger.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms): %s",
                function.name,
                invocation_id,
                (time.monotonic() - started) * 1000,
                type(error).__name__,
            )
            return 500, {}, b""
        logger.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
            function.name,
            invocation_id,
            (time.monotonic() - started) * 1000,
        )
        return answer


def _response(result: object) -> tuple[int, dict[str, str], bytes]:
    if isinstance(result, func.HttpResponse):
        headers = dict(result.headers.items())
        if result.mimetype and not any(k.lower() == "content-type" for k in headers):
            charset = f"; charset={result.charset}" if result.charset else ""
            headers["Content-Type"] = f"{result.mimetype}{charset}"
        return result.status_code, headers, result.get_body() or b""
    if isinstance(result, str | bytes):
        body = result.encode("utf-8") if isinstance(result, str) else result
        return 200, {"Content-Type": "text/plain; charset=utf-8"}, body
    if result is None:
        return 204, {}, b""
    raise TypeError(f"an HTTP function returned {type(result).__name__}")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


Serve = Callable[[str, str, Mapping[str, str], bytes], tuple[int, dict[str, str], bytes]]


def _handler_class(serve: Serve) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "funchost"

        def _handle(self) -> None:
            body = self._read_body()
            if body is None:
                return
            headers = {key: value for key, value in self.headers.items()}
            status, answer_headers, answer = serve(self.command, self.path, headers, body)
            self._answer(status, answer_headers, answer)

        def _read_body(self) -> bytes | None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                return self._read_chunked()
            text = self.headers.get("Content-Length")
            if text is None:
                return b""
            if not text.isdigit():
                self._answer(400, {}, b"")
                return None
            length = int(text)
            if length > MAX_REQUEST_BODY_BYTES:
                self._answer(413, {}, b"", close=True)
                return None
            return self.rfile.read(length)

        def _read_chunked(self) -> bytes | None:
            parts: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024).split(b";")[0].strip()
                try:
                    size = int(line, 16)
                except ValueError:
                    self._answer(400, {}, b"", close=True)
                    return None
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass  # trailers
                    return b"".join(parts)
                total += size
                if total > MAX_REQUEST_BODY_BYTES:
                    self._answer(413, {}, b"", close=True)
                    return None
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)

        def _answer(
            self, status: int, headers: Mapping[str, str], body: bytes, *, close: bool = False
        ) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in {"content-length", "transfer-encoding", "connection"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("HTTP %s", format % args)

    return Handler
