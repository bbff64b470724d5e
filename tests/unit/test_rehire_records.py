"""The ledger entity and the settings for schema 1.1 (no I/O)."""

from __future__ import annotations

from typing import ClassVar

import pytest

from shared.adapters.ledger import to_entity, to_record
from shared.domain.model import HireRecord, HireState
from shared.settings import Settings, SettingsError

SKU = "c42b9cae-ea4f-4ab7-9717-81576235ccac"


def test_a_restoring_record_with_licences_survives_the_table_entity() -> None:
    record = HireRecord(
        event_id="hr-1",
        customer_tenant_id="4b10bf41-ab11-40e3-8c53-cd67849b50de",
        state=HireState.RESTORING,
        user_id="u1",
        licenses_assigned=(SKU,),
    )
    entity = to_entity(record)
    assert entity["LicensesAssigned"] == f'["{SKU}"]'
    assert to_record(entity) == record


def test_a_record_without_licences_writes_no_licence_property() -> None:
    record = HireRecord(event_id="hr-1", customer_tenant_id="c")
    assert "LicensesAssigned" not in to_entity(record)
    assert to_record(to_entity(record)).licenses_assigned == ()


def test_a_bad_upn_template_stops_the_start_with_the_rule() -> None:
    environ = {"KEY_VAULT_URL": "https://v.vault.azure.net", "PARTNER_TENANT_ID": "t"}
    assert Settings.from_environment({**environ, "UPN_TEMPLATE": "{firstName[0]}{lastName}"})
    with pytest.raises(SettingsError, match="UPN_TEMPLATE: unknown placeholder"):
        Settings.from_environment({**environ, "UPN_TEMPLATE": "{surname}"})


def test_unsettled_sends_survive_the_table_entity() -> None:
    from datetime import UTC, datetime

    from shared.adapters.ledger import to_entity, to_record
    from shared.domain.model import HireRecord, SecretRef, SendKind

    record = (
        HireRecord(event_id="hr-9", customer_tenant_id="c")
        .password_recorded(SecretRef(id="https://v/secrets/p/1", expires_on=datetime.now(UTC)))
        .create_sent("jane@contoso.com", immutable_id="E1", upn_checked=False)
        .create_sent("jane@contoso.com", immutable_id="E1", upn_checked=False)  # a repeat
        .refused({"category": "permission"})
        .restore_sent("u-1", "jane@contoso.com", immutable_id="E1")
    )
    read = to_record(_Entity(to_entity(record)))
    assert read.sends == record.sends
    assert [send.kind for send in read.sends] == [SendKind.CREATE, SendKind.RESTORE]
    assert to_record(_Entity(to_entity(read))) == read


def test_a_row_written_before_sends_were_kept_still_knows_its_create() -> None:
    from shared.adapters.ledger import to_record
    from shared.domain.model import HireState, SendKind

    row = {
        "EventId": "hr-8",
        "CustomerTenantId": "c",
        "State": "creating",
        "UserPrincipalName": "jane@contoso.com",
        "PasswordSecretId": "https://v/secrets/p/1",
        "Generation": 2,
        "UpnChecked": True,
        "CreateCalls": 3,
    }
    record = to_record(_Entity(row))
    assert record.state is HireState.CREATING
    (send,) = record.sends
    assert send.kind is SendKind.CREATE and send.generation == 2 and send.upn_checked
    assert send.calls == 3 and record.create_calls == 3


class _Entity(dict):  # type: ignore[type-arg]
    metadata: ClassVar[dict[str, str]] = {}
