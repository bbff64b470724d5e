"""The Microsoft Graph stand-in and the Entra token endpoint of a customer's tenant, over HTTPS
with plain requests calls: every consent variant, throttling, replication delay, the two
documented URL forms, and Partner Center's user store shared with Graph."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import requests

from devtools.standins import CONSENT_VARIANTS, Fault, PartnerSeed, StandInStack

from .helpers import create_user, headers, user_body

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
SELECT = "id,userPrincipalName,createdDateTime,onPremisesImmutableId,givenName,surname"


def customer_token(stack: StandInStack, seed: PartnerSeed, tenant_id: str) -> requests.Response:
    """The partner's refresh token redeemed at the customer's tenant, for Graph (v2.0)."""
    return requests.post(
        f"{stack.entra.authority_host}/{tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": seed.client_id,
            "client_secret": seed.client_secret,
            "refresh_token": seed.refresh_token,
            "scope": f"{GRAPH_SCOPE} offline_access",
        },
        timeout=5,
    )


def graph_get(stack: StandInStack, token: str | None, path: str) -> requests.Response:
    sent = {
        "Accept": "application/json",
        "client-request-id": "c0ffee00-0000-4000-8000-000000000001",
    }
    if token:
        sent["Authorization"] = f"Bearer {token}"
    return requests.get(stack.graph.base_url + path, headers=sent, timeout=5)


@pytest.fixture
def graph_token(standins: StandInStack, partner: PartnerSeed, customer: str) -> str:
    answer = customer_token(standins, partner, customer)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_a_user_created_through_partner_center_is_visible_in_graph(
    standins: StandInStack, token: str, customer: str, graph_token: str
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    created = create_user(standins, customer, token, user_body("Jane.Doe@contoso.onmicrosoft.com"))
    assert created.status_code == 201

    answer = graph_get(
        standins, graph_token, f"/v1.0/users/jane.doe@contoso.onmicrosoft.com?$select={SELECT}"
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == created.json()["id"]
    assert body["userPrincipalName"] == "Jane.Doe@contoso.onmicrosoft.com"
    assert body["onPremisesImmutableId"] == "E12345"
    assert (body["givenName"], body["surname"]) == ("Jane", "Doe")
    assert datetime.fromisoformat(body["createdDateTime"].replace("Z", "+00:00")) >= before
    assert set(body) == {"@odata.context", *SELECT.split(",")}
    assert answer.headers["client-request-id"] == "c0ffee00-0000-4000-8000-000000000001"


def test_without_select_the_default_properties_come_and_no_creation_time(
    standins: StandInStack, customer: str, graph_token: str
) -> None:
    standins.partner_center.add_user(customer, {"userPrincipalName": "a@contoso.com"})

    body = graph_get(standins, graph_token, "/v1.0/users/a@contoso.com").json()

    assert "createdDateTime" not in body
    assert body["userPrincipalName"] == "a@contoso.com"


def test_an_unknown_upn_is_404_request_resource_not_found(
    standins: StandInStack, graph_token: str
) -> None:
    answer = graph_get(standins, graph_token, "/v1.0/users/nobody@contoso.com")

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "Request_ResourceNotFound"
    assert standins.graph.counters["users_not_found"] == 1


def test_deleted_users_are_not_in_graph_users(
    standins: StandInStack, customer: str, graph_token: str
) -> None:
    user = standins.partner_center.add_user(customer, {"userPrincipalName": "gone@contoso.com"})
    standins.partner_center.delete_user(customer, user["id"])

    assert graph_get(standins, graph_token, "/v1.0/users/gone@contoso.com").status_code == 404


def test_a_user_is_found_by_object_id_too(
    standins: StandInStack, customer: str, graph_token: str
) -> None:
    user = standins.partner_center.add_user(customer, {"userPrincipalName": "b@contoso.com"})

    answer = graph_get(standins, graph_token, f"/v1.0/users/{user['id']}")

    assert answer.json()["userPrincipalName"] == "b@contoso.com"


@pytest.mark.parametrize(
    ("upn", "path"),
    [
        ("o'brien#1@contoso.com", "/v1.0/users/" + quote("o'brien#1@contoso.com", safe="@")),
        ("$adele@contoso.com", "/v1.0/users('$adele@contoso.com')"),
        ("$o'hara@contoso.com", "/v1.0/users('" + quote("$o''hara@contoso.com", safe="@$'") + "')"),
    ],
)
def test_encoded_upns_and_the_quoted_form_for_a_leading_dollar(
    standins: StandInStack, customer: str, graph_token: str, upn: str, path: str
) -> None:
    standins.partner_center.add_user(customer, {"userPrincipalName": upn})

    answer = graph_get(standins, graph_token, path)

    assert answer.status_code == 200, answer.text
    assert answer.json()["userPrincipalName"] == upn


def test_a_leading_dollar_in_the_plain_form_is_a_bad_request(
    standins: StandInStack, customer: str, graph_token: str
) -> None:
    standins.partner_center.add_user(customer, {"userPrincipalName": "$adele@contoso.com"})

    answer = graph_get(standins, graph_token, "/v1.0/users/$adele@contoso.com")

    assert answer.status_code == 400


@pytest.mark.parametrize(
    ("variant", "status", "code"),
    [
        ("identity_not_found", 403, "Authorization_IdentityNotFound"),
        ("request_denied", 403, "Authorization_RequestDenied"),
        ("request_denied_401", 401, "Authorization_RequestDenied"),
    ],
)
def test_a_customer_without_consent_is_refused(
    standins: StandInStack, customer: str, graph_token: str, variant: str, status: int, code: str
) -> None:
    standins.partner_center.add_user(customer, {"userPrincipalName": "a@contoso.com"})
    standins.graph.set_consent(customer, variant)

    answer = graph_get(standins, graph_token, "/v1.0/users/a@contoso.com")

    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    assert standins.graph.counters["consent_refusals"] == 1


def test_the_token_refused_variant_refuses_the_exchange_at_the_customer_tenant(
    standins: StandInStack, partner: PartnerSeed, customer: str
) -> None:
    standins.graph.set_consent(customer, "token_refused")

    answer = customer_token(standins, partner, customer)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert answer.json()["error_codes"] == [65001]
    # The partner's own tenant still exchanges.
    assert customer_token(standins, partner, partner.tenant_id).status_code == 200


def test_the_token_names_the_directory(
    standins: StandInStack, partner: PartnerSeed, customer: str
) -> None:
    """Graph's URL has no tenant: a token of the partner's own tenant reads another directory."""
    standins.partner_center.add_user(customer, {"userPrincipalName": "a@contoso.com"})
    partner_token = customer_token(standins, partner, partner.tenant_id).json()["access_token"]

    assert graph_get(standins, partner_token, "/v1.0/users/a@contoso.com").status_code == 404


def test_a_tenant_that_is_no_customer_gets_no_token(
    standins: StandInStack, partner: PartnerSeed
) -> None:
    answer = customer_token(standins, partner, "0b0b0b0b-0000-4000-8000-000000000000")

    assert answer.status_code == 400
    assert answer.json()["error_codes"] == [90002]


def test_tokens_are_checked(standins: StandInStack, token: str) -> None:
    assert graph_get(standins, None, "/v1.0/users/a@contoso.com").status_code == 401
    # A Partner Center token has the wrong audience for Graph.
    answer = graph_get(standins, token, "/v1.0/users/a@contoso.com")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_throttling_is_429_with_retry_after_in_graphs_shape(
    standins: StandInStack, graph_token: str
) -> None:
    standins.graph.faults.add(Fault.status(429, retry_after=7), match="GET /v1.0/users/*")

    answer = graph_get(standins, graph_token, "/v1.0/users/a@contoso.com")

    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.json()["error"]["code"] == "TooManyRequests"


def test_replication_delay_hides_a_new_user_for_a_while(
    standins: StandInStack, customer: str, graph_token: str
) -> None:
    standins.graph.configure(replication_delay_seconds=30.0)
    standins.partner_center.add_user(customer, {"userPrincipalName": "new@contoso.com"})
    old = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    standins.partner_center.add_user(
        customer, {"userPrincipalName": "old@contoso.com", "createdDateTime": old}
    )

    assert graph_get(standins, graph_token, "/v1.0/users/new@contoso.com").status_code == 404
    assert graph_get(standins, graph_token, "/v1.0/users/old@contoso.com").status_code == 200


def test_replication_delay_ends(standins: StandInStack, customer: str, graph_token: str) -> None:
    standins.graph.configure(replication_delay_seconds=0.3)
    standins.partner_center.add_user(customer, {"userPrincipalName": "new@contoso.com"})
    time.sleep(0.4)  # past the configured delay; the assertion is on state, not on timing

    assert graph_get(standins, graph_token, "/v1.0/users/new@contoso.com").status_code == 200


def test_control_endpoint_sets_consent_and_refuses_unknown_variants(
    standins: StandInStack, customer: str
) -> None:
    url = f"{standins.graph.base_url}/_standin/consent"
    answer = requests.post(url, json={"tenantId": customer, "consent": "request_denied"}, timeout=5)
    assert answer.json()["customers"] == {customer: "request_denied"}
    assert (
        requests.post(url, json={"tenantId": customer, "consent": "x"}, timeout=5).status_code
        == 400
    )
    config = f"{standins.graph.base_url}/_standin/config"
    assert requests.post(config, json={"default_consent": "nope"}, timeout=5).status_code == 400
    assert (
        requests.post(config, json={"default_consent": "identity_not_found"}, timeout=5).json()[
            "default_consent"
        ]
        == "identity_not_found"
    )


def test_reset_forgets_consent(standins: StandInStack, customer: str) -> None:
    standins.graph.set_consent(customer, "request_denied")
    standins.reset()
    standins.partner_center.add_customer(customer, [])

    assert standins.graph.consent_of(customer) == "consented"


def test_every_variant_is_listed() -> None:
    assert set(CONSENT_VARIANTS) == {
        "consented",
        "identity_not_found",
        "request_denied",
        "request_denied_401",
        "token_refused",
    }


def test_seed_users_makes_a_large_customer_quickly(
    standins: StandInStack, token: str, customer: str, graph_token: str
) -> None:
    standins.partner_center.seed_users(customer, 3000, domain="contoso.com")

    assert len(standins.partner_center.users(customer)) == 3000
    assert graph_get(standins, graph_token, "/v1.0/users/seeded2999@contoso.com").status_code == 200
    page = requests.get(
        f"{standins.partner_center.base_url}/v1/customers/{customer}/users?size=100",
        headers=headers(token),
        timeout=5,
    ).json()
    assert "next" in page["links"]


def test_a_rate_limit_throttles_graph_in_its_own_shape(
    standins: StandInStack, graph_token: str
) -> None:
    from devtools.standins.ratelimit import RateLimit

    standins.graph.rate_limit = RateLimit(2, match="GET /v1.0/users/*")
    answers = [graph_get(standins, graph_token, "/v1.0/users/a@contoso.com") for _ in range(3)]

    assert [a.status_code for a in answers] == [404, 404, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert answers[2].json()["error"]["code"] == "TooManyRequests"
