"""The hire ledger on Azure Table Storage (``azure-data-tables``): the ``HireLedger`` port.

One entity per eventId. Keys are derived from a digest of the eventId, because an eventId may
hold characters table keys refuse (``/ \\ # ?``); the eventId itself is a property. Inserts
fail when the entity exists and updates carry the entity's ETag, so a record never changes
behind a reader's back (docs/contract.md section 5).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from shared.adapters.azure_errors import AzureCall, classify_azure_error
from shared.adapters.sdk_pipeline import LeanTableClient, table_transport
from shared.domain.errors import (
    CredentialsError,
    LedgerConflict,
    ProvisioningError,
    ServiceUnavailableError,
)
from shared.domain.model import HireRecord, HireState, Send, SendKind
from shared.domain.ports import LedgerQuery

# The well-known Azurite development account (public, documented by Microsoft; not a secret).
_DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
    "KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


def open_table_ledger(
    table_name: str,
    *,
    connection_string: str | None = None,
    table_service_uri: str | None = None,
    credential: TokenCredential | None = None,
    read_only: bool = False,
) -> TableHireLedger:
    """A ledger by connection string, or by service URI with an Entra identity."""
    # The decision's RetryPolicy is the one that retries: the SDK's own would stack under it.
    # The client's pipeline holds only the policies a call needs (sdk_pipeline.py).
    options: dict[str, Any] = {
        "retry_total": 0,
        "transport": table_transport(connection_timeout=5, read_timeout=10),
    }
    if connection_string:
        if connection_string.replace(" ", "").lower() == "usedevelopmentstorage=true":
            connection_string = _DEVELOPMENT_STORAGE  # the tables SDK lacks the shortcut
        client = LeanTableClient.from_connection_string(connection_string, table_name, **options)
    elif table_service_uri:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        client = LeanTableClient(table_service_uri, table_name, credential=credential, **options)
    else:
        raise ValueError("a connection string or a table service URI is needed")
    return TableHireLedger(client, read_only=read_only)


def row_key_for(event_id: str) -> str:
    return hashlib.sha256(event_id.encode("utf-8")).hexdigest()


def partition_key_for(event_id: str) -> str:
    # 256 partitions: the ledger scales out instead of queueing on one partition server.
    return row_key_for(event_id)[:2]


class TableHireLedger:
    """``HireLedger`` over a ``TableClient``; the table is created on first use.

    ``read_only`` (the operators' preview) never creates the table: a missing one reads as empty.
    """

    def __init__(self, client: TableClient, *, read_only: bool = False) -> None:
        self._client = client
        self._read_only = read_only
        self._table_ready = read_only
        self._lock = threading.Lock()

    @property
    def table_name(self) -> str:
        return str(self._client.table_name)

    def get(self, event_id: str) -> HireRecord | None:
        try:
            entity = self._call(
                self._client.get_entity,
                partition_key_for(event_id),
                row_key_for(event_id),
            )
        except ResourceNotFoundError:
            return None
        return to_record(entity)

    def add(self, record: HireRecord) -> HireRecord:
        entity = to_entity(record)
        try:
            metadata = self._call(self._client.create_entity, entity)
        except ResourceExistsError:
            raise LedgerConflict(f"hire {record.event_id!r} is already in the ledger") from None
        return record.evolve(etag=_etag(metadata))

    def update(self, record: HireRecord) -> HireRecord:
        if record.etag is None:
            raise LedgerConflict("a record must be read before it is changed")
        entity = to_entity(record)
        try:
            metadata = self._call(
                self._client.update_entity,
                entity,
                mode=UpdateMode.REPLACE,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise LedgerConflict(
                f"hire {record.event_id!r} was changed by another delivery"
            ) from None
        return record.evolve(etag=_etag(metadata))

    def query(self, query: LedgerQuery) -> Iterator[HireRecord]:
        try:
            self._ensure_table()
            for entity in self._entities(query):
                yield to_record(entity)
        except ResourceNotFoundError:
            return
        except (LedgerConflict, ProvisioningError):
            raise
        except Exception as error:
            raise _classify(error, self.table_name) from None

    # --- for the operator tools: read-only, row by row, a bad row never ends a listing ---

    @property
    def endpoint(self) -> str:
        """The table service's address, for an operator's error message."""
        return str(self._client.url)

    def table_exists(self) -> bool:
        """Whether the table is there, asked without creating it (a wrong name is not made)."""
        try:
            self._client.get_entity("-", "-")
        except ResourceNotFoundError as error:
            return not _table_missing(error)
        except Exception as error:
            raise _classify(error, self.table_name) from None
        return True

    def read_row(self, event_id: str) -> LedgerRow | None:
        """One hire's row as stored, with its record when the row can be read as one."""
        try:
            entity = self._client.get_entity(partition_key_for(event_id), row_key_for(event_id))
        except ResourceNotFoundError:
            return None
        except Exception as error:
            raise _classify(error, self.table_name) from None
        return ledger_row(entity)

    def scan(self, query: LedgerQuery) -> Iterator[LedgerRow]:
        """Like ``query`` but never creates the table and yields unreadable rows as such."""
        try:
            for entity in self._entities(query):
                yield ledger_row(entity)
        except ResourceNotFoundError:
            return
        except Exception as error:
            raise _classify(error, self.table_name) from None

    def _entities(self, query: LedgerQuery) -> Iterator[Any]:
        """The stored entities ``query`` selects, at most ``query.limit`` of them."""
        clauses, parameters = _filter(query)
        if clauses:
            entities = self._client.query_entities(" and ".join(clauses), parameters=parameters)
        else:
            entities = self._client.list_entities()
        for returned, entity in enumerate(entities):
            if query.limit is not None and returned >= query.limit:
                return
            yield entity

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        self._ensure_table()
        try:
            return method(*args, **kwargs)
        except (ResourceExistsError, ResourceModifiedError):
            raise
        except ResourceNotFoundError as error:
            if _table_missing(error) and not self._read_only:
                # Deleted behind our back (or never made, under a read-only role): once more.
                self._table_ready = False
                self._ensure_table()
                return method(*args, **kwargs)
            raise
        except Exception as error:
            raise _classify(error, self.table_name) from None

    def _ensure_table(self) -> None:
        if self._table_ready:
            return
        with self._lock:
            if self._table_ready:
                return
            try:
                self._client.create_table()
            except ResourceExistsError:
                pass
            except HttpResponseError as error:
                # 403 under a role that may write entities but not create tables: the
                # deployment creates the table up front, so carry on and let calls tell.
                if error.status_code != 403:
                    raise _classify(error, self.table_name) from None
            except Exception as error:
                raise _classify(error, self.table_name) from None
            self._table_ready = True


def _table_missing(error: ResourceNotFoundError) -> bool:
    code = getattr(error, "error_code", None) or ""
    # The SDK's TableErrorCode is a str enum: str() of it is 'TableErrorCode.TABLE_NOT_FOUND'
    # on Python 3.11, so compare its value.
    return str(getattr(code, "value", code)) == "TableNotFound"


def _etag(metadata: Any) -> str | None:
    if isinstance(metadata, dict):
        value = metadata.get("etag")
        return str(value) if value else None
    return None


def _classify(error: Exception, table: str) -> ProvisioningError:
    where = f"the hire ledger (table '{table}')"
    grant = "grant its identity 'Storage Table Data Contributor'"

    def refusal(status: int, code: str | None) -> ProvisioningError:
        if status in (401, 403):
            return CredentialsError(
                f"{where} refused the function ({status}): {grant} on the storage account",
                http_status=status,
                code=code,
            )
        # Any other answer (the adapter has read 404 and 409 already) is worth another try.
        return ServiceUnavailableError(f"{where} answered {status}", http_status=status, code=code)

    return classify_azure_error(
        error,
        AzureCall(
            service="Table Storage",
            what=f"use {where}",
            identity_advice=f"check AzureWebJobsStorage and {grant}",
            refusal=refusal,
            # Table Storage throttles with 503 ServerBusy as well as 429.
            throttling_statuses=frozenset({429, 503}),
        ),
    )


_FIELDS: dict[str, str] = {
    # record attribute -> entity property
    "event_id": "EventId",
    "customer_tenant_id": "CustomerTenantId",
    "state": "State",
    "user_principal_name": "UserPrincipalName",
    "password_secret_id": "PasswordSecretId",
    "password_expires_on": "PasswordExpiresOn",
    "generation": "Generation",
    "sends": "Sends",
    "user_id": "UserId",
    "attempts": "Attempts",
    "claim_owner": "ClaimOwner",
    "claim_expires_at": "ClaimExpiresAt",
    "licenses_assigned": "LicensesAssigned",
    "last_failure": "LastFailure",
    "last_outcome": "LastOutcome",
    "created_at": "CreatedAt",
    "updated_at": "UpdatedAt",
}
_JSON_FIELDS = frozenset({"last_failure", "last_outcome", "licenses_assigned", "sends"})
# Written for the operators' eyes (derived from ``Sends``); read only from rows written before
# the record kept its sends, to rebuild the send they stood for.
_OLD_UPN_CHECKED = "UpnChecked"
_OLD_CREATE_CALLS = "CreateCalls"


def to_entity(record: HireRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": partition_key_for(record.event_id),
        "RowKey": row_key_for(record.event_id),
    }
    for attribute, name in _FIELDS.items():
        value = getattr(record, attribute)
        if value is None or (attribute in ("licenses_assigned", "sends") and not value):
            continue  # a REPLACE drops what is not written
        if attribute == "sends":
            value = json.dumps([send.as_json() for send in value], ensure_ascii=False)
        elif attribute in _JSON_FIELDS:
            value = json.dumps(
                list(value) if isinstance(value, tuple) else value, ensure_ascii=False
            )
        elif isinstance(value, HireState):
            value = value.value
        entity[name] = value
    entity[_OLD_UPN_CHECKED] = record.upn_checked
    entity[_OLD_CREATE_CALLS] = record.create_calls
    return entity


def to_record(entity: Any) -> HireRecord:
    values: dict[str, Any] = {}
    for attribute, name in _FIELDS.items():
        value = entity.get(name)
        if value is None:
            continue
        if attribute in _JSON_FIELDS:
            try:
                value = json.loads(value)
            except (TypeError, ValueError):
                if attribute == "sends":  # never forget a send silently: unreadable record
                    raise ValueError("the record's Sends are not JSON") from None
                continue
            if attribute == "licenses_assigned":
                if not isinstance(value, list):
                    continue
                value = tuple(str(item) for item in value)
            elif attribute == "sends":
                value = _sends(value)
        elif attribute == "state":
            try:
                value = HireState(value)
            except ValueError:
                value = HireState.CREATING  # unknown: assume the least certain state
        elif isinstance(value, datetime):
            value = datetime.fromtimestamp(value.timestamp(), UTC)
        values[attribute] = value
    if "sends" not in values:
        values["sends"] = _old_sends(entity, values)
    metadata = getattr(entity, "metadata", None) or {}
    return HireRecord(**values, etag=_etag(metadata))


def _sends(value: Any) -> tuple[Send, ...]:
    """The unsettled sends. One that cannot be read makes the record unreadable (ValueError):
    a create that may have been applied is never dropped silently."""
    if not isinstance(value, list):
        raise ValueError("Sends must be a JSON array")
    return tuple(Send.from_json(item) for item in value)


def _old_sends(entity: Any, values: dict[str, Any]) -> tuple[Send, ...]:
    """A row written before the record kept its sends: CREATING meant a create of the
    recorded generation may have been applied, RESTORING that a restore may have been."""
    state = values.get("state")
    upn = values.get("user_principal_name")
    if state is HireState.CREATING and upn:
        calls = entity.get(_OLD_CREATE_CALLS)
        return (
            Send(
                kind=SendKind.CREATE,
                user_principal_name=upn,
                generation=int(values.get("generation") or 0),
                upn_checked=bool(entity.get(_OLD_UPN_CHECKED)),
                password_secret_id=values.get("password_secret_id"),
                password_expires_on=values.get("password_expires_on"),
                calls=max(1, int(calls)) if isinstance(calls, int) else 1,
                identity_known=False,
            ),
        )
    if state is HireState.RESTORING and upn and values.get("user_id"):
        return (
            Send(
                kind=SendKind.RESTORE,
                user_principal_name=upn,
                password_secret_id=values.get("password_secret_id"),
                password_expires_on=values.get("password_expires_on"),
                user_id=values["user_id"],
                calls=1,
                identity_known=False,
            ),
        )
    return ()


@dataclass(frozen=True)
class LedgerRow:
    """A stored row for an operator: its properties as stored, and the record they make
    (None, with ``problem`` saying why, when they make none)."""

    properties: dict[str, Any]
    record: HireRecord | None
    problem: str | None = None

    @property
    def event_id(self) -> str | None:
        value = self.properties.get("EventId")
        return value if isinstance(value, str) else None


def ledger_row(entity: Any) -> LedgerRow:
    properties = {str(key): value for key, value in dict(entity).items()}
    try:
        return LedgerRow(properties, to_record(entity))
    except Exception as error:  # any shape a foreign writer left: shown, never fatal
        return LedgerRow(properties, None, f"{type(error).__name__}: {error}")


def _filter(query: LedgerQuery) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    parameters: dict[str, Any] = {}
    if query.customer_tenant_id:
        clauses.append("CustomerTenantId eq @customer")
        parameters["customer"] = query.customer_tenant_id
    if query.since:
        clauses.append("UpdatedAt ge @since")
        parameters["since"] = query.since
    if query.states:
        names = sorted(state.value for state in query.states)
        alternatives = []
        for index, name in enumerate(names):
            alternatives.append(f"State eq @state{index}")
            parameters[f"state{index}"] = name
        # Spaces around the parentheses: the SDK finds parameters by splitting on spaces.
        clauses.append("( " + " or ".join(alternatives) + " )")
    return clauses, parameters
