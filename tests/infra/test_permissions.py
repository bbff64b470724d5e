"""The permission model (infra/permissions.json, docs/permissions.md) against the template.

Azurite checks no roles, so this is the only place a missing action (or a needless one) can
show before Azure does: every operation the host, the platform, the function's code and the
operators perform needs its RBAC actions granted by an assignment in infra/, and every
action an assignment grants is needed by some operation or is on the commented allow-list.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from tests.infra import bicep, permissions

BEFORE_ISSUE_16 = Path(__file__).parent / "fixtures" / "before-issue-16"


def test_every_principal_has_every_action_it_needs_and_nothing_beyond_the_allow_list() -> None:
    assert permissions.problems() == []


def test_the_roles_before_issue_16_fail_the_check_on_the_request_queue() -> None:
    # The template as it was: Reader + Message Processor on the request queue cannot release
    # a failed delivery (Update Message needs messages/write), and the host stops on the 403.
    found = permissions.problems(BEFORE_ISSUE_16)
    assert any(
        problem.startswith("function cannot Update Message on requestQueue")
        and "queues/messages/write" in problem
        for problem in found
    ), found
    # ... and the rest of what the issue lists: vault-wide Secrets Officer (delete, purge),
    # Secrets User's metadata, operators able to delete the poison queue.
    assert any("Key Vault Secrets Officer" in p and "secrets/*" in p for p in found)
    assert any("readMetadata/action on credentialsVault" in p for p in found)
    assert any("operators" in p and "queues/delete on poisonQueue" in p for p in found)


def test_a_vault_wide_set_shows_as_reaching_the_secrets_that_do_not_need_it() -> None:
    model = permissions.load()
    model["allowed"] = [
        entry for entry in model["allowed"] if entry["resource"] != "credentialsVault"
    ]
    found = permissions.problems(model=model)
    assert any(
        "setSecret/action on credentialsVault" in p
        and "appIdSecret" in p
        and "appSecretSecret" in p
        and "refreshTokenSecret" not in p
        for p in found
    ), found


def test_a_missing_role_is_found() -> None:
    model = permissions.load()
    grants = [
        g
        for g in permissions.grants(model=model)
        if not (g.principal == "function" and g.resource == "ledger")
    ]
    found = permissions.missing(model, grants)
    assert {p.split(" (")[0] for p in found} == {
        "function cannot Query Entities on ledger",
        "function cannot Insert Entity on ledger",
        "function cannot Merge Entity on ledger",
    }


def test_an_allowance_nothing_grants_is_reported() -> None:
    model = copy.deepcopy(permissions.load())
    model["allowed"].append(
        {"principal": "operators", "resource": "ledger", "actions": ["x/y"], "why": "test"}
    )
    assert permissions.unused_allowances(model, permissions.grants(model=model)) == [
        "allowed operators x/y on ledger is granted by nothing"
    ]


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("Microsoft.Storage/a/*", "Microsoft.Storage/a/b/c", True),
        ("microsoft.storage/a/B", "Microsoft.Storage/a/b", True),
        ("Microsoft.Storage/*/read", "Microsoft.Storage/a/write", False),
        ("Microsoft.Storage/a/b", "Microsoft.Storage/a/bc", False),
    ],
)
def test_action_patterns_match_as_azure_rbac_does(
    pattern: str, action: str, expected: bool
) -> None:
    assert permissions.matches(pattern, action) is expected


def test_the_model_names_only_things_it_defines_and_the_template_declares() -> None:
    model = permissions.load()
    resources = model["resources"]
    for key, resource in resources.items():
        assert resource["parent"] is None or resource["parent"] in resources, key
        assert resource["what"], key
        for location in resource["bicep"]:
            # Declared in the template, or in the fixture of the template before issue 16.
            file, symbol = location.split("#")
            declared = [
                root / file for root in (bicep.INFRA, BEFORE_ISSUE_16) if (root / file).exists()
            ]
            assert any(
                re.search(rf"^resource {symbol} ", path.read_text("utf-8"), re.MULTILINE)
                for path in declared
            ), f"{key}: {location} is declared nowhere"
    for row in model["operations"]:
        assert row["principal"] in model["principals"], row
        assert row["resource"] in resources, row
        assert row["operation"] in model["restOperations"], row
        assert row["by"] and row["what"], row
    for name, operation in model["restOperations"].items():
        assert operation["source"].startswith("https://learn.microsoft.com/"), name
        assert operation["requires"] and all(operation["requires"]), name
    for entry in model["allowed"]:
        assert len(entry["why"]) > 40, entry  # a reason, not a shrug
    for role_id, role in model["builtInRoles"].items():
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", role_id
        )
        assert role["source"].startswith("https://learn.microsoft.com/"), role["name"]


def test_every_role_the_template_assigns_is_a_recorded_built_in_or_its_own_custom_role() -> None:
    model = permissions.load()
    custom = bicep.custom_roles()
    for assignment in bicep.role_assignments():
        if assignment.custom:
            assert assignment.role in custom, assignment
        else:
            assert assignment.role in model["builtInRoles"], assignment


def test_custom_roles_grant_no_wildcard_and_no_control_plane_write() -> None:
    for role in bicep.custom_roles().values():
        granted = role.actions + role.data_actions
        assert granted and not any("*" in action for action in granted), role
        assert all(action.endswith("/read") for action in role.actions), role


# SDK calls the code makes, by the REST operation each one is.
SDK_CALLS = {
    "send_message": "Put Message",
    "receive_messages": "Get Messages",
    "update_message": "Update Message",
    "delete_message": "Delete Message",
    "peek_messages": "Peek Messages",
    "get_queue_properties": "Get Queue Metadata",
    "get_entity": "Query Entities",
    "query_entities": "Query Entities",
    "list_entities": "Query Entities",
    "create_entity": "Insert Entity",
    "update_entity": "Merge Entity",
    "get_secret": "Get Secret",
    "set_secret": "Set Secret",
}
# Calls the model leaves out on purpose, and why.
NOT_NEEDED = {
    "create_queue": "the poison copy's create-on-404; the template creates every queue",
    "create_table": "the ledger's first call; the template creates the table and a 403 is "
    "tolerated (shared/adapters/ledger.py)",
}


@pytest.mark.parametrize(("principal", "folder"), [("function", "shared"), ("operators", "ops")])
def test_every_storage_and_vault_call_in_the_code_is_an_operation_of_the_model(
    principal: str, folder: str
) -> None:
    model = permissions.load()
    modelled = {row["operation"] for row in model["operations"] if row["principal"] == principal}
    calls = set()
    for path in (bicep.ROOT / folder).rglob("*.py"):
        calls.update(re.findall(r"\.(\w+)\(", path.read_text(encoding="utf-8")))
    storage_calls = calls & (set(SDK_CALLS) | set(NOT_NEEDED))
    assert storage_calls, "the scan found no SDK call at all"
    for call in sorted(storage_calls - set(NOT_NEEDED)):
        assert SDK_CALLS[call] in modelled, f"{folder}/ calls {call}: no {SDK_CALLS[call]} row"
