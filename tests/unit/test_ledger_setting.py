"""The ledger's table endpoint: a setting of its own, the old AzureWebJobsStorage__ name as a
fallback (set on deployments made before issue 16)."""

from __future__ import annotations

from shared.settings import LEDGER_TABLE_SERVICE_URI_SETTING, Settings

BASE = {"KEY_VAULT_URL": "https://kv.example", "PARTNER_TENANT_ID": "tenant"}
OLD = "AzureWebJobsStorage__tableServiceUri"


def test_the_ledger_setting_names_the_table_endpoint() -> None:
    settings = Settings.from_environment(
        {**BASE, LEDGER_TABLE_SERVICE_URI_SETTING: "https://new.table.example/"}
    )
    assert settings.storage_table_service_uri == "https://new.table.example/"


def test_the_ledger_setting_wins_over_the_old_name() -> None:
    settings = Settings.from_environment(
        {
            **BASE,
            LEDGER_TABLE_SERVICE_URI_SETTING: "https://new.table.example/",
            OLD: "https://old.table.example/",
        }
    )
    assert settings.storage_table_service_uri == "https://new.table.example/"


def test_the_old_name_still_works_alone() -> None:
    settings = Settings.from_environment({**BASE, OLD: "https://old.table.example/"})
    assert settings.storage_table_service_uri == "https://old.table.example/"


def test_neither_leaves_the_ledger_to_the_connection_string() -> None:
    assert Settings.from_environment(BASE).storage_table_service_uri is None
