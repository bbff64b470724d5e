"""Who holds a UPN, through the real Graph adapter and the real token exchange over HTTPS
against the stand-ins (Graph, Entra, Key Vault, Partner Center's shared user store), under
every consent variant of the Graph stand-in, throttling and the replication delay."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from devtools.standins import Domain, Fault, StandInStack
from shared import composition
from shared.adapters.credentials import (
    GRAPH_SCOPE,
    CustomerTenantTokens,
    MsalTokenExchange,
    PartnerCenterCredentials,
)
from shared.adapters.graph import GraphUpnDirectory, UserListOnly, user_path
from shared.adapters.telemetry import OpenTelemetry
from shared.adapters.throttle import ThrottleGate
from shared.domain.errors import (
    CredentialsError,
    DirectoryUnavailable,
    Refused,
    ServiceUnavailableError,
)
from shared.domain.outcomes import Category
from shared.settings import Settings, SettingsError

CUSTOMER = "4b10bf41-ab11-40e3-8c53-cd67849b50de"
OTHER_CUSTOMER = "9a1d2c3e-4f50-4a6b-8c7d-0e1f2a3b4c5d"
DOMAIN = "contoso.onmicrosoft.com"
NOT_CONSENTED = ("identity_not_found", "request_denied", "request_denied_401", "token_refused")


def build(
    stack: StandInStack, mode: str = "graph", **extra: str
) -> tuple[GraphUpnDirectory | UserListOnly, PartnerCenterCredentials, Settings]:
    partner = str(uuid.uuid4())
    stack.seed_partner(partner)
    for customer in (CUSTOMER, OTHER_CUSTOMER):
        stack.partner_center.add_customer(customer, [Domain(DOMAIN)])
    settings = Settings.from_environment(
        {**stack.function_settings(partner), "UPN_LOOKUP": mode, **extra}
    )
    vault = composition._secret_store(
        settings.key_vault_url, composition._vault_credential(settings)
    )
    tokens = PartnerCenterCredentials(
        vault,
        composition.MsalTokenExchange(
            authority_host=settings.entra_authority_host, tenant_id=settings.partner_tenant_id
        ),
    )
    directory = composition.build_upn_directory(settings, tokens)
    return directory, tokens, settings  # type: ignore[return-value]


@pytest.fixture
def vault_env(standins: StandInStack, monkeypatch: pytest.MonkeyPatch) -> StandInStack:
    """The vault credential of the composition root reads AZURE_* from the environment."""
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.setenv(name, standins.function_settings("x")[name])
    return standins


def customer_token_requests(stack: StandInStack) -> int:
    return sum(
        1
        for request in stack.entra.requests
        if request.route.endswith("/oauth2/v2.0/token")
        and request.path.split("/")[1].lower() in (CUSTOMER, OTHER_CUSTOMER)
    )


def graph_calls(stack: StandInStack) -> int:
    return sum(stack.graph.counters["calls"].values())


def find(directory: object, upn: str, customer: str = CUSTOMER) -> object:
    return directory.find_user_by_upn(  # type: ignore[attr-defined]
        customer, upn, correlation_id=str(uuid.uuid4())
    )


def test_finds_a_user_created_through_partner_center_with_its_creation_time(
    vault_env: StandInStack,
) -> None:
    stack = vault_env
    directory, _, _ = build(stack)
    created_at = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    user = stack.partner_center.add_user(
        CUSTOMER,
        {
            "userPrincipalName": "Jane.Doe@contoso.onmicrosoft.com",
            "firstName": "Jane",
            "lastName": "Doe",
            "immutableId": "E1",
            "createdDateTime": created_at.isoformat(),
        },
    )

    found = find(directory, "jane.doe@contoso.onmicrosoft.com")

    assert found is not None
    assert found.id == user["id"]  # type: ignore[attr-defined]
    assert found.immutable_id == "E1"  # type: ignore[attr-defined]
    assert (found.first_name, found.last_name) == ("Jane", "Doe")  # type: ignore[attr-defined]
    assert found.created_at == created_at  # type: ignore[attr-defined]
    assert found.active  # type: ignore[attr-defined]
    (request,) = stack.graph.requests
    assert request.query["$select"] == [
        "id,userPrincipalName,displayName,givenName,surname,onPremisesImmutableId,"
        "createdDateTime,accountEnabled"
    ]
    assert directory.available(CUSTOMER) is True


def test_an_unknown_upn_is_none_in_one_call(vault_env: StandInStack) -> None:
    directory, _, _ = build(vault_env)
    vault_env.partner_center.seed_users(CUSTOMER, 3000, domain=DOMAIN)

    assert find(directory, "nobody@contoso.onmicrosoft.com") is None
    assert graph_calls(vault_env) == 1
    assert sum(vault_env.partner_center.counters["calls"].values()) == 0


@pytest.mark.parametrize(
    "upn",
    [
        "a#b@contoso.onmicrosoft.com",
        "a/b@contoso.onmicrosoft.com",
        "o'brien@contoso.onmicrosoft.com",
        "$adele@contoso.onmicrosoft.com",
        "$o'hara@contoso.onmicrosoft.com",
        "100%?x@contoso.onmicrosoft.com",
    ],
)
def test_upns_with_characters_that_mean_something_in_a_url(
    vault_env: StandInStack, upn: str
) -> None:
    directory, _, _ = build(vault_env)
    vault_env.partner_center.add_user(CUSTOMER, {"userPrincipalName": upn})
    vault_env.partner_center.add_user(CUSTOMER, {"userPrincipalName": "a@contoso.onmicrosoft.com"})

    found = find(directory, upn)

    assert found is not None and found.user_principal_name == upn  # type: ignore[attr-defined]


def test_user_path_forms() -> None:
    assert user_path("a#b@x.com") == "/v1.0/users/a%23b@x.com"
    assert user_path("a/b@x.com") == "/v1.0/users/a%2Fb@x.com"
    assert user_path("$a'b@x.com") == "/v1.0/users('$a''''b@x.com')".replace("''''", "''")


def test_one_token_per_customer_tenant_kept_between_lookups(vault_env: StandInStack) -> None:
    directory, _, _ = build(vault_env)

    for _ in range(3):
        find(directory, "x@contoso.onmicrosoft.com")
        find(directory, "x@contoso.onmicrosoft.com", OTHER_CUSTOMER)

    assert customer_token_requests(vault_env) == 2
    assert graph_calls(vault_env) == 6


def test_an_expired_token_is_renewed_once(vault_env: StandInStack) -> None:
    directory, _, _ = build(vault_env)
    find(directory, "x@contoso.onmicrosoft.com")
    vault_env.entra.expire_access_tokens()

    assert find(directory, "x@contoso.onmicrosoft.com") is None
    assert customer_token_requests(vault_env) == 2


def test_the_customer_exchange_writes_no_refresh_token_back(vault_env: StandInStack) -> None:
    directory, tokens, _ = build(vault_env)
    tokens.access_token()  # the partner tenant's own exchange, as a Partner Center call makes
    writes_before = dict(vault_env.key_vault.counters["secret_writes"])

    find(directory, "x@contoso.onmicrosoft.com")
    find(directory, "x@contoso.onmicrosoft.com", OTHER_CUSTOMER)

    assert dict(vault_env.key_vault.counters["secret_writes"]) == writes_before


@pytest.mark.parametrize("variant", NOT_CONSENTED)
def test_auto_falls_back_once_per_customer_under_every_refusal(
    vault_env: StandInStack, variant: str, caplog: pytest.LogCaptureFixture
) -> None:
    directory, _, _ = build(vault_env, "auto")
    fallbacks: list[str] = []
    directory._on_fallback = fallbacks.append  # type: ignore[union-attr]
    vault_env.graph.set_consent(CUSTOMER, variant)
    assert directory.available(CUSTOMER) is None

    with caplog.at_level(logging.WARNING, logger="hire_provisioning.graph"):
        for _ in range(3):
            with pytest.raises(DirectoryUnavailable):
                find(directory, "x@contoso.onmicrosoft.com")
        assert find(directory, "x@contoso.onmicrosoft.com", OTHER_CUSTOMER) is None

    assert directory.available(CUSTOMER) is False
    assert directory.available(OTHER_CUSTOMER) is True
    assert fallbacks == [CUSTOMER]
    lines = [r.getMessage() for r in caplog.records if r.name == "hire_provisioning.graph"]
    assert len(lines) == 1 and CUSTOMER in lines[0] and "user list" in lines[0]
    # Remembered: after the first refusal no more calls for that customer.
    refused_calls = 0 if variant == "token_refused" else 1
    assert vault_env.graph.counters["consent_refusals"] == refused_calls


@pytest.mark.parametrize("variant", NOT_CONSENTED)
def test_graph_mode_refuses_the_hire_as_a_permission_problem(
    vault_env: StandInStack, variant: str
) -> None:
    directory, _, _ = build(vault_env, "graph")
    vault_env.graph.set_consent(CUSTOMER, variant)

    with pytest.raises(Refused) as raised:
        find(directory, "x@contoso.onmicrosoft.com")

    assert raised.value.failure.category is Category.PERMISSION
    assert "UPN_LOOKUP" in raised.value.failure.message
    assert directory.available(CUSTOMER) is True


def test_throttling_is_transient_with_the_wait_graph_asked_for(vault_env: StandInStack) -> None:
    directory, _, _ = build(vault_env)
    vault_env.graph.faults.add(Fault.status(429, retry_after=90), match="GET /v1.0/users/*")

    with pytest.raises(ServiceUnavailableError) as raised:
        find(directory, "x@contoso.onmicrosoft.com")

    assert raised.value.failure.category is Category.THROTTLED
    assert raised.value.retry_after == 90
    # The gate holds the tenant back: the next call does not reach Graph.
    with pytest.raises(ServiceUnavailableError):
        find(directory, "x@contoso.onmicrosoft.com")
    assert graph_calls(vault_env) == 1


@pytest.mark.parametrize("status", [500, 503, 504])
def test_server_errors_are_transient(vault_env: StandInStack, status: int) -> None:
    directory, _, _ = build(vault_env)
    vault_env.graph.faults.add(Fault.status(status, retry_after=1), match="GET /v1.0/users/*")

    with pytest.raises(ServiceUnavailableError) as raised:
        find(directory, "x@contoso.onmicrosoft.com")

    assert raised.value.failure.category is Category.UNAVAILABLE
    assert find(directory, "x@contoso.onmicrosoft.com") is None  # the next try goes through


def test_a_dropped_connection_is_transient(vault_env: StandInStack) -> None:
    directory, _, _ = build(vault_env)
    vault_env.graph.faults.add(Fault.drop(), match="GET /v1.0/users/*")

    with pytest.raises(ServiceUnavailableError):
        find(directory, "x@contoso.onmicrosoft.com")


def test_replication_delay_a_new_user_is_not_proof_of_absence(vault_env: StandInStack) -> None:
    """Graph documents the delay; the caller must not take this None as 'free' after its own
    create (the port says so). The stand-in shows it so tests can hold callers to that."""
    directory, _, _ = build(vault_env)
    vault_env.graph.configure(replication_delay_seconds=60.0)
    vault_env.partner_center.add_user(
        CUSTOMER, {"userPrincipalName": "new@contoso.onmicrosoft.com"}
    )
    old = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    vault_env.partner_center.add_user(
        CUSTOMER, {"userPrincipalName": "old@contoso.onmicrosoft.com", "createdDateTime": old}
    )

    assert find(directory, "new@contoso.onmicrosoft.com") is None
    assert find(directory, "old@contoso.onmicrosoft.com") is not None


def test_partner_center_mode_builds_no_graph_client(vault_env: StandInStack) -> None:
    directory, _, _ = build(vault_env, "partner-center")

    assert isinstance(directory, UserListOnly)
    assert directory.available(CUSTOMER) is False
    with pytest.raises(DirectoryUnavailable):
        find(directory, "x@contoso.onmicrosoft.com")
    assert graph_calls(vault_env) == 0
    assert customer_token_requests(vault_env) == 0


def test_partner_credentials_refused_at_the_customer_are_a_credentials_error(
    vault_env: StandInStack,
) -> None:
    directory, _, _ = build(vault_env, "auto")
    token = vault_env.key_vault.get_secret_value("partner-center-refresh-token")
    vault_env.entra.revoke_refresh_token(token)

    with pytest.raises(CredentialsError):
        find(directory, "x@contoso.onmicrosoft.com")
    assert directory.available(CUSTOMER) is None  # not remembered as "not consented"


def test_the_fallback_metric(vault_env: StandInStack) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    directory, tokens, settings = build(vault_env, "auto")
    directory = composition.build_upn_directory(
        settings, tokens, telemetry=OpenTelemetry(meter_provider=provider)
    )
    vault_env.graph.set_consent(CUSTOMER, "identity_not_found")
    for _ in range(2):
        with pytest.raises(DirectoryUnavailable):
            find(directory, "x@contoso.onmicrosoft.com")

    points = [
        (dict(point.attributes or {}), point.value)
        for resource in reader.get_metrics_data().resource_metrics  # type: ignore[union-attr]
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "upn_lookup.fallbacks"
        for point in metric.data.data_points
    ]
    assert points == [({"hire.customer_tenant_id": CUSTOMER}, 1)]
    provider.shutdown()


def test_no_token_reaches_a_log_line_or_an_error(
    vault_env: StandInStack, caplog: pytest.LogCaptureFixture
) -> None:
    directory, _, _ = build(vault_env, "auto")
    vault_env.graph.set_consent(CUSTOMER, "request_denied")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DirectoryUnavailable) as raised:
        find(directory, "x@contoso.onmicrosoft.com")

    issued = [
        r.headers.get("Authorization", "").removeprefix("Bearer ") for r in vault_env.graph.requests
    ]
    refresh = vault_env.key_vault.get_secret_value("partner-center-refresh-token")
    for secret in [*filter(None, issued), refresh]:
        assert secret not in caplog.text
        assert secret not in str(raised.value)


def test_settings_validate_upn_lookup_and_graph_base_url(vault_env: StandInStack) -> None:
    base = vault_env.function_settings("p")
    assert Settings.from_environment({**base, "UPN_LOOKUP": ""}).upn_lookup == "auto"
    assert Settings.from_environment({**base, "UPN_LOOKUP": "Graph"}).upn_lookup == "graph"
    defaults = {k: v for k, v in base.items() if k != "GRAPH_BASE_URL"}
    assert Settings.from_environment(defaults).graph_base_url == "https://graph.microsoft.com"
    with pytest.raises(SettingsError, match="UPN_LOOKUP"):
        Settings.from_environment({**base, "UPN_LOOKUP": "ldap"})
    with pytest.raises(SettingsError, match="GRAPH_BASE_URL"):
        Settings.from_environment({**base, "GRAPH_BASE_URL": "graph.microsoft.com"})


def test_the_gate_is_per_customer(vault_env: StandInStack) -> None:
    """A 429 for one customer's tenant holds back no other customer."""
    directory, _, _ = build(vault_env)
    assert isinstance(directory._client._gate, ThrottleGate)  # type: ignore[union-attr]
    vault_env.graph.faults.add(Fault.status(429, retry_after=90), match="GET /v1.0/users/*")
    with pytest.raises(ServiceUnavailableError):
        find(directory, "x@contoso.onmicrosoft.com")

    assert find(directory, "x@contoso.onmicrosoft.com", OTHER_CUSTOMER) is None


def test_a_tenant_entra_does_not_know_is_not_a_partner_credentials_problem(
    vault_env: StandInStack,
) -> None:
    """msal reads the customer authority's metadata first; a refused one says nothing about
    the partner's own settings (for the partner tenant it is a CredentialsError)."""
    directory, _, _ = build(vault_env, "auto")
    unknown = "0b0b0b0b-0000-4000-8000-000000000000"

    with pytest.raises(DirectoryUnavailable, match="metadata"):
        find(directory, "x@contoso.onmicrosoft.com", unknown)
    assert directory.available(unknown) is False
    assert find(directory, "x@contoso.onmicrosoft.com") is None  # other customers unaffected


def test_a_customer_token_is_kept_until_five_minutes_before_it_expires(
    vault_env: StandInStack,
) -> None:
    _, tokens, settings = build(vault_env)
    now = [1_900_000_000.0]
    customer_tokens = CustomerTenantTokens(
        tokens,
        lambda tenant: MsalTokenExchange(
            authority_host=settings.entra_authority_host, tenant_id=tenant, scope=GRAPH_SCOPE
        ),
        clock=lambda: now[0],
    )
    first = customer_tokens.access_token(CUSTOMER)
    now[0] += 3600 - 301  # the stand-in's tokens live 3,600 s
    assert customer_tokens.access_token(CUSTOMER) == first
    now[0] += 2
    assert customer_tokens.access_token(CUSTOMER) != first
    assert customer_token_requests(vault_env) == 2


@pytest.mark.parametrize("mode", ["auto", "graph"])
def test_a_upn_graph_cannot_read_is_answered_by_the_user_list_not_refused(
    vault_env: StandInStack, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Graph's 400 for one UPN ("Invalid object identifier") says nothing of who holds it nor
    of the customer's consent: the look-up goes to Partner Center's user list for that UPN, in
    both modes, and the customer keeps Graph for every other UPN."""
    directory, _, _ = build(vault_env, mode)
    fallbacks: list[str] = []
    directory._on_fallback = fallbacks.append  # type: ignore[union-attr]
    vault_env.graph.faults.add(Fault.status(400), match="GET /v1.0/users/*")

    with (
        caplog.at_level(logging.WARNING, logger="hire_provisioning.graph"),
        pytest.raises(DirectoryUnavailable) as raised,
    ):
        find(directory, "odd@contoso.onmicrosoft.com")

    assert not isinstance(raised.value, Refused)
    assert "Partner Center's user list answers instead" in str(raised.value)
    assert directory.available(CUSTOMER) is not False
    assert fallbacks == [] and not caplog.records
    assert find(directory, "x@contoso.onmicrosoft.com") is None  # Graph answers again
    assert graph_calls(vault_env) == 2
