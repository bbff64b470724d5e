"""Sessions that read the environment once: proxies (NO_PROXY included) and the CA bundle."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline import Pipeline
from azure.core.rest import HttpRequest

from shared.adapters.httpenv import EnvironmentOnceSession, azure_transport

PROXY_VARIABLES = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
)  # fmt: skip


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.name = name
        self.seen: list[str] = []
        self.headers_seen: list[dict[str, str]] = []
        self.bodies: list[bytes] = []


class _Recorder(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        self.server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        length = int(self.headers.get("Content-Length") or 0)
        self.server.bodies.append(self.rfile.read(length) if length else b"")
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        if self.path.startswith("/drop"):
            # The request was read, then the connection goes: the answer is lost.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.path.startswith("/moved"):
            self.send_response(302)
            self.send_header("Location", "/users")
            self.send_header("Set-Cookie", "affinity=1; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Set-Cookie", "affinity=1; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_PATCH = do_GET

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


# The plain path (EnvironmentOnceSession._send_plain): what requests' full path would send, and
# requests' own exceptions, which the adapters read as "not sent" or "maybe applied".


@pytest.fixture
def users_endpoint(
    servers: tuple[_Server, _Server],
) -> tuple[_Server, EnvironmentOnceSession, str]:
    """The target server, a session with a user agent of its own, and a URL on the server."""
    target, _ = servers
    session = EnvironmentOnceSession(user_agent="hire-provisioning/test")
    return target, session, f"http://127.0.0.1:{target.server_port}/v1/users"


def test_a_plain_request_sends_the_session_headers_the_body_and_json(
    users_endpoint: tuple[_Server, EnvironmentOnceSession, str],
) -> None:
    target, session, url = users_endpoint
    answer = session.request(
        "post", url, json={"a": 1}, headers={"X-Call": "1", "Accept": None}, timeout=5
    )
    assert (answer.status_code, answer.text, answer.request.method) == (200, "target", "POST")
    sent = target.headers_seen[-1]
    assert sent["user-agent"] == "hire-provisioning/test"
    assert sent["x-call"] == "1"
    assert "accept" not in sent  # a header given as None removes the session's default
    assert sent["content-type"] == "application/json"
    assert target.bodies[-1] == b'{"a": 1}'

    session.request("PUT", url, data=b"raw", headers={"Content-Type": "text/plain"}, timeout=5)
    assert (target.bodies[-1], target.headers_seen[-1]["content-length"]) == (b"raw", "3")


def test_the_plain_path_and_requests_full_path_send_the_same(
    users_endpoint: tuple[_Server, EnvironmentOnceSession, str],
) -> None:
    target, session, url = users_endpoint
    session.request("POST", url, json={"b": [1, 2]}, headers={"X-Call": "1"}, timeout=5)
    # Query parameters leave the plain path: requests merges and encodes them.
    session.request(
        "POST", url, json={"b": [1, 2]}, headers={"X-Call": "1"}, params={"via": "full"}, timeout=5
    )
    assert target.seen[-2:] == ["/v1/users", "/v1/users?via=full"]
    plain, full = target.headers_seen[-2:]
    assert plain == full
    assert target.bodies[-2] == target.bodies[-1]


def test_answers_cookies_are_not_kept(servers: tuple[_Server, _Server]) -> None:
    # None of the services uses cookies; an affinity cookie must not ride on later calls.
    target, _ = servers
    session = EnvironmentOnceSession()
    url = f"http://127.0.0.1:{target.server_port}/users"
    session.get(url, timeout=5)
    session.get(url, timeout=5)
    assert "cookie" not in target.headers_seen[-1]


def test_a_redirect_is_followed_only_when_asked(servers: tuple[_Server, _Server]) -> None:
    target, _ = servers
    session = EnvironmentOnceSession()
    url = f"http://127.0.0.1:{target.server_port}/moved"
    followed = session.get(url, timeout=5)
    assert (followed.status_code, followed.text, [r.status_code for r in followed.history]) == (
        200,
        "target",
        [302],
    )
    assert session.get(url, timeout=5, allow_redirects=False).status_code == 302


def test_a_slow_answer_is_requests_read_timeout(servers: tuple[_Server, _Server]) -> None:
    # Partner Center's client reads a timeout on a create as "the answer was lost".
    target, _ = servers
    with pytest.raises(requests.ReadTimeout):
        EnvironmentOnceSession().post(
            f"http://127.0.0.1:{target.server_port}/slow", json={}, timeout=(5, 0.2)
        )


def test_a_dropped_answer_is_requests_connection_error(servers: tuple[_Server, _Server]) -> None:
    target, _ = servers
    with pytest.raises(requests.ConnectionError):
        EnvironmentOnceSession().post(
            f"http://127.0.0.1:{target.server_port}/drop", json={}, timeout=5
        )
    assert target.seen == ["/drop"]  # it was sent: "maybe applied", not "not sent"


def test_a_dropped_answer_through_azure_core_is_a_service_response_error(
    servers: tuple[_Server, _Server],
) -> None:
    target, _ = servers
    transport = azure_transport(connection_timeout=5, read_timeout=5)
    pipeline = Pipeline(transport=transport, policies=[])
    with pytest.raises(ServiceResponseError):
        pipeline.run(HttpRequest("POST", f"http://127.0.0.1:{target.server_port}/drop", json={}))
