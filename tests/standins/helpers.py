"""Small clients for the tests: real requests calls, nothing mocked."""

import uuid
from collections.abc import Mapping
from typing import Any

import requests

from devtools.standins import PartnerSeed, StandInStack

PARTNER_CENTER_SCOPE = "https://api.partnercenter.microsoft.com/user_impersonation"
VAULT_SCOPE = "https://vault.azure.net/.default"


def partner_center_token(stack: StandInStack, seed: PartnerSeed) -> str:
    answer = requests.post(
        f"{stack.entra.authority_host}/{seed.tenant_id}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": seed.client_id,
            "client_secret": seed.client_secret,
            "refresh_token": seed.refresh_token,
            "resource": "https://api.partnercenter.microsoft.com",
        },
        timeout=5,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def user_body(upn: str = "jane.doe@contoso.onmicrosoft.com", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "usageLocation": "US",
        "userPrincipalName": upn,
        "firstName": "Jane",
        "lastName": "Doe",
        "displayName": "Jane Doe",
        "immutableId": "E12345",
        "passwordProfile": {"password": "abCD123*xyz", "forceChangePassword": True},
        "attributes": {"objectType": "CustomerUser"},
    }
    body.update(overrides)
    return body


def headers(token: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a well-behaved Partner Center client sends (fresh request and correlation ids)."""
    sent = {
        "Accept": "application/json",
        "MS-RequestId": str(uuid.uuid4()),
        "MS-CorrelationId": str(uuid.uuid4()),
        "MS-Contract-Version": "v1",
    }
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    sent.update(extra or {})
    return sent


def create_user(
    stack: StandInStack,
    customer: str,
    token: str | None,
    body: dict[str, Any] | None = None,
    *,
    timeout: float = 5,
    request_id: str | None = None,
    correlation_id: str | None = None,
) -> requests.Response:
    chosen_ids = {"MS-RequestId": request_id, "MS-CorrelationId": correlation_id}
    return requests.post(
        f"{stack.partner_center.base_url}/v1/customers/{customer}/users",
        json=user_body() if body is None else body,
        headers=headers(token, {name: value for name, value in chosen_ids.items() if value}),
        timeout=timeout,
    )
