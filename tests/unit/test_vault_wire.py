"""The Key Vault adapter against canned answers: what each refusal means, and that busy answers
carry their Retry-After (shared/adapters/azure_errors.py).

The real ``SecretClient`` with the pipeline the function builds (shared/adapters/sdk_pipeline.py)
and its challenge authentication, over azure-core's requests transport
answered by ``CannedHttp``: the first request of a client is answered with Key Vault's 401
challenge, as the service does, and then the scripted answer.
"""

from __future__ import annotations

import time

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport

from shared.adapters.sdk_pipeline import secret_client
from shared.adapters.vault import KeyVaultSecretStore
from shared.domain.errors import CredentialsError, ServiceUnavailableError
from shared.domain.outcomes import Category
from tests.unit.canned import CannedHttp, session_with

VAULT = "https://kv-hire.vault.azure.net"
TENANT = "0d3c8a7e-1f2b-4c5d-8e9f-a0b1c2d3e4f5"
CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
    'resource="https://vault.azure.net"'
)


class Credential:
    """A token source for the canned vault (the SDK only needs ``get_token``)."""

    def get_token(self, *scopes: str, **_kwargs: object) -> AccessToken:
        return AccessToken("canned-token", int(time.time()) + 3600)


def store(canned: CannedHttp) -> KeyVaultSecretStore:
    client = secret_client(
        VAULT,
        Credential(),  # type: ignore[arg-type]
        transport=RequestsTransport(session=session_with(canned), session_owner=False),
    )
    return KeyVaultSecretStore(client)


def after_challenge(status: int, body: object = None, **headers: str) -> CannedHttp:
    return (
        CannedHttp()
        .answer(401, {"error": {"code": "Unauthorized", "message": "AKV10000"}},
                WWW_Authenticate=CHALLENGE)
        .answer(status, body, **headers)
    )


def error(code: str, inner: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"code": code, "message": f"{code} (canned)"}
    if inner:
        body["innererror"] = {"code": inner}
    return {"error": body}


def test_a_secret_is_read_by_name_and_version() -> None:
    secret = {"value": "s3cret-value", "id": f"{VAULT}/secrets/partner-center-app-id/abc",
              "attributes": {"enabled": True, "created": 1764000000, "updated": 1764000000}}
    canned = after_challenge(200, secret)
    stored = store(canned).get("partner-center-app-id", "abc")
    assert stored is not None and stored.value == "s3cret-value"
    assert stored.id.endswith("/partner-center-app-id/abc")
    assert canned.requests[-1].headers["Authorization"] == "Bearer canned-token"


def test_a_missing_secret_is_none() -> None:
    assert store(after_challenge(404, error("SecretNotFound"))).get("nothing") is None


def test_a_forbidden_read_names_the_role_to_grant() -> None:
    with pytest.raises(CredentialsError) as raised:
        store(after_challenge(403, error("Forbidden", "ForbiddenByRbac"))).get("app-id")
    assert "Key Vault Secrets User" in raised.value.failure.message
    assert raised.value.failure.http_status == 403


def test_a_forbidden_write_names_the_officer_role() -> None:
    with pytest.raises(CredentialsError) as raised:
        store(after_challenge(403, error("Forbidden"))).set("initial-password-x", "pw")
    assert "Key Vault Secrets Officer" in raised.value.failure.message


def test_a_disabled_secret_is_credentials_saying_so() -> None:
    with pytest.raises(CredentialsError, match="disabled or expired") as raised:
        store(after_challenge(403, error("SecretDisabled"))).get("app-id")
    assert raised.value.failure.code == "SecretDisabled"


@pytest.mark.parametrize(
    ("status", "category"),
    [(429, Category.THROTTLED), (503, Category.UNAVAILABLE), (500, Category.UNAVAILABLE),
     (408, Category.UNAVAILABLE)],
)
def test_busy_answers_are_transient_with_the_wait_asked_for(
    status: int, category: Category
) -> None:
    canned = after_challenge(status, error("Throttled" if status == 429 else "ServiceError"),
                             Retry_After="7")
    with pytest.raises(ServiceUnavailableError) as raised:
        store(canned).get("app-id")
    assert raised.value.failure.category is category
    assert raised.value.retry_after == 7


def test_another_refusal_is_credentials() -> None:
    with pytest.raises(CredentialsError) as raised:
        store(after_challenge(400, error("BadParameter"))).get("app-id")
    assert raised.value.failure.code == "BadParameter"


def test_a_vault_that_cannot_be_reached_is_unavailable() -> None:
    canned = CannedHttp().respond(requests.ConnectionError("no route to host"))
    with pytest.raises(ServiceUnavailableError, match="could not be reached"):
        store(canned).get("app-id")
