"""HTTP triggers on the local host: routes, methods, auth levels and keys, over real HTTP."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools.funchost import FunctionHostError, LocalFunctionsHost

APP = """
import json

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="items/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"name": req.route_params["name"], "params": dict(req.params)}),
        mimetype="application/json",
    )


@app.route(route="files/{*path}", auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(f"{req.method} {req.route_params['path']} {context.function_name}")


@app.route(route="echo", methods=["POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.get_body(), status_code=201, headers={"X-Seen": "1"})


@app.route(route="admin/thing", auth_level=func.AuthLevel.ADMIN)
def admin_thing(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin")


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret detail")
"""
KEYS = {
    "FUNCHOST_FUNCTION_KEY__echo": "echo-key",
    "FUNCHOST_HOST_KEY": "host-key",
    "FUNCHOST_MASTER_KEY": "master-key",
}


@pytest.fixture
def host(tmp_path: Path) -> Iterator[LocalFunctionsHost]:
    (tmp_path / "function_app.py").write_text(APP, encoding="utf-8")
    running = LocalFunctionsHost(tmp_path, settings=KEYS, http_port=0)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_routes_parameters_and_methods(host: LocalFunctionsHost) -> None:
    base = host.http_base_url
    answer = requests.get(f"{base}/api/items/a%2Fb%20c?x=1", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json() == {"name": "a/b c", "params": {"x": "1"}}
    assert requests.get(f"{base}/API/Items/z", timeout=10).json()["name"] == "z"
    assert requests.post(f"{base}/api/items/z", timeout=10).status_code == 405
    assert requests.get(f"{base}/api/items", timeout=10).status_code == 404
    assert requests.get(f"{base}/api/nothing", timeout=10).status_code == 404
    deep = requests.delete(f"{base}/api/files/x/y/z.txt", timeout=10)
    assert deep.text == "DELETE x/y/z.txt files"


def test_function_keys_host_keys_and_the_master_key(host: LocalFunctionsHost) -> None:
    url = f"{host.http_base_url}/api/echo"
    assert requests.post(url, data=b"x", timeout=10).status_code == 401
    assert (
        requests.post(url, data=b"x", headers={"x-functions-key": "nope"}, timeout=10).status_code
        == 401
    )
    for key in ("echo-key", "host-key", "master-key"):
        answer = requests.post(url, data=b"hi", headers={"x-functions-key": key}, timeout=10)
        assert (answer.status_code, answer.content, answer.headers["X-Seen"]) == (201, b"hi", "1")
    assert requests.post(url, params={"code": "echo-key"}, data=b"q", timeout=10).status_code == 201
    admin = f"{host.http_base_url}/api/admin/thing"
    assert (
        requests.get(admin, headers={"x-functions-key": "host-key"}, timeout=10).status_code == 401
    )
    assert (
        requests.get(admin, headers={"x-functions-key": "master-key"}, timeout=10).text == "admin"
    )


def test_a_chunked_body_reaches_the_function(host: LocalFunctionsHost) -> None:
    chunks = iter([b"chunk-one,", b"chunk-two"])
    answer = requests.post(
        f"{host.http_base_url}/api/echo",
        data=chunks,
        headers={"x-functions-key": "echo-key"},
        timeout=10,
    )
    assert answer.content == b"chunk-one,chunk-two"


def test_a_function_that_raises_answers_500_without_its_error(host: LocalFunctionsHost) -> None:
    answer = requests.get(f"{host.http_base_url}/api/boom", timeout=10)
    assert answer.status_code == 500
    assert b"secret" not in answer.content


def test_a_malformed_content_length_is_a_400(host: LocalFunctionsHost) -> None:
    connection = http.client.HTTPConnection(host.http_base_url.removeprefix("http://"), timeout=10)
    connection.putrequest("POST", "/api/echo")
    connection.putheader("Content-Length", "ten")
    connection.endheaders()
    assert connection.getresponse().status == 400
    connection.close()


def test_without_a_port_http_functions_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(APP, encoding="utf-8")
    host = LocalFunctionsHost(tmp_path, settings=KEYS)
    host.start()
    try:
        with pytest.raises(FunctionHostError):
            host.http_base_url  # noqa: B018
    finally:
        host.stop()


def test_route_constraints_are_refused(tmp_path: Path) -> None:
    app = APP.replace('route="items/{name}"', 'route="items/{name:int}"')
    (tmp_path / "function_app.py").write_text(app, encoding="utf-8")
    host = LocalFunctionsHost(tmp_path, settings=KEYS, http_port=0)
    with pytest.raises(FunctionHostError, match="not emulated"):
        host.start()
