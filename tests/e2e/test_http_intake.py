"""HR's HTTP front door (docs/contract.md 6) over real HTTP: client → local host on loopback →
function_app.py → Azurite queue and ledger → the queue function → stand-ins."""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from azure.storage.queue import QueueClient

from devtools.funchost import LocalFunctionsHost
from shared.adapters.ledger import open_table_ledger
from shared.domain.events import InvalidEvent, decode_body, parse_event
from shared.domain.model import HireRecord, HireState
from tests.e2e.test_pipeline import (
    CUSTOMER,
    FAST_HOST,
    PROJECT_ROOT,
    Pipeline,
    hire_event,
    pipeline,
)
from tests.hostile.corpus import HR_PASSWORD, build

__all__ = ["pipeline"]
SUBMIT_KEY = "submit-key-for-tests"
STATUS_KEY = "status-key-for-tests"
KEYS = {
    "FUNCHOST_FUNCTION_KEY__submit_hires": SUBMIT_KEY,
    "FUNCHOST_FUNCTION_KEY__hire_status": STATUS_KEY,
}
QUEUE_BODY_LIMIT = 48 * 1024
TIMEOUT = 30


@contextmanager
def http_host(
    pipeline: Pipeline, *, provision: bool = False, **extra: str
) -> Iterator[LocalFunctionsHost]:
    """A host serving the HTTP routes; the queue function runs only with ``provision`` (else
    the test reads what the intake queued)."""
    from shared import composition

    extra["AzureWebJobs.provision_user.Disabled"] = "false" if provision else "true"
    saved = dict(os.environ)  # the host writes its settings into the environment
    composition.install(None)  # the intake reads its settings again
    host = LocalFunctionsHost(
        PROJECT_ROOT,
        settings={**pipeline.settings, **KEYS, **extra},
        host_options=FAST_HOST,
        http_port=0,
    )
    host.start()
    try:
        yield host
    finally:
        host.stop()
        composition.install(None)
        os.environ.clear()
        os.environ.update(saved)


def post(host: LocalFunctionsHost, body: Any, *, key: str | None = SUBMIT_KEY, **kw: Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    if key is not None:
        headers["x-functions-key"] = key
    return requests.post(
        f"{host.http_base_url}/api/hires", data=data, headers=headers, timeout=TIMEOUT, **kw
    )


def status(host: LocalFunctionsHost, event_id: str, *, key: str | None = STATUS_KEY) -> Any:
    headers = {"x-functions-key": key} if key else {}
    return requests.get(
        f"{host.http_base_url}/api/hires/{event_id}", headers=headers, timeout=TIMEOUT
    )


def queued(pipeline: Pipeline) -> list[bytes]:
    """The request queue's bodies (base64-decoded), removed from the queue."""
    client = QueueClient.from_connection_string(
        pipeline.azurite.connection_string, pipeline.request_queue
    )
    bodies = []
    while batch := list(client.receive_messages(max_messages=32)):
        for message in batch:
            bodies.append(base64.b64decode(message.content, validate=True))
            client.delete_message(message)
    return bodies


def test_keys_are_per_route_in_header_or_query(pipeline: Pipeline) -> None:
    with http_host(pipeline) as host:
        event = hire_event(1)
        assert post(host, event, key=None).status_code == 401
        assert post(host, event, key="wrong").status_code == 401
        assert post(host, event, key=STATUS_KEY).status_code == 401  # the other route's key
        assert status(host, "e2e-00001", key=None).status_code == 401
        assert status(host, "e2e-00001", key=SUBMIT_KEY).status_code == 401
        assert queued(pipeline) == []
        by_query = requests.post(
            f"{host.http_base_url}/api/hires",
            params={"code": SUBMIT_KEY},
            data=json.dumps(event).encode(),
            timeout=TIMEOUT,
        )
        assert by_query.status_code == 202
        assert status(host, "nobody-knows-this", key=STATUS_KEY).status_code == 404
        answer = requests.get(
            f"{host.http_base_url}/api/hires/nobody", params={"code": STATUS_KEY}, timeout=TIMEOUT
        )
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"


def test_a_batch_mixing_valid_and_invalid_events_queues_only_the_valid(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    good = [hire_event(n) for n in (1, 2, 3)]
    no_customer = {**hire_event(4), "customerTenantId": "not-a-guid"}
    with_password = hire_event(5)
    with_password["user"]["passWord"] = HR_PASSWORD
    hidden_password = {**hire_event(6), "extra": {"nested": [{"pwd": HR_PASSWORD}]}}
    events = [good[0], no_customer, good[1], with_password, hidden_password, "text", good[2]]
    caplog.set_level(logging.DEBUG)
    with http_host(pipeline) as host:
        answer = post(host, {"events": events})
        assert answer.status_code == 202, answer.text
        assert HR_PASSWORD not in answer.text
        results = answer.json()["results"]
        assert [r["accepted"] for r in results] == [True, False, True, False, False, False, True]
        assert [r["index"] for r in results] == list(range(7))
        assert results[1]["eventId"] == "e2e-00004"
        assert results[1]["error"]["field"] == "customerTenantId"
        assert results[1]["error"]["category"] == "invalid_event"
        assert "must be a GUID" in results[1]["error"]["rule"]
        assert results[1]["error"]["message"].startswith("the hire event is invalid")
        assert results[3]["error"]["field"] == "user.passWord"
        assert results[4]["error"]["field"] == "extra.nested[0].pwd"
        assert results[5]["eventId"] is None
        for result in results:
            if result["accepted"]:
                assert result["statusUrl"] == (
                    f"{host.http_base_url}/api/hires/{result['eventId']}"
                )
                assert result["alreadyKnown"] is False
        bodies = queued(pipeline)
    assert sorted(json.loads(body)["eventId"] for body in bodies) == [
        "e2e-00001",
        "e2e-00002",
        "e2e-00003",
    ]
    assert all(HR_PASSWORD.encode() not in body for body in bodies)
    assert HR_PASSWORD not in caplog.text


def test_accepted_events_are_provisioned_and_their_status_answers(pipeline: Pipeline) -> None:
    events = [hire_event(n) for n in (1, 2)]
    with http_host(pipeline, provision=True) as host:
        answer = post(host, {"events": events})
        assert [r["accepted"] for r in answer.json()["results"]] == [True, True]
        assert host.wait_until_drained(timeout=60)
        got = requests.get(
            answer.json()["results"][0]["statusUrl"],
            headers={"x-functions-key": STATUS_KEY},
            timeout=TIMEOUT,
        )
        assert got.status_code == 200
        hire = got.json()
        assert hire["eventId"] == "e2e-00001"
        assert hire["state"] == "created"
        assert hire["status"] == "created"
        assert hire["userPrincipalName"] == "hire1@contoso.onmicrosoft.com"
        assert hire["userId"]
        assert hire["initialPasswordSecretId"].startswith("https://")
        assert hire["lastFailure"] is None
        assert hire["updatedAt"] and hire["completedAt"]
    outcomes = pipeline.outcomes()
    assert {outcomes[e["eventId"]]["status"] for e in events} == {"created"}
    assert outcomes["e2e-00001"]["userId"] == hire["userId"]


def test_posting_an_event_again_is_harmless_and_says_so(pipeline: Pipeline) -> None:
    event = hire_event(7)
    with http_host(pipeline, provision=True) as host:
        first = post(host, event).json()["results"][0]
        assert first["accepted"] and first["alreadyKnown"] is False
        assert host.wait_until_drained(timeout=60)
        again = post(host, event).json()["results"][0]
        assert again["accepted"] is True
        assert again["alreadyKnown"] is True
        assert again["knownState"] == "created"
        assert "already knows" in again["note"]
        assert host.wait_until_drained(timeout=60)
        # The hire stays what the first post made it.
        assert status(host, "e2e-00007").json()["status"] == "created"
    assert pipeline.outcomes()["e2e-00007"]["status"] == "already_exists"
    assert len(pipeline.stack.partner_center.users(CUSTOMER)) == 1


def test_bodies_that_are_not_events_or_too_large(pipeline: Pipeline) -> None:
    with http_host(pipeline) as host:
        for body in (b"", b"{", b"\xff\xfe", b"[1, 2]", b'"text"', b"NaN"):
            answer = post(host, body)
            assert answer.status_code == 400, body
            assert answer.json()["error"]["code"] in {"not_json", "bad_request"}
        assert post(host, {"events": []}).status_code == 400
        assert post(host, {"events": {"a": 1}}).status_code == 400
        # A repeated member name in a batch: it has no single meaning, nothing is queued.
        twice = b'{"events": [{"eventId": "a", "eventId": "b"}]}'
        assert post(host, twice).status_code == 400
        envelope_password = {"events": [hire_event(1)], "password": HR_PASSWORD}
        refused = post(host, envelope_password)
        assert refused.status_code == 400 and HR_PASSWORD not in refused.text
        assert post(host, {"events": [hire_event(n) for n in range(101)]}).status_code == 413
        huge = b'{"events": [' + b" " * (1024 * 1024) + b"]}"
        assert post(host, huge).status_code == 413
        big = hire_event(8)
        big["padding"] = "x" * (QUEUE_BODY_LIMIT + 10)
        results = post(host, {"events": [big, hire_event(9)]}).json()["results"]
        assert results[0]["accepted"] is False
        assert "a queue message carries at most 49152 bytes" in results[0]["error"]["rule"]
        assert results[0]["eventId"] == "e2e-00008"
        assert results[1]["accepted"] is True
        assert [json.loads(b)["eventId"] for b in queued(pipeline)] == ["e2e-00009"]


def test_every_hostile_body_is_answered_as_the_queue_function_reads_it(
    pipeline: Pipeline,
) -> None:
    """Each corpus body posted alone: never a 5xx, never the HR password echoed; refused with
    the eventId the queue's outcome names, or accepted (and queued byte for byte) exactly when
    the queue function's own reading accepts it."""
    cases = build()
    assert len(cases) >= 100
    accepted_bodies = []
    with http_host(pipeline) as host:
        for case in cases:
            answer = post(host, case.body)
            assert answer.status_code in {202, 400, 413}, (case.name, answer.status_code)
            assert HR_PASSWORD not in answer.text, case.name
            if answer.status_code != 202:
                assert case.status == "rejected", case.name
                continue
            (result,) = answer.json()["results"]
            try:
                parse_event(decode_body(case.body))
                valid = len(case.body) <= QUEUE_BODY_LIMIT
            except InvalidEvent:
                valid = False
            assert result["accepted"] is valid, case.name
            if valid:
                accepted_bodies.append(case.body)
            else:
                assert result["eventId"] == case.event_id, case.name
                assert result["error"]["category"] == "invalid_event"
            if case.status == "created":
                assert result["accepted"], case.name
        assert sorted(queued(pipeline)) == sorted(accepted_bodies)


def _record(event_id: str, state: HireState, **fields: Any) -> HireRecord:
    now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    return HireRecord(
        event_id=event_id,
        customer_tenant_id=CUSTOMER,
        state=state,
        user_principal_name=f"{event_id}@contoso.onmicrosoft.com",
        password_secret_id="https://vault.example/secrets/pw/1",
        attempts=1,
        created_at=now,
        updated_at=now,
        **fields,
    )


def test_a_status_for_every_ledger_state(pipeline: Pipeline) -> None:
    ledger = open_table_ledger(
        pipeline.settings["HIRE_LEDGER_TABLE"],
        connection_string=pipeline.azurite.connection_string,
    )
    failure = {
        "category": "conflict",
        "message": "the UPN is held by someone else",
        "httpStatus": 409,
        "code": 1000,
    }
    for state in HireState:
        extra: dict[str, Any] = {}
        if state is HireState.REJECTED:
            extra = {
                "last_failure": failure,
                "last_outcome": {
                    "status": "rejected",
                    "error": failure,
                    "completedAt": "2026-12-06T03:00:00Z",
                },
            }
        if state in {HireState.CREATED, HireState.RESTORED, HireState.EXISTING}:
            extra = {
                "user_id": "u-1",
                "licenses_assigned": ("sku-1",),
                "last_outcome": {"status": "created", "completedAt": "2026-12-06T03:00:00Z"},
            }
        ledger.add(_record(f"state-{state.value}", state, **extra))
    with http_host(pipeline) as host:
        for state in HireState:
            answer = status(host, f"state-{state.value}")
            assert answer.status_code == 200, state
            hire = answer.json()
            assert hire["state"] == state.value
            # The recorded secret is the user's password only where the user got it.
            expect_secret = state in {HireState.CREATED, HireState.RESTORED}
            assert (hire["initialPasswordSecretId"] is not None) is expect_secret, state
        rejected = status(host, "state-rejected").json()
        assert rejected["status"] == "rejected"
        assert rejected["lastFailure"] == {
            "category": "conflict",
            "message": "the UPN is held by someone else",
        }
        created = status(host, "state-created").json()
        assert created["licenses"] == {"assigned": ["sku-1"], "failed": []}
        assert created["userId"] == "u-1"
        assert status(host, "state-new").json()["status"] is None
        # An eventId with characters a URL path must escape.
        ledger.add(_record("hr/2026 #1?", HireState.CREATED))
        escaped = requests.get(
            f"{host.http_base_url}/api/hires/hr%2F2026%20%231%3F",
            headers={"x-functions-key": STATUS_KEY},
            timeout=TIMEOUT,
        )
        assert escaped.status_code == 200 and escaped.json()["eventId"] == "hr/2026 #1?"


def _principal(*roles: str, app_id: str = "11111111-2222-3333-4444-555555555555") -> str:
    claims = [{"typ": "roles", "val": role} for role in roles]
    claims.append({"typ": "appid", "val": app_id})
    document = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return base64.b64encode(json.dumps(document).encode()).decode()


def test_entra_access_checks_the_app_role_per_route(pipeline: Pipeline) -> None:
    """App Service authentication is simulated by sending the principal header it would add
    (it strips any a client sends); the route needs no key, the code checks the role."""
    allowed = "11111111-2222-3333-4444-555555555555"
    with http_host(
        pipeline,
        HIRES_HTTP_AUTH="entra",
        WEBSITE_AUTH_ENABLED="true",
        HIRES_HTTP_ALLOWED_CLIENT_IDS=allowed,
    ) as host:
        event = hire_event(11)
        assert post(host, event, key=None).status_code == 401
        submit = {"X-MS-CLIENT-PRINCIPAL": _principal("Hires.Submit")}
        read = {"X-MS-CLIENT-PRINCIPAL": _principal("Hires.Read")}
        other_app = {"X-MS-CLIENT-PRINCIPAL": _principal("Hires.Submit", app_id="other")}
        assert post(host, event, key=None, headers=read).status_code == 403
        assert post(host, event, key=None, headers=other_app).status_code == 403
        assert (
            post(
                host, event, key=None, headers={"X-MS-CLIENT-PRINCIPAL": "not base64!"}
            ).status_code
            == 401
        )
        assert post(host, event, key=None, headers=submit).status_code == 202
        url = f"{host.http_base_url}/api/hires/e2e-00011"
        assert requests.get(url, headers=submit, timeout=TIMEOUT).status_code == 403
        assert requests.get(url, headers=read, timeout=TIMEOUT).status_code in {200, 404}


def test_entra_access_without_app_service_authentication_refuses_everything(
    pipeline: Pipeline,
) -> None:
    with http_host(pipeline, HIRES_HTTP_AUTH="entra") as host:
        submit = {"X-MS-CLIENT-PRINCIPAL": _principal("Hires.Submit")}
        assert post(host, hire_event(12), key=None, headers=submit).status_code == 401
        assert post(host, hire_event(12), key=SUBMIT_KEY, headers=submit).status_code == 401
    assert queued(pipeline) == []
