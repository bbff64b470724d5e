"""What the lean SDK pipelines keep (shared/adapters/sdk_pipeline.py), against canned answers.

The real ``TableClient`` and ``SecretClient`` as the function builds them, their requests
transport answered by ``CannedHttp``: authentication (Shared Key, a token credential's bearer,
Key Vault's challenge), the storage headers, the user agent, no retry and no redirect by the
SDK, and nothing of a request in the logs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken, AzureNamedKeyCredential
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient

from shared.adapters.ledger import TableHireLedger
from shared.adapters.sdk_pipeline import (
    LeanTableClient,
    secret_client,
    secret_transport,
    table_transport,
)
from shared.adapters.vault import KeyVaultSecretStore
from shared.domain.errors import ServiceUnavailableError
from tests.unit.canned import CannedHttp, session_with

ENDPOINT = "https://ledgeraccount.table.core.windows.net"
TABLE = "hireledger"
KEY = "Zm9yLXRoZS11bml0LXRpZXItb25seS1ub3QtYS1yZWFsLWtleQ=="
VAULT = "https://kv-hire.vault.azure.net"
TENANT = "0d3c8a7e-1f2b-4c5d-8e9f-a0b1c2d3e4f5"
CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
    'resource="https://vault.azure.net"'
)
PASSWORD = "Initial-Pa55word-never-logged!"
ETAG = "W/\"datetime'2026-11-21T09%3A30%3A00.1234567Z'\""


class Tokens:
    """A token credential: what a managed identity is to the SDK (``get_token``)."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_kwargs: object) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("canned-bearer-token", int(time.time()) + 3600)


def _mounted(transport: RequestsTransport, canned: CannedHttp) -> RequestsTransport:
    # The product's transport (its session, its user agent) with the canned adapter mounted.
    assert transport.session is not None
    transport.session.mount("https://", canned)
    transport.session.mount("http://", canned)
    return transport


def _ledger(canned: CannedHttp, credential: Any = None) -> TableHireLedger:
    client = LeanTableClient(
        ENDPOINT,
        TABLE,
        credential=credential or AzureNamedKeyCredential("ledgeraccount", KEY),
        transport=_mounted(table_transport(), canned),
        retry_total=0,
    )
    return TableHireLedger(client, read_only=True)


def _policies(client: Any) -> list[str]:
    # The pipeline as azure-core runs it (private attributes: this test pins a pinned SDK).
    pipeline = client._client._client._pipeline
    return [type(getattr(p, "_policy", p)).__name__ for p in pipeline._impl_policies]


def test_the_table_pipeline_keeps_what_a_call_needs_and_nothing_else() -> None:
    client = _ledger(CannedHttp())._client
    assert _policies(client) == [
        "RequestIdPolicy",
        "StorageHeadersPolicy",
        "SharedKeyCredentialPolicy",
        "ContentDecodePolicy",
        "StorageHosts",
        "TablesRetryPolicy",
    ]
    default = TableClient(ENDPOINT, TABLE, credential=AzureNamedKeyCredential("a", KEY))
    assert len(_policies(default)) == 13


def test_a_table_call_is_signed_with_shared_key_and_carries_the_storage_headers() -> None:
    canned = CannedHttp().answer(404, {"odata.error": {"code": "ResourceNotFound"}})
    assert _ledger(canned).get("hr-1") is None
    (request,) = canned.requests
    headers = request.headers
    assert headers["Authorization"].startswith("SharedKey ledgeraccount:")
    assert headers["x-ms-version"] == "2019-02-02"
    assert headers["x-ms-date"] and headers["x-ms-client-request-id"]
    assert headers["User-Agent"].startswith("hire-provisioning/0.1 azsdk-python-data-tables/")


def test_a_table_call_with_a_token_credential_carries_its_bearer_token() -> None:
    tokens = Tokens()
    canned = CannedHttp().answer(404, {"odata.error": {"code": "ResourceNotFound"}})
    assert _ledger(canned, tokens).get("hr-1") is None
    (request,) = canned.requests
    assert request.headers["Authorization"] == "Bearer canned-bearer-token"
    assert tokens.scopes == [("https://storage.azure.com/.default",)]


def test_the_table_client_neither_retries_nor_follows_a_redirect() -> None:
    canned = CannedHttp().answer(503, {"odata.error": {"code": "ServerBusy"}}, Retry_After="1")
    with pytest.raises(ServiceUnavailableError):
        _ledger(canned).get("hr-1")
    assert len(canned.requests) == 1
    moved = CannedHttp().answer(307, None, Location="https://elsewhere.example/hireledger")
    with pytest.raises(Exception):  # noqa: B017 - what matters: no second request
        _ledger(moved).get("hr-1")
    assert len(moved.requests) == 1


def test_a_paged_table_query_still_reads_its_location_mode() -> None:
    # Paged queries read the location mode the storage policies record (kept for that).
    canned = CannedHttp().answer(200, {"value": []})
    client = _ledger(canned)._client
    assert list(client.query_entities("PartitionKey eq 'ab'")) == []


def _vault(canned: CannedHttp) -> KeyVaultSecretStore:
    client = secret_client(
        VAULT,
        Tokens(),  # type: ignore[arg-type]
        transport=_mounted(secret_transport(), canned),
    )
    return KeyVaultSecretStore(client)


def _bundle(name: str) -> dict[str, object]:
    return {
        "value": PASSWORD,
        "id": f"{VAULT}/secrets/{name}/0123456789abcdef",
        "attributes": {"enabled": True, "created": 1764000000, "updated": 1764000000},
    }


def test_the_key_vault_pipeline_keeps_its_challenge_authentication() -> None:
    store = _vault(CannedHttp())
    assert _policies(store._client) == [
        "RequestIdPolicy",
        "HeadersPolicy",
        "ContentDecodePolicy",
        "ChallengeAuthPolicy",
    ]


def test_a_secret_write_answers_the_challenge_with_a_bearer_token() -> None:
    canned = (
        CannedHttp()
        .answer(401, {"error": {"code": "Unauthorized"}}, WWW_Authenticate=CHALLENGE)
        .answer(200, _bundle("initial-password-x"))
    )
    stored = _vault(canned).set("initial-password-x", PASSWORD)
    assert stored.version == "0123456789abcdef"
    challenge, write = canned.requests
    assert "Authorization" not in challenge.headers
    assert write.headers["Authorization"] == "Bearer canned-bearer-token"
    assert write.headers["User-Agent"].startswith(
        "hire-provisioning/0.1 azsdk-python-keyvault-secrets/"
    )
    assert write.headers["x-ms-client-request-id"]


def test_the_key_vault_client_does_not_retry() -> None:
    canned = (
        CannedHttp()
        .answer(401, {"error": {"code": "Unauthorized"}}, WWW_Authenticate=CHALLENGE)
        .answer(503, {"error": {"code": "ServiceUnavailable", "message": "busy"}},
                Retry_After="2")
    )
    with pytest.raises(ServiceUnavailableError):
        _vault(canned).set("initial-password-x", PASSWORD)
    assert len(canned.requests) == 2  # the challenge and the one write


def test_no_request_or_answer_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    canned = (
        CannedHttp()
        .answer(401, {"error": {"code": "Unauthorized"}}, WWW_Authenticate=CHALLENGE)
        .answer(200, _bundle("initial-password-x"))
    )
    with caplog.at_level(logging.DEBUG):
        _vault(canned).set("initial-password-x", PASSWORD)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert PASSWORD not in logged
    assert "canned-bearer-token" not in logged
    assert not [r for r in caplog.records if r.name.startswith("azure.core.pipeline.policies")]


def test_the_canned_session_helper_is_unchanged() -> None:
    # The wire tests' own transport still works with the lean clients (no user agent there).
    canned = CannedHttp().answer(404, {"odata.error": {"code": "ResourceNotFound"}})
    client = LeanTableClient(
        ENDPOINT,
        TABLE,
        credential=AzureNamedKeyCredential("ledgeraccount", KEY),
        transport=RequestsTransport(session=session_with(canned), session_owner=False),
    )
    assert TableHireLedger(client, read_only=True).get("hr-1") is None
