"""Sessions that read the environment once: proxies (NO_PROXY included) and the CA bundle."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline import Pipeline
from azure.core.rest import HttpRequest

from shared.adapters.httpenv import EnvironmentOnceSession, azure_transport

PROXY_VARIABLES = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
)  # fmt: skip


class _Server(ThreadingHTTPServer):
    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.name = name
        self.seen: list[str] = []


class _Recorder(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _server(name: str) -> _Server:
    server = _Server(name)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    target, proxy = _server("target"), _server("proxy")
    yield target, proxy
    for server in (target, proxy):
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_a_proxy_from_the_environment_is_used(
    servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, proxy = servers
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_port}")
    session = EnvironmentOnceSession()
    url = f"http://127.0.0.1:{target.server_port}/users"
    assert session.get(url, timeout=5).text == "proxy"
    assert proxy.seen == [url]  # the absolute form a proxy receives
    assert target.seen == []


def test_no_proxy_sends_that_host_direct(
    servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, proxy = servers
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_port}")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    session = EnvironmentOnceSession()
    assert session.get(f"http://127.0.0.1:{target.server_port}/users", timeout=5).text == "target"
    assert proxy.seen == []
    assert session.proxies_for("http://partner.example/v1/customers") == {
        "http": f"http://127.0.0.1:{proxy.server_port}"
    }


def test_the_environment_is_read_once(
    servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, proxy = servers
    session = EnvironmentOnceSession()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_port}")
    assert session.get(f"http://127.0.0.1:{target.server_port}/", timeout=5).text == "target"


def test_the_ca_bundle_replaces_a_bare_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/custom-ca.pem")
    assert EnvironmentOnceSession().verify == "/etc/custom-ca.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/curl-ca.pem")
    assert EnvironmentOnceSession().verify == "/etc/curl-ca.pem"
    monkeypatch.delenv("CURL_CA_BUNDLE")
    assert EnvironmentOnceSession().verify is True


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_is_requests_own_error() -> None:
    # The Partner Center client classifies requests' exceptions; urllib3's must not leak.
    with pytest.raises(requests.ConnectionError):
        EnvironmentOnceSession().get(f"http://127.0.0.1:{_closed_port()}/", timeout=5)


def test_a_refused_connection_through_azure_core_is_a_service_request_error() -> None:
    transport = azure_transport(connection_timeout=5, read_timeout=5)
    pipeline = Pipeline(transport=transport, policies=[])
    with pytest.raises(ServiceRequestError):
        pipeline.run(HttpRequest("GET", f"http://127.0.0.1:{_closed_port()}/"))
