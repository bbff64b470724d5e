from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from devtools.standins import StandInStack

from .helpers import VAULT_SCOPE


def secret_client(stack: StandInStack, *, client_id: str | None = None, secret: str | None = None):
    """Built exactly as the function app builds it from its settings."""
    settings = stack.function_settings("unused-partner")
    credential = ClientSecretCredential(
        settings["AZURE_TENANT_ID"],
        client_id or settings["AZURE_CLIENT_ID"],
        secret or settings["AZURE_CLIENT_SECRET"],
        authority=settings["ENTRA_AUTHORITY_HOST"],
        disable_instance_discovery=True,
    )
    return SecretClient(settings["KEY_VAULT_URL"], credential, verify_challenge_resource=False)


def test_get_secret_seeded_through_the_python_api(standins, partner):
    secret = secret_client(standins).get_secret("partner-center-refresh-token")

    assert secret.value == partner.refresh_token
    assert secret.id.startswith(
        f"{standins.key_vault.vault_url}/secrets/partner-center-refresh-token/"
    )
    assert standins.key_vault.counters["secret_reads"]["partner-center-refresh-token"] == 1
    assert standins.key_vault.counters["secret_writes"]["partner-center-refresh-token"] == 0


def test_set_secret_keeps_expiry_tags_and_content_type(standins):
    client = secret_client(standins)
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)

    written = client.set_secret(
        "initial-password-e1",
        "abCD123*xyz",
        expires_on=expires,
        tags={"eventId": "e1"},
        content_type="text/plain",
    )
    read = client.get_secret("initial-password-e1", written.properties.version)

    assert read.value == "abCD123*xyz"
    assert read.properties.expires_on == expires
    assert read.properties.tags == {"eventId": "e1"}
    assert read.properties.content_type == "text/plain"
    version = written.properties.version
    assert written.id == f"{standins.key_vault.vault_url}/secrets/initial-password-e1/{version}"
    assert standins.key_vault.get_secret_value("initial-password-e1") == "abCD123*xyz"
    assert standins.key_vault.counters["secret_writes"]["initial-password-e1"] == 1
    (put,) = [r for r in standins.key_vault.requests if r.method == "PUT" and r.status == 200]
    assert put.json["value"] == "<redacted>"
    assert put.query["api-version"] == ["2026-04-01"]


def test_each_set_is_a_new_version(standins):
    client = secret_client(standins)
    first = client.set_secret("rotating", "one")
    second = client.set_secret("rotating", "two")

    assert first.properties.version != second.properties.version
    assert client.get_secret("rotating").value == "two"
    assert client.get_secret("rotating", first.properties.version).value == "one"
    listed = [p.version for p in client.list_properties_of_secret_versions("rotating")]
    assert listed == [first.properties.version, second.properties.version]
    assert [v["value"] for v in standins.key_vault.versions("rotating")] == ["one", "two"]


def test_update_secret_properties(standins):
    client = secret_client(standins)
    client.set_secret("tagged", "v")
    updated = client.update_secret_properties("tagged", tags={"state": "used"})
    assert updated.tags == {"state": "used"}
    assert standins.key_vault.versions("tagged")[-1]["tags"] == {"state": "used"}


def test_python_api_set_secret_with_expiry(standins):
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    standins.key_vault.set_secret("seeded", "v", tags={"a": "b"}, expires_on=expires)
    secret = secret_client(standins).get_secret("seeded")
    assert secret.properties.expires_on == expires
    assert secret.properties.tags == {"a": "b"}


def test_missing_secret_is_404_secret_not_found(standins):
    with pytest.raises(ResourceNotFoundError) as raised:
        secret_client(standins).get_secret("nothing-here")
    assert raised.value.error is not None
    assert raised.value.error.code == "SecretNotFound"


def test_unauthenticated_call_gets_the_challenge(standins):
    vault = standins.key_vault
    answer = requests.get(f"{vault.vault_url}/secrets/x?api-version=2026-04-01", timeout=5)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{standins.entra.authority_host}/{vault.vault_tenant_id}", '
        'resource="https://vault.azure.net"'
    )
    assert answer.json()["error"]["code"] == "Unauthorized"


def test_secret_client_goes_through_the_challenge_first(standins):
    standins.key_vault.set_secret("s", "v")
    secret_client(standins).get_secret("s")
    statuses = [r.status for r in standins.key_vault.requests]
    # The challenge is cached per vault URL, so only a client's first call may be challenged.
    assert statuses[-1] == 200
    assert set(statuses) <= {401, 200}


def test_denied_name_is_403(standins, partner):
    standins.key_vault.deny("partner-center-app-secret")
    client = secret_client(standins)
    assert client.get_secret("partner-center-app-id").value == partner.client_id
    with pytest.raises(HttpResponseError) as raised:
        client.get_secret("partner-center-app-secret")
    assert raised.value.status_code == 403
    assert raised.value.error is not None
    assert raised.value.error.code == "Forbidden"
    with pytest.raises(HttpResponseError):
        client.set_secret("partner-center-app-secret", "x")


def test_deny_everything(standins, partner):
    standins.key_vault.deny(None)
    with pytest.raises(HttpResponseError) as raised:
        secret_client(standins).get_secret("partner-center-app-id")
    assert raised.value.status_code == 403


def test_app_without_access_is_403_until_granted(standins, partner):
    # The partner's app is registered in its own tenant; give it one in the vault's tenant.
    vault = standins.key_vault
    standins.entra.register_app(vault.vault_tenant_id, partner.client_id, partner.client_secret)
    client = secret_client(standins, client_id=partner.client_id, secret=partner.client_secret)
    with pytest.raises(HttpResponseError) as raised:
        client.get_secret("partner-center-app-id")
    assert raised.value.status_code == 403
    vault.grant_access(partner.client_id)
    assert client.get_secret("partner-center-app-id").value == partner.client_id


def test_token_from_another_tenant_is_401(standins, partner):
    token = ClientSecretCredential(
        partner.tenant_id,
        partner.client_id,
        partner.client_secret,
        authority=standins.entra.authority_host,
        disable_instance_discovery=True,
    ).get_token(VAULT_SCOPE)
    answer = requests.get(
        f"{standins.key_vault.vault_url}/secrets/partner-center-app-id/?api-version=7.6",
        headers={"Authorization": f"Bearer {token.token}"},
        timeout=5,
    )
    assert answer.status_code == 401
    assert "AKV10032" in answer.json()["error"]["message"]


def test_unknown_api_version_is_400(standins):
    token = ClientSecretCredential(
        standins.key_vault.vault_tenant_id,
        standins.key_vault.vault_client_id,
        standins.key_vault.vault_client_secret,
        authority=standins.entra.authority_host,
        disable_instance_discovery=True,
    ).get_token(VAULT_SCOPE)
    answer = requests.get(
        f"{standins.key_vault.vault_url}/secrets/x?api-version=1999-01-01",
        headers={"Authorization": f"Bearer {token.token}"},
        timeout=5,
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "BadParameter")


def test_expired_secret_is_served_unless_enforced(standins):
    past = datetime.now(UTC) - timedelta(days=1)
    standins.key_vault.set_secret("old", "v", expires_on=past)
    client = secret_client(standins)
    assert client.get_secret("old").value == "v"
    standins.key_vault.config.enforce_expiry = True
    with pytest.raises(HttpResponseError) as raised:
        client.get_secret("old")
    assert raised.value.status_code == 403


def test_reset_keeps_the_vault_principal_working(standins):
    client = secret_client(standins)
    standins.key_vault.set_secret("before", "v")
    assert client.get_secret("before").value == "v"
    standins.reset()
    standins.key_vault.set_secret("after", "w")
    # A client that outlives a test (cached token, cached challenge) keeps working.
    assert client.get_secret("after").value == "w"


def test_early_expiry_is_undone_by_reset(standins):
    client = secret_client(standins)
    standins.key_vault.set_secret("s", "v")
    assert client.get_secret("s").value == "v"
    standins.entra.expire_access_tokens()
    # The credential's cache still believes in its token, as it would against a real vault.
    with pytest.raises(ClientAuthenticationError):
        client.get_secret("s")
    standins.reset()
    standins.key_vault.set_secret("s", "w")
    assert client.get_secret("s").value == "w"
