import http.client
import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import certifi
import pytest
import requests

from .helpers import create_user, user_body


def test_certificate_is_valid_for_127_0_0_1_and_localhost(standins):
    port = standins.partner_center.base_url.rsplit(":", 1)[1]
    for host in ("127.0.0.1", "localhost"):
        answer = requests.get(f"https://{host}:{port}/_standin/health", timeout=5)
        assert answer.json() == {"service": "partner_center", "ok": True}


def test_clients_without_the_ca_refuse_the_connection(standins):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{standins.key_vault.vault_url}/_standin/health", verify=certifi.where())


def test_the_bundle_file_trusts_the_stand_ins_and_holds_public_roots(standins):
    answer = requests.get(
        f"{standins.entra.authority_host}/_standin/health",
        verify=str(standins.ca_bundle_file),
        timeout=5,
    )
    assert answer.status_code == 200
    assert standins.ca_bundle_file.read_text().count("BEGIN CERTIFICATE") > 10


def test_connections_are_kept_alive(standins):
    context = ssl.create_default_context(cafile=str(standins.ca_file))
    port = int(standins.partner_center.base_url.rsplit(":", 1)[1])
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request("GET", "/_standin/health")
        first = connection.getresponse()
        first.read()
        socket_after_first = connection.sock
        connection.request("GET", "/_standin/counters")
        second = connection.getresponse()
        second.read()
        assert first.version == 11
        assert socket_after_first is not None
        assert connection.sock is socket_after_first
        assert second.status == 200
    finally:
        connection.close()


def test_chunked_request_body(standins, customer, token):
    body = json.dumps(user_body()).encode()

    def chunks() -> Iterator[bytes]:
        yield body[:10]
        yield body[10:]

    answer = requests.post(
        f"{standins.partner_center.base_url}/v1/customers/{customer}/users",
        data=chunks(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 201


def test_concurrent_creates_are_all_counted(standins, customer, token):
    answers: list[int] = []
    lock = threading.Lock()

    def create(index: int) -> None:
        status = create_user(
            standins, customer, token, user_body(f"user{index}@contoso.onmicrosoft.com")
        ).status_code
        with lock:
            answers.append(status)

    workers = [threading.Thread(target=create, args=(index,)) for index in range(20)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert answers == [201] * 20
    assert standins.partner_center.counters["users_created"] == 20


def test_concurrent_replays_create_once(standins, customer, token):
    request_id = str(uuid.uuid4())
    answers: list[dict[str, Any]] = []

    def create() -> None:
        answers.append(create_user(standins, customer, token, request_id=request_id).json())

    workers = [threading.Thread(target=create) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len({answer["id"] for answer in answers}) == 1
    counters = standins.partner_center.counters
    assert (counters["users_created"], counters["replays_absorbed"]) == (1, 7)
