"""Transient answers from Entra and Key Vault are read as transient, inside one retry budget."""

from __future__ import annotations

import time

import pytest

from devtools.standins import Fault, StandInStack
from shared.domain.errors import ProvisioningError, RedeliveryRequested
from shared.domain.outcomes import Category
from tests.function.conftest import FunctionHarness, hire_event
from tests.hostile.helpers import make_credentials

# The partner tenant's endpoints only: the vault's own credential talks to Entra too.
METADATA = "GET /{tenant}/v2.0/.well-known/openid-configuration"
TOKEN = "POST /{tenant}/oauth2/v2.0/token"
LAST_DELIVERY = 5


FAULTS = [
    pytest.param(Fault.status(429), Category.THROTTLED, 1.0, id="429-oauth-body-retry-after"),
    pytest.param(Fault.status(429, retry_after=7), Category.THROTTLED, 7.0, id="429-wait-7"),
    pytest.param(Fault.bare_status(429), Category.THROTTLED, None, id="429-gateway-no-retry-after"),
    pytest.param(
        Fault.bare_status(429, retry_after=3), Category.THROTTLED, 3.0, id="429-gateway-wait-3"
    ),
    pytest.param(Fault.status(408), Category.UNAVAILABLE, None, id="408-oauth-body"),
    pytest.param(Fault.bare_status(408), Category.UNAVAILABLE, None, id="408-gateway"),
    pytest.param(Fault.bare_status(503), Category.UNAVAILABLE, None, id="503-gateway"),
]


@pytest.mark.parametrize("endpoint", [METADATA, TOKEN], ids=["metadata", "token"])
@pytest.mark.parametrize(("fault", "category", "retry_after"), FAULTS)
def test_entra_busy_answers_are_transient_not_credentials(
    standins: StandInStack,
    endpoint: str,
    fault: Fault,
    category: Category,
    retry_after: float | None,
) -> None:
    credentials, tenant = make_credentials(standins)
    standins.entra.faults.add(fault, match=endpoint.format(tenant=tenant))

    with pytest.raises(ProvisioningError) as raised:
        credentials.access_token()

    failure = raised.value.failure
    assert failure.category is category, failure.message
    assert raised.value.is_transient
    if fault.bare or endpoint == METADATA:
        # Read from the status itself, not from an OAuth body msal might have parsed.
        assert failure.http_status == fault.status_code
        assert raised.value.retry_after == retry_after
    assert standins.entra.counters["faults_injected"][fault.label] == 1
    # Nothing was remembered as a refusal: the next call gets a token.
    assert credentials.access_token()


def test_a_refused_refresh_token_is_still_credentials(standins: StandInStack) -> None:
    credentials, _ = make_credentials(standins)
    standins.entra.revoke_refresh_token(
        standins.key_vault.get_secret_value("partner-center-refresh-token")
    )

    with pytest.raises(ProvisioningError) as raised:
        credentials.access_token()

    assert raised.value.failure.category is Category.CREDENTIALS


@pytest.mark.parametrize("endpoint", [METADATA, TOKEN], ids=["metadata", "token"])
@pytest.mark.parametrize(
    "fault", [Fault.bare_status(429), Fault.bare_status(408)], ids=["429", "408"]
)
def test_through_the_function_entra_busy_means_redelivery_then_failed(
    harness: FunctionHarness, endpoint: str, fault: Fault
) -> None:
    match = endpoint.format(tenant=harness.partner_tenant_id)
    harness.stack.entra.faults.add(fault, match=match, times=None)
    event = hire_event(1)

    with pytest.raises(RedeliveryRequested):
        harness.invoke(event, dequeue_count=1)
    outcome = harness.invoke(event, dequeue_count=LAST_DELIVERY)

    assert outcome["status"] == "failed"
    expected = "throttled" if fault.status_code == 429 else "unavailable"
    assert outcome["error"]["category"] == expected
    assert harness.users() == []


def test_a_vault_429_asking_for_30s_does_not_hold_the_invocation(harness: FunctionHarness) -> None:
    """azure-core's own retry policy is off: it would sleep 30 s twice before the function's
    policy (budget 3 s in the harness) even saw the error."""
    harness.stack.key_vault.faults.add(Fault.status(429, retry_after=30), match="GET /secrets/*")
    started = time.monotonic()

    with pytest.raises(RedeliveryRequested):
        harness.invoke(hire_event(1), dequeue_count=1)

    assert time.monotonic() - started < 20  # a bound, not a timing assertion: 60 s before
    reads = sum(
        count
        for route, count in harness.stack.key_vault.counters["calls"].items()
        if route.startswith("GET /secrets/")
    )
    assert reads == 1, "one answer asked to wait longer than the budget: no retry at all"
    assert harness.stack.key_vault.counters["faults_injected"]["status_429"] == 1


def test_a_vault_429_with_a_short_wait_is_retried_within_the_invocation(
    harness: FunctionHarness,
) -> None:
    harness.stack.key_vault.faults.add(Fault.status(429, retry_after=0), match="GET /secrets/*")

    outcome = harness.invoke(hire_event(1), dequeue_count=1)

    assert outcome["status"] == "created"
    assert harness.stack.key_vault.counters["faults_injected"]["status_429"] == 1
