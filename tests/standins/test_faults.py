import threading
import time
import uuid

import msal
import pytest
import requests
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from devtools.standins import Fault, FaultKind, StandInStack

from .helpers import PARTNER_CENTER_SCOPE, create_user

CREATE = "POST /v1/customers/*/users"


def vault_client(stack: StandInStack) -> SecretClient:
    vault = stack.key_vault
    credential = ClientSecretCredential(
        vault.vault_tenant_id,
        vault.vault_client_id,
        vault.vault_client_secret,
        authority=stack.entra.authority_host,
        disable_instance_discovery=True,
    )
    # A tiny back-off keeps the retry test fast; the policy is the SDK's own.
    return SecretClient(
        vault.vault_url, credential, verify_challenge_resource=False, retry_backoff_factor=0.01
    )


def test_429_has_retry_after_and_the_throttling_body(standins, customer, token):
    standins.partner_center.faults.add(Fault.status(429, retry_after=3), match=CREATE)

    throttled = create_user(standins, customer, token)
    after = create_user(standins, customer, token)

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "3"
    assert throttled.json() == {
        "statusCode": 429,
        "message": "Rate limit is exceeded. Try again in 3 seconds.",
    }
    assert after.status_code == 201
    counters = standins.partner_center.counters
    assert counters["faults_injected"]["status_429"] == 1
    assert counters["calls"]["POST /v1/customers/{id}/users"] == 2
    assert counters["users_created"] == 1
    assert [r.fault for r in standins.partner_center.requests] == ["status_429", None]


def test_429_always_carries_retry_after(standins, customer, token):
    standins.partner_center.faults.add(Fault.status(429))
    assert create_user(standins, customer, token).headers["Retry-After"] == "1"


def test_500_uses_the_partner_center_envelope(standins, customer, token):
    standins.partner_center.faults.add(Fault.status(500), match=CREATE)
    answer = create_user(standins, customer, token)
    assert answer.status_code == 500
    assert answer.json()["code"] == 800003
    assert answer.json()["source"] == "PartnerFD"
    assert standins.partner_center.counters["users_created"] == 0


def test_503(standins, customer, token):
    standins.partner_center.faults.add(Fault.status(503, retry_after=2), match=CREATE)
    answer = create_user(standins, customer, token)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "2"


def test_latency_delays_then_handles(standins, customer, token):
    standins.partner_center.faults.add(Fault.latency(0.3), match=CREATE)
    started = time.monotonic()
    answer = create_user(standins, customer, token)
    assert time.monotonic() - started >= 0.3
    assert answer.status_code == 201


def test_hang_outlasts_the_client_timeout_and_handles_nothing(standins, customer, token):
    standins.partner_center.faults.add(Fault.hang(2), match=CREATE)
    with pytest.raises(requests.ReadTimeout):
        create_user(standins, customer, token, timeout=0.3)
    assert standins.partner_center.counters["users_created"] == 0
    assert standins.partner_center.requests[0].status is None


def test_drop_closes_the_connection_without_an_answer(standins, customer, token):
    standins.partner_center.faults.add(Fault.drop(), match=CREATE)
    with pytest.raises(requests.ConnectionError):
        create_user(standins, customer, token)
    assert standins.partner_center.counters["users_created"] == 0
    assert standins.partner_center.counters["faults_injected"]["drop"] == 1


def test_apply_then_drop_creates_and_a_replay_is_absorbed(standins, customer, token):
    standins.partner_center.faults.add(Fault.apply_then_drop(), match=CREATE)
    request_id = str(uuid.uuid4())

    with pytest.raises(requests.ConnectionError):
        create_user(standins, customer, token, request_id=request_id)
    assert standins.partner_center.counters["users_created"] == 1

    retry = create_user(standins, customer, token, request_id=request_id)
    assert retry.status_code == 201
    assert retry.json()["id"] == standins.partner_center.users(customer)[0]["id"]
    assert len(standins.partner_center.users(customer)) == 1
    assert standins.partner_center.counters["replays_absorbed"] == 1


def test_apply_then_hang_creates_but_the_client_times_out(standins, customer, token):
    standins.partner_center.faults.add(Fault.apply_then_hang(2), match=CREATE)
    request_id = str(uuid.uuid4())

    with pytest.raises(requests.ReadTimeout):
        create_user(standins, customer, token, timeout=0.3, request_id=request_id)
    # A client that retries with a new MS-RequestId would hit its own duplicate:
    fresh = create_user(standins, customer, token)
    assert fresh.status_code == 400
    assert "already exists" in fresh.json()["description"]
    # ... the same MS-RequestId gets the first answer instead.
    replay = create_user(standins, customer, token, request_id=request_id)
    assert replay.status_code == 201
    assert standins.partner_center.counters["users_created"] == 1


def test_hang_does_not_block_stop():
    stack = StandInStack.start()
    stack.partner_center.faults.add(Fault.hang(60))
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            requests.get(
                f"{stack.partner_center.base_url}/v1/x", timeout=30, verify=str(stack.ca_file)
            )
        except requests.RequestException as error:
            outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    while not stack.partner_center.requests:
        time.sleep(0.01)
    started = time.monotonic()
    stack.stop()
    caller.join(timeout=15)
    # Far below the 60 s hang: stop() released it (a loose bound, so a loaded CI machine
    # does not fail it).
    assert time.monotonic() - started < 15
    assert not caller.is_alive()
    assert isinstance(outcome[0], requests.ConnectionError)


def test_faults_match_method_and_path(standins, customer, token):
    pc = standins.partner_center
    pc.faults.add(Fault.status(503), match=CREATE)
    listing = requests.get(
        f"{pc.base_url}/v1/customers/{customer}/users",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert listing.status_code == 200
    assert create_user(standins, customer, token).status_code == 503


def test_path_only_pattern_and_match_all(standins, customer, token):
    pc = standins.partner_center
    pc.faults.add(Fault.status(500), match="/v1/customers/*/users")
    assert create_user(standins, customer, token).status_code == 500
    pc.faults.add(Fault.status(502))
    assert create_user(standins, customer, token).status_code == 502


def test_scripted_faults_run_in_order_and_times(standins, customer, token):
    pc = standins.partner_center
    pc.faults.add(Fault.status(429, retry_after=0), match=CREATE, times=2)
    pc.faults.add(Fault.status(503), match=CREATE)
    statuses = [create_user(standins, customer, token).status_code for _ in range(4)]
    assert statuses == [429, 429, 503, 201]


def test_times_none_injects_until_cleared(standins, customer, token):
    pc = standins.partner_center
    pc.faults.add(Fault.status(503), times=None)
    assert [create_user(standins, customer, token).status_code for _ in range(3)] == [503] * 3
    pc.faults.clear()
    assert create_user(standins, customer, token).status_code == 201


def test_random_faults_are_reproducible_with_a_seed(standins, customer, token):
    def run() -> list[int]:
        standins.partner_center.faults.clear()
        standins.partner_center.faults.random(
            seed=7, rate=0.5, kinds=[Fault.status(503), "500"], match=CREATE
        )
        return [
            create_user(standins, customer, token, {"not": "valid"}).status_code for _ in range(20)
        ]

    first, second = run(), run()
    assert first == second
    assert set(first) == {400, 500, 503}


def test_random_rate_bounds(standins, customer, token):
    pc = standins.partner_center
    pc.faults.random(seed=1, rate=0.0)
    assert create_user(standins, customer, token).status_code == 201
    pc.faults.clear()
    pc.faults.random(seed=1, rate=1.0, kinds=["429"])
    assert create_user(standins, customer, token).status_code == 429


def test_token_endpoint_faults_reach_msal(standins, partner):
    standins.entra.faults.add(Fault.status(503), match="POST /*/oauth2/v2.0/token")
    app = msal.ConfidentialClientApplication(
        partner.client_id,
        client_credential=partner.client_secret,
        authority=f"{standins.entra.authority_host}/{partner.tenant_id}",
        instance_discovery=False,
    )
    with pytest.raises(msal.exceptions.MsalServiceError):
        app.acquire_token_by_refresh_token(partner.refresh_token, scopes=[PARTNER_CENTER_SCOPE])
    assert standins.entra.counters["faults_injected"]["status_503"] == 1


def test_token_endpoint_429_body_is_entra_shaped(standins, partner):
    standins.entra.faults.add(Fault.status(429, retry_after=5))
    answer = requests.post(
        f"{standins.entra.authority_host}/{partner.tenant_id}/oauth2/token", data={}, timeout=5
    )
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["error"] == "temporarily_unavailable"


def test_vault_faults_are_retried_by_the_sdk(standins, partner):
    vault = standins.key_vault
    vault.faults.add(Fault.status(503), match="GET /secrets/*")
    vault.faults.add(Fault.drop(), match="GET /secrets/*")
    vault.faults.add(Fault.status(429, retry_after=0), match="GET /secrets/*")

    assert vault_client(standins).get_secret("partner-center-app-id").value == partner.client_id
    assert vault.counters["faults_injected"] == {"status_503": 1, "drop": 1, "status_429": 1}
    assert vault.counters["secret_reads"]["partner-center-app-id"] == 1


def test_vault_429_body(standins):
    standins.key_vault.faults.add(Fault.status(429, retry_after=4))
    answer = requests.get(f"{standins.key_vault.vault_url}/secrets/x", timeout=5)
    assert answer.headers["Retry-After"] == "4"
    assert answer.json()["error"]["code"] == "Throttled"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("429", Fault.status(429)),
        ("status=503", Fault.status(503)),
        ("latency=0.2", Fault.latency(0.2)),
        ("hang=5", Fault.hang(5)),
        ("hang", Fault.hang()),
        ("drop", Fault.drop()),
        ("apply_then_drop", Fault.apply_then_drop()),
        ("apply_then_hang=3", Fault.apply_then_hang(3)),
    ],
)
def test_fault_specs(spec, expected):
    assert Fault.parse(spec) == expected
    assert Fault.from_json(expected.to_json()) == expected


def test_fault_spec_with_retry_after_and_bad_specs():
    assert Fault.parse("429", {"retry_after": "9"}).retry_after == 9
    assert Fault.parse("drop").kind is FaultKind.DROP
    with pytest.raises(ValueError):
        Fault.parse("explode")
    with pytest.raises(ValueError):
        Fault.parse("latency")
