"""The hire ledger's Table Storage adapter against canned answers: the entity mapping both
ways, conditional writes, and how failures are read (shared/adapters/azure_errors.py).

The real ``TableClient`` (azure-data-tables) with the pipeline the function builds
(``LeanTableClient``, shared/adapters/sdk_pipeline.py), its requests transport answered by
``CannedHttp``: no network, no Azurite.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import pytest
import requests
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline.transport import RequestsTransport

from shared.adapters.ledger import TableHireLedger, partition_key_for, row_key_for
from shared.adapters.sdk_pipeline import LeanTableClient
from shared.domain.errors import CredentialsError, LedgerConflict, ServiceUnavailableError
from shared.domain.model import HireRecord, HireState
from shared.domain.outcomes import Category
from tests.unit.canned import CannedHttp, session_with

ENDPOINT = "https://ledgeraccount.table.core.windows.net"
TABLE = "hireledger"
# Any base64 key signs the canned requests; nothing checks the signature.
KEY = "Zm9yLXRoZS11bml0LXRpZXItb25seS1ub3QtYS1yZWFsLWtleQ=="
EVENT = "hr-2026-000123"
CUSTOMER = "4b10bf41-ab11-40e3-8c53-cd67849b50de"
SKU = "c42b9cae-ea4f-4ab7-9717-81576235ccac"
ETAG = "W/\"datetime'2026-11-21T09%3A30%3A00.1234567Z'\""
JSON = "application/json;odata=minimalmetadata;streaming=true;charset=utf-8"


def ledger(canned: CannedHttp, *, read_only: bool = True) -> TableHireLedger:
    client = LeanTableClient(
        ENDPOINT,
        TABLE,
        credential=AzureNamedKeyCredential("ledgeraccount", KEY),
        transport=RequestsTransport(session=session_with(canned), session_owner=False),
        retry_total=0,
    )
    return TableHireLedger(client, read_only=read_only)


def stored_entity(**properties: object) -> dict[str, object]:
    """An entity as the Table service returns it (JSON, minimal metadata)."""
    return {
        "odata.metadata": f"{ENDPOINT}/$metadata#{TABLE}/@Element",
        "odata.etag": ETAG,
        "PartitionKey": partition_key_for(EVENT),
        "RowKey": row_key_for(EVENT),
        "Timestamp": "2026-11-21T09:30:00.1234567Z",
        **properties,
    }


FULL = stored_entity(
    EventId=EVENT,
    CustomerTenantId=CUSTOMER,
    State="created",
    UserPrincipalName="jane.doe@contoso.onmicrosoft.com",
    PasswordSecretId="https://kv.vault.azure.net/secrets/initial-password-x/0123",
    **{"PasswordExpiresOn@odata.type": "Edm.DateTime"},
    PasswordExpiresOn="2026-11-28T09:29:58Z",
    Generation=1,
    UpnChecked=True,
    UserId="0b6f5a0e-2f4b-4a8e-9c1d-6f0e8f1b2a3c",
    Attempts=2,
    CreateCalls=1,
    ClaimOwner="delivery-1",
    **{"ClaimExpiresAt@odata.type": "Edm.DateTime"},
    ClaimExpiresAt="2026-11-21T09:34:00Z",
    LicensesAssigned=json.dumps([SKU]),
    LastFailure=json.dumps({"category": "throttled", "message": "wait", "httpStatus": 429,
                            "code": 429}),
    LastOutcome=json.dumps({"status": "created", "eventId": EVENT}),
    **{"CreatedAt@odata.type": "Edm.DateTime"},
    CreatedAt="2026-11-21T09:29:58Z",
    **{"UpdatedAt@odata.type": "Edm.DateTime"},
    UpdatedAt="2026-11-21T09:30:00Z",
    SomethingNewer="a property a later version wrote",
)


def test_a_stored_entity_reads_as_the_record_it_holds() -> None:
    canned = CannedHttp().answer(200, FULL, Content_Type=JSON, ETag=ETAG)

    record = ledger(canned).get(EVENT)

    assert record == HireRecord(
        event_id=EVENT,
        customer_tenant_id=CUSTOMER,
        state=HireState.CREATED,
        user_principal_name="jane.doe@contoso.onmicrosoft.com",
        password_secret_id="https://kv.vault.azure.net/secrets/initial-password-x/0123",
        password_expires_on=datetime(2026, 11, 28, 9, 29, 58, tzinfo=UTC),
        generation=1,
        # UpnChecked and CreateCalls are read only to rebuild the send of a creating row
        # written before sends were kept (issue 15); a created row has no unsettled send.
        user_id="0b6f5a0e-2f4b-4a8e-9c1d-6f0e8f1b2a3c",
        attempts=2,
        claim_owner="delivery-1",
        claim_expires_at=datetime(2026, 11, 21, 9, 34, tzinfo=UTC),
        licenses_assigned=(SKU,),
        last_failure={"category": "throttled", "message": "wait", "httpStatus": 429, "code": 429},
        last_outcome={"status": "created", "eventId": EVENT},
        created_at=datetime(2026, 11, 21, 9, 29, 58, tzinfo=UTC),
        updated_at=datetime(2026, 11, 21, 9, 30, tzinfo=UTC),
    )
    assert record is not None and record.etag == ETAG
    assert type(record.claim_expires_at) is datetime and record.claim_expires_at.tzinfo is UTC
    (sent,) = canned.requests
    path = unquote(urlsplit(sent.url).path)
    assert path == (
        f"/{TABLE}(PartitionKey='{partition_key_for(EVENT)}',RowKey='{row_key_for(EVENT)}')"
    )


def test_what_no_version_of_the_ledger_writes_reads_as_the_least_certain_record() -> None:
    entity = stored_entity(
        EventId=EVENT,
        CustomerTenantId=CUSTOMER,
        State="being-migrated",
        LastOutcome="{not json",
        LicensesAssigned=json.dumps({"not": "a list"}),
    )
    record = ledger(CannedHttp().answer(200, entity, Content_Type=JSON)).get(EVENT)
    assert record is not None
    assert record.state is HireState.CREATING
    assert record.last_outcome is None
    assert record.licenses_assigned == ()


def test_a_missing_hire_is_none() -> None:
    missing = {"odata.error": {"code": "ResourceNotFound",
                               "message": {"lang": "en-US", "value": "Not found."}}}
    canned = CannedHttp().answer(
        404, missing, Content_Type=JSON, x_ms_error_code="ResourceNotFound"
    )
    assert ledger(canned).get(EVENT) is None


def table_exists() -> tuple[int, dict[str, object]]:
    return 409, {"odata.error": {"code": "TableAlreadyExists",
                                 "message": {"lang": "en-US", "value": "exists"}}}


def test_a_new_record_is_inserted_with_every_property_and_its_etag_kept() -> None:
    status, body = table_exists()
    canned = (
        CannedHttp()
        .answer(status, body, Content_Type=JSON, x_ms_error_code="TableAlreadyExists")
        .answer(204, None, ETag=ETAG)
    )
    record = HireRecord(
        event_id=EVENT,
        customer_tenant_id=CUSTOMER,
        state=HireState.RESTORING,
        user_id="u-1",
        generation=2,
        licenses_assigned=(SKU,),
        claim_expires_at=datetime(2026, 11, 21, 9, 34, tzinfo=UTC),
    )

    added = ledger(canned, read_only=False).add(record)

    assert added == record and added.etag == ETAG
    create_table, insert = canned.requests
    assert urlsplit(create_table.url).path == "/Tables"
    assert (insert.method, urlsplit(insert.url).path) == ("POST", f"/{TABLE}")
    sent = json.loads(insert.body or b"{}")
    assert sent["PartitionKey"] == partition_key_for(EVENT)
    assert sent["RowKey"] == row_key_for(EVENT)
    assert sent["EventId"] == EVENT and sent["State"] == "restoring"
    assert sent["Generation"] == 2
    assert json.loads(sent["LicensesAssigned"]) == [SKU]
    assert sent["ClaimExpiresAt@odata.type"] == "Edm.DateTime"
    assert "UserPrincipalName" not in sent  # absent values are not written


def test_a_record_already_there_is_a_conflict() -> None:
    status, body = table_exists()
    exists = {"odata.error": {"code": "EntityAlreadyExists",
                              "message": {"lang": "en-US", "value": "exists"}}}
    canned = (
        CannedHttp()
        .answer(status, body, Content_Type=JSON, x_ms_error_code="TableAlreadyExists")
        .answer(409, exists, Content_Type=JSON, x_ms_error_code="EntityAlreadyExists")
    )
    with pytest.raises(LedgerConflict):
        ledger(canned, read_only=False).add(HireRecord(event_id=EVENT, customer_tenant_id=CUSTOMER))


def test_an_update_is_conditional_on_the_etag_it_was_read_with() -> None:
    status, body = table_exists()
    stale = {"odata.error": {"code": "UpdateConditionNotSatisfied",
                             "message": {"lang": "en-US", "value": "condition"}}}
    canned = (
        CannedHttp()
        .answer(status, body, Content_Type=JSON, x_ms_error_code="TableAlreadyExists")
        .answer(204, None, ETag="W/\"datetime'2026-11-21T09%3A31%3A00Z'\"")
        .answer(412, stale, Content_Type=JSON, x_ms_error_code="UpdateConditionNotSatisfied")
    )
    hires = ledger(canned, read_only=False)
    record = HireRecord(event_id=EVENT, customer_tenant_id=CUSTOMER).evolve(etag=ETAG)

    updated = hires.update(record.evolve(state=HireState.CREATING))
    assert updated.etag != ETAG
    with pytest.raises(LedgerConflict):
        hires.update(record.evolve(state=HireState.CREATING))  # the old etag: someone wrote

    first, second = canned.requests[1:]
    assert first.method == second.method == "PUT"
    assert first.headers["If-Match"] == ETAG
    with pytest.raises(LedgerConflict):
        hires.update(HireRecord(event_id=EVENT, customer_tenant_id=CUSTOMER))  # never read


# ------------------------------------------------------- failures (shared/adapters/azure_errors.py)


def failing(status: int, code: str, **headers: str) -> CannedHttp:
    body = {"odata.error": {"code": code, "message": {"lang": "en-US", "value": code}}}
    return CannedHttp().answer(status, body, Content_Type=JSON, x_ms_error_code=code, **headers)


def test_a_refusal_of_the_functions_identity_is_credentials_naming_the_role() -> None:
    with pytest.raises(CredentialsError) as raised:
        ledger(failing(403, "AuthorizationPermissionMismatch")).get(EVENT)
    failure = raised.value.failure
    assert failure.http_status == 403 and failure.code == "AuthorizationPermissionMismatch"
    assert "Storage Table Data Contributor" in failure.message


@pytest.mark.parametrize(
    ("status", "code", "category"),
    [(503, "ServerBusy", Category.THROTTLED), (429, "TooManyRequests", Category.THROTTLED),
     (500, "InternalError", Category.UNAVAILABLE), (408, "OperationTimedOut", Category.UNAVAILABLE),
     (400, "InvalidInput", Category.UNAVAILABLE)],
)
def test_busy_and_failing_answers_are_worth_another_try_after_retry_after(
    status: int, code: str, category: Category
) -> None:
    with pytest.raises(ServiceUnavailableError) as raised:
        ledger(failing(status, code, Retry_After="3")).get(EVENT)
    assert raised.value.failure.category is category
    assert raised.value.failure.http_status == status
    if status != 400:
        assert raised.value.retry_after == 3


def test_a_table_that_cannot_be_reached_is_unavailable() -> None:
    canned = CannedHttp().respond(requests.ConnectionError("connection refused"))
    with pytest.raises(ServiceUnavailableError, match="could not be reached") as raised:
        ledger(canned).get(EVENT)
    assert raised.value.failure.category is Category.UNAVAILABLE
