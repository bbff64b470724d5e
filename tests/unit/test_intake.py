"""The HTTP intake's decisions against in-memory fakes, and docs/openapi.json against the code."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.openapi import DOCUMENT, build_document, main
from shared.domain.errors import ServiceUnavailableError
from shared.domain.events import InvalidEvent, decode_body, parse_event
from shared.domain.model import HireRecord, HireState
from shared.service.intake import READ_ROLE, SUBMIT_ROLE, HireIntake, HttpAnswer, hire_status
from shared.settings import HttpAccess, HttpAccessSettings, SettingsError
from tests.unit.fakes import InMemoryLedger

CUSTOMER = "4b10bf41-ab11-40e3-8c53-cd67849b50de"
KEYS = HttpAccessSettings(
    mode=HttpAccess.FUNCTION_KEY, easy_auth_enabled=False, allowed_client_ids=frozenset()
)


class ListQueue:
    max_body_bytes = 48 * 1024

    def __init__(self, fail_after: int | None = None) -> None:
        self.bodies: list[bytes] = []
        self.fail_after = fail_after

    def send(self, body: bytes) -> None:
        if self.fail_after is not None and len(self.bodies) >= self.fail_after:
            raise ServiceUnavailableError("the queue is down (ServiceRequestError)")
        self.bodies.append(body)


def event(number: int) -> dict[str, Any]:
    return {
        "schemaVersion": "1.0",
        "eventId": f"unit-{number}",
        "customerTenantId": CUSTOMER,
        "user": {
            "userPrincipalName": f"u{number}@contoso.onmicrosoft.com",
            "firstName": "U",
            "lastName": f"N{number}",
            "displayName": f"U N{number}",
            "usageLocation": "US",
        },
    }


def submit(intake: HireIntake, body: Any) -> tuple[HttpAnswer, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = intake.submit(raw, base_url="https://func.example", principal=None)
    return answer, json.loads(answer.body_bytes())


def test_the_openapi_document_is_the_one_the_code_generates() -> None:
    assert main(["--check"]) == 0, "run: python -m devtools.openapi"
    assert json.loads(DOCUMENT.read_text(encoding="utf-8")) == build_document()


def _properties(schema_name: str) -> tuple[set[str], set[str]]:
    schema = build_document()["components"]["schemas"][schema_name]
    return set(schema["properties"]), set(schema.get("required", []))


def _assert_fits(value: dict[str, Any], schema_name: str) -> None:
    names, required = _properties(schema_name)
    assert set(value) <= names, set(value) - names
    assert required <= set(value), required - set(value)


def test_answers_the_code_writes_have_the_documented_members() -> None:
    ledger = InMemoryLedger()
    intake = HireIntake(ListQueue(), ledger, KEYS)
    bad = {**event(2), "customerTenantId": "x"}
    _, body = submit(intake, {"events": [event(1), bad]})
    _assert_fits(body, "IntakeAnswer")
    _assert_fits(body["results"][0], "AcceptedResult")
    _assert_fits(body["results"][1], "RefusedResult")
    _assert_fits(body["results"][1]["error"], "Refusal")
    record = HireRecord(
        event_id="unit-1",
        customer_tenant_id=CUSTOMER,
        state=HireState.REJECTED,
        last_failure={"category": "validation", "message": "m", "httpStatus": 400, "code": 1},
        last_outcome={
            "status": "rejected",
            "licenses": {
                "assigned": [],
                "failed": [{"skuId": "s", "category": "permission", "message": "no", "code": 3}],
            },
        },
    )
    status = json.loads(HttpAnswer(200, hire_status(record)).body_bytes())
    _assert_fits(status, "HireStatus")
    _assert_fits(status["lastFailure"], "LastFailure")
    _assert_fits(status["licenses"], "LicensesView")
    _assert_fits(status["licenses"]["failed"][0], "LicenseFailureView")
    _, problem = submit(intake, b"not json")
    _assert_fits(problem, "ErrorAnswer")
    _assert_fits(problem["error"], "Problem")


def test_a_queue_failure_part_way_answers_503_and_says_which_were_queued() -> None:
    queue = ListQueue(fail_after=1)
    answer, body = submit(
        HireIntake(queue, InMemoryLedger(), KEYS), {"events": [event(1), event(2), event(3)]}
    )
    assert answer.status == 503
    assert answer.headers["Retry-After"]
    assert [r["accepted"] for r in body["results"]] == [True, False, False]
    assert {r["error"]["category"] for r in body["results"][1:]} == {"unavailable"}
    assert len(queue.bodies) == 1


def test_an_unreadable_ledger_does_not_stop_the_intake() -> None:
    ledger = InMemoryLedger()
    ledger.fail_next["get"].append(ServiceUnavailableError("table down"))
    queue = ListQueue()
    answer, body = submit(HireIntake(queue, ledger, KEYS), event(1))
    assert answer.status == 202
    assert body["results"][0]["accepted"] is True
    assert body["results"][0]["alreadyKnown"] is None
    assert queue.bodies == [json.dumps(event(1)).encode()]  # a single event: byte for byte


def test_status_when_the_ledger_cannot_be_read_is_503() -> None:
    ledger = InMemoryLedger()
    ledger.fail_next["get"].append(ServiceUnavailableError("table down"))
    answer = HireIntake(ListQueue(), ledger, KEYS).status("unit-1", principal=None)
    assert answer.status == 503


def _principal(*roles: str, app: str = "hr-app", role_typ: str = "roles") -> str:
    claims = [{"typ": role_typ, "val": role} for role in roles] + [{"typ": "azp", "val": app}]
    return base64.b64encode(json.dumps({"claims": claims, "role_typ": role_typ}).encode()).decode()


@pytest.mark.parametrize(
    ("principal", "role", "expected"),
    [
        (None, SUBMIT_ROLE, 401),
        ("%%%", SUBMIT_ROLE, 401),
        (base64.b64encode(b"[1]").decode(), SUBMIT_ROLE, 401),
        (_principal(READ_ROLE), SUBMIT_ROLE, 403),
        (_principal(SUBMIT_ROLE, app="someone-else"), SUBMIT_ROLE, 403),
        (_principal(SUBMIT_ROLE), SUBMIT_ROLE, None),
        (
            _principal(
                READ_ROLE, role_typ="http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
            ),
            READ_ROLE,
            None,
        ),
    ],
)
def test_entra_access(principal: str | None, role: str, expected: int | None) -> None:
    from shared.service.intake import check_access

    access = HttpAccessSettings(
        mode=HttpAccess.ENTRA, easy_auth_enabled=True, allowed_client_ids=frozenset({"hr-app"})
    )
    answer = check_access(access, principal, role)
    assert (answer.status if answer else None) == expected


def test_access_settings() -> None:
    assert HttpAccessSettings.from_environment({}).mode is HttpAccess.FUNCTION_KEY
    on = HttpAccessSettings.from_environment({"WEBSITE_AUTH_ENABLED": "True"})
    assert on.mode is HttpAccess.ENTRA and on.easy_auth_enabled
    forced = HttpAccessSettings.from_environment(
        {
            "WEBSITE_AUTH_ENABLED": "True",
            "HIRES_HTTP_AUTH": "function-key",
            "HIRES_HTTP_ALLOWED_CLIENT_IDS": " A , b,",
        }
    )
    assert forced.mode is HttpAccess.FUNCTION_KEY
    assert forced.allowed_client_ids == {"a", "b"}
    with pytest.raises(SettingsError):
        HttpAccessSettings.from_environment({"HIRES_HTTP_AUTH": "open"})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["eventId", "user", "events", "pwd", "schemaVersion", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def _mutated_event(draw: Any) -> Any:
    document = event(1)
    member = draw(st.sampled_from(["eventId", "customerTenantId", "schemaVersion", "user"]))
    document[member] = draw(_JSON)
    return document


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        _JSON.map(lambda value: json.dumps(value).encode()),
        st.builds(lambda d: json.dumps(d).encode(), st.composite(_mutated_event)()),
    )
)
def test_a_single_body_is_accepted_exactly_when_the_queue_function_accepts_it(
    body: bytes,
) -> None:
    queue = ListQueue()
    answer = HireIntake(queue, InMemoryLedger(), KEYS).submit(
        body, base_url="https://func.example", principal=None
    )
    assert answer.status in {202, 400, 413}
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if answer.status != 202 or (isinstance(document, dict) and "events" in document):
        return  # not a single event (or a batch): nothing to compare
    try:
        parse_event(decode_body(body))
        valid = True
    except InvalidEvent:
        valid = False
    (result,) = json.loads(answer.body_bytes())["results"]
    assert result["accepted"] is valid
    assert queue.bodies == ([body] if valid else [])
