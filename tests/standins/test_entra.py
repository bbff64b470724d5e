import uuid

import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

from devtools.standins import PartnerSeed, StandInStack

from .helpers import PARTNER_CENTER_SCOPE, VAULT_SCOPE


def msal_app(stack: StandInStack, seed: PartnerSeed, *, secret: str | None = None):
    # A fresh application per call: msal caches some error answers inside one object.
    return msal.ConfidentialClientApplication(
        seed.client_id,
        client_credential=secret or seed.client_secret,
        authority=f"{stack.entra.authority_host}/{seed.tenant_id}",
        instance_discovery=False,
    )


def v1_refresh(stack: StandInStack, seed: PartnerSeed, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{stack.entra.authority_host}/{seed.tenant_id}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": seed.client_id,
            "client_secret": seed.client_secret,
            "refresh_token": refresh_token,
            "resource": "https://api.partnercenter.microsoft.com",
        },
        timeout=5,
    )


def test_msal_refresh_token_flow_returns_access_and_new_refresh_token(standins, partner):
    result = msal_app(standins, partner).acquire_token_by_refresh_token(
        partner.refresh_token, scopes=[PARTNER_CENTER_SCOPE]
    )

    assert "error" not in result, result
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3600
    assert result["scope"] == PARTNER_CENTER_SCOPE
    assert result["refresh_token"] != partner.refresh_token
    assert standins.entra.counters["token_requests"]["refresh_token"] == 1
    # What msal sent: v2 endpoint, the scope plus the OIDC ones it always adds.
    (token_call,) = [r for r in standins.entra.requests if r.method == "POST"]
    assert token_call.route == "POST /{tenant}/oauth2/v2.0/token"
    assert set(token_call.form["scope"].split()) >= {PARTNER_CENTER_SCOPE, "offline_access"}
    assert token_call.form["client_secret"] == "<redacted>"
    assert token_call.form["refresh_token"] == "<redacted>"


def test_new_refresh_token_works_and_old_one_stays_valid(standins, partner):
    first = msal_app(standins, partner).acquire_token_by_refresh_token(
        partner.refresh_token, scopes=[PARTNER_CENTER_SCOPE]
    )
    again_with_new = msal_app(standins, partner).acquire_token_by_refresh_token(
        first["refresh_token"], scopes=[PARTNER_CENTER_SCOPE]
    )
    again_with_old = v1_refresh(standins, partner, partner.refresh_token)
    assert "access_token" in again_with_new
    assert again_with_old.status_code == 200


def test_exchanged_refresh_tokens_can_be_made_single_use(standins, partner):
    standins.entra.config.revoke_exchanged_refresh_tokens = True
    assert v1_refresh(standins, partner, partner.refresh_token).status_code == 200
    again = v1_refresh(standins, partner, partner.refresh_token)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_v1_endpoint_answers_with_resource_and_string_numbers(standins, partner):
    standins.entra.config.access_token_lifetime = 120
    answer = v1_refresh(standins, partner, partner.refresh_token)
    body = answer.json()
    assert answer.status_code == 200
    assert body["resource"] == "https://api.partnercenter.microsoft.com"
    assert body["expires_in"] == "120"
    assert int(body["expires_on"]) - int(body["not_before"]) == 120
    assert body["refresh_token"].startswith("standin-rt.")
    assert answer.headers["Cache-Control"].startswith("no-store")


def test_wrong_client_secret_is_401_invalid_client(standins, partner):
    result = msal_app(standins, partner, secret="wrong").acquire_token_by_refresh_token(
        partner.refresh_token, scopes=[PARTNER_CENTER_SCOPE]
    )
    assert result["error"] == "invalid_client"
    assert 7000215 in result["error_codes"]
    assert standins.entra.counters["token_errors"]["invalid_client"] == 1
    (token_call,) = [r for r in standins.entra.requests if r.method == "POST"]
    assert token_call.status == 401


@pytest.mark.parametrize("how", ["revoked", "expired", "inactive for 90 days"])
def test_revoked_or_expired_refresh_token_is_invalid_grant_700082(standins, partner, how):
    if how == "revoked":
        standins.entra.revoke_refresh_token(partner.refresh_token)
    elif how == "expired":
        standins.entra.expire_refresh_token(partner.refresh_token)
    else:
        standins.entra.config.refresh_token_lifetime = 0
        seed = PartnerSeed(
            partner.tenant_id,
            partner.client_id,
            partner.client_secret,
            standins.entra.issue_refresh_token(partner.tenant_id, partner.client_id),
        )
        partner = seed

    result = msal_app(standins, partner).acquire_token_by_refresh_token(
        partner.refresh_token, scopes=[PARTNER_CENTER_SCOPE]
    )
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [700082]
    assert result["error_description"].startswith(
        "AADSTS700082: The refresh token has expired due to inactivity."
    )
    answer = v1_refresh(standins, partner, partner.refresh_token)
    assert answer.status_code == 400


def test_unknown_refresh_token_is_invalid_grant(standins, partner):
    answer = v1_refresh(standins, partner, "standin-rt.made-up")
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")


def test_refresh_token_of_another_app_is_invalid_grant(standins, partner):
    other = standins.seed_partner(partner.tenant_id, app_id_secret="other-app-id")
    answer = v1_refresh(standins, partner, other.refresh_token)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")


def test_unknown_app_is_unauthorized_client(standins, partner):
    stranger = PartnerSeed(partner.tenant_id, str(uuid.uuid4()), "x", partner.refresh_token)
    answer = v1_refresh(standins, stranger, partner.refresh_token)
    assert (answer.status_code, answer.json()["error"]) == (400, "unauthorized_client")


def test_client_secret_credential_gets_a_vault_token(standins):
    vault = standins.key_vault
    credential = ClientSecretCredential(
        vault.vault_tenant_id,
        vault.vault_client_id,
        vault.vault_client_secret,
        authority=standins.entra.authority_host,
        disable_instance_discovery=True,
    )
    token = credential.get_token(VAULT_SCOPE)
    assert token.token.startswith("standin-at.")
    assert standins.entra.counters["token_requests"]["client_credentials"] == 1


def test_client_secret_credential_wrong_secret_raises(standins):
    vault = standins.key_vault
    credential = ClientSecretCredential(
        vault.vault_tenant_id,
        vault.vault_client_id,
        "wrong",
        authority=standins.entra.authority_host,
        disable_instance_discovery=True,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        credential.get_token(VAULT_SCOPE)


def test_client_credentials_needs_a_default_scope(standins, partner):
    answer = requests.post(
        f"{standins.entra.authority_host}/{partner.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": partner.client_id,
            "client_secret": partner.client_secret,
            "scope": "https://vault.azure.net/user_impersonation",
        },
        timeout=5,
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_scope")


def test_unknown_resource_and_unsupported_grant(standins, partner):
    url = f"{standins.entra.authority_host}/{partner.tenant_id}/oauth2/v2.0/token"
    credentials = {"client_id": partner.client_id, "client_secret": partner.client_secret}
    unknown = requests.post(
        url,
        data={
            **credentials,
            "grant_type": "client_credentials",
            "scope": "https://example.org/.default",
        },
        timeout=5,
    )
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_resource")
    password = requests.post(
        url, data={**credentials, "grant_type": "password", "scope": VAULT_SCOPE}, timeout=5
    )
    assert password.json()["error"] == "unsupported_grant_type"
    assert standins.entra.counters["token_requests"]["password"] == 1


def test_openid_metadata_points_at_the_stand_in(standins, partner):
    host, tenant = standins.entra.authority_host, partner.tenant_id
    v2 = requests.get(f"{host}/{tenant}/v2.0/.well-known/openid-configuration", timeout=5).json()
    assert v2["token_endpoint"] == f"{host}/{tenant}/oauth2/v2.0/token"
    assert v2["authorization_endpoint"] == f"{host}/{tenant}/oauth2/v2.0/authorize"
    assert v2["issuer"] == f"{host}/{tenant}/v2.0"
    v1 = requests.get(f"{host}/{tenant}/.well-known/openid-configuration", timeout=5).json()
    assert v1["token_endpoint"] == f"{host}/{tenant}/oauth2/token"


def test_unknown_tenant_metadata_is_400(standins):
    host = standins.entra.authority_host
    answer = requests.get(f"{host}/{uuid.uuid4()}/v2.0/.well-known/openid-configuration", timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error_codes"] == [90002]


def test_access_token_lifetime_config_reaches_the_resources(standins, partner, customer):
    from .helpers import create_user, partner_center_token

    standins.entra.config.access_token_lifetime = 0
    token = partner_center_token(standins, partner)
    assert create_user(standins, customer, token).status_code == 401
