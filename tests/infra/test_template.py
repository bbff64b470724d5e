"""The Bicep template sets every setting the function reads and grants every role that
docs/deployment.md names, no more and no fewer; the Python pins install on every Python the
app deploys on."""

from __future__ import annotations

import json
import re

import pytest
from packaging.requirements import Requirement

from shared import settings as app_settings
from tests.infra import bicep

# docs/contract.md section 4, by name: the test must not need the team folder to run.
CONTRACT_SETTINGS = {
    "AzureWebJobsStorage__queueServiceUri",  # identity-based form of AzureWebJobsStorage
    "REQUEST_QUEUE_NAME",
    "RESULT_QUEUE_NAME",
    "KEY_VAULT_URL",
    "PARTNER_TENANT_ID",
    "PARTNER_CENTER_APP_ID_SECRET",
    "PARTNER_CENTER_APP_SECRET_SECRET",
    "PARTNER_CENTER_REFRESH_TOKEN_SECRET",
    "PARTNER_CENTER_BASE_URL",
    "ENTRA_AUTHORITY_HOST",
    "INITIAL_PASSWORD_VAULT_URL",
    "INITIAL_PASSWORD_TTL_DAYS",
    "HIRE_LEDGER_TABLE",
    "UPN_TEMPLATE",
}

# Settings of local.settings.sample.json that must not be app settings in Azure, and why.
LOCAL_ONLY = {
    "AzureWebJobsStorage": "a connection string; Azure uses the identity-based __* settings",
    "FUNCTIONS_WORKER_RUNTIME": "Flex Consumption takes the runtime from functionAppConfig",
    "AZURE_TENANT_ID": "the client_secret credential, for the local stand-ins only",
    "AZURE_CLIENT_SECRET": "the client_secret credential, for the local stand-ins only",
    "REQUESTS_CA_BUNDLE": "the local stand-ins' CA",
    "CURL_CA_BUNDLE": "requests' other name for REQUESTS_CA_BUNDLE; Azure needs neither",
}

# Settings the code still reads, but only as a fallback for older deployments.
FALLBACK_ONLY = {
    "AzureWebJobsStorage__tableServiceUri": "the ledger's endpoint before "
    "HIRE_LEDGER_TABLE_SERVICE_URI; as an app setting it also switches on the host's "
    "diagnostic tables",
}

# Environment variables the platform sets by itself, never app settings, and why.
PLATFORM = {
    "WEBSITE_AUTH_ENABLED": "App Service sets it when its authentication is on "
    "(infra/modules/intake-auth.bicep); as an app setting it would claim a protection that "
    "may not be there",
}

# Settings that would put a secret or a key into the app's configuration.
FORBIDDEN = {
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__tableServiceUri",
    "AZURE_CLIENT_SECRET",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
    "FUNCTIONS_WORKER_RUNTIME",
    "REQUESTS_CA_BUNDLE",
}

# Built-in Azure roles (their ids are the same in every tenant).
BUILT_IN_ROLES = {
    "Storage Queue Data Reader": "19e7f393-937e-4f77-808e-94535e297925",
    "Storage Queue Data Message Processor": "8a0f0c08-91a1-4084-bc3d-661d67233fed",
    "Storage Queue Data Message Sender": "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Storage Table Data Reader": "76199698-9eea-4c19-bc75-cec21354c6b6",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}

# How the roles table (docs/deployment.md) names the kind of resource a role is scoped to.
SCOPE_WORDS = {
    "Microsoft.Storage/storageAccounts/queueServices/queues": "queue",
    "Microsoft.Storage/storageAccounts/tableServices/tables": "table",
    "Microsoft.Storage/storageAccounts": "storage account",
    "Microsoft.KeyVault/vaults": "vault",
    "Microsoft.KeyVault/vaults/secrets": "secret",
    "Microsoft.Insights/components": "application insights",
}


def deployed_settings() -> dict[str, str]:
    """App setting name -> its Bicep expression, as main.bicep and function-app.bicep set them."""
    found: dict[str, str] = {}
    for name, anchor in (
        ("main.bicep", "    settings: {"),
        ("modules/function-app.bicep", "var appSettings = union(settings, {"),
    ):
        block = bicep.block_after(bicep.text(name), anchor)
        for key in bicep.top_level_keys(block):
            value = re.search(rf"^\s*{key}:\s*(.+)$", block, re.MULTILINE)
            assert value, key
            found[key] = value.group(1).strip()
    return found


def settings_the_code_reads() -> set[str]:
    names: set[str] = set()
    for path in [*bicep.ROOT.joinpath("shared").glob("*.py"), bicep.ROOT / "function_app.py"]:
        source = path.read_text(encoding="utf-8")
        names.update(
            re.findall(
                r"(?:\boptional|\brequired|getenv|env\.get|environ\.get)\(\s*\"([A-Za-z]\w*)\"",
                source,
            )
        )
        names.update(re.findall(r"environ\[\s*\"([A-Za-z][A-Za-z0-9_]*)\"\s*\]", source))
        names.update(
            f"{app_settings.STORAGE_CONNECTION_SETTING}__{suffix}"
            for suffix in re.findall(r"\{STORAGE_CONNECTION_SETTING\}__(\w+)", source)
        )
        # Binding expressions: queue_name="%REQUEST_QUEUE_NAME%".
        names.update(re.findall(r"\"%([A-Z][A-Z0-9_]*)%\"", source))
        names.update(
            getattr(app_settings, constant)
            for constant in re.findall(r"env\.get\(\s*(\w+_SETTING)\b", source)
            if hasattr(app_settings, constant)
        )
    return names - set(LOCAL_ONLY) - set(FALLBACK_ONLY) - set(PLATFORM)


def sample_settings() -> set[str]:
    sample = json.loads((bicep.ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
    return set(sample["Values"])


def test_the_template_sets_every_contract_setting() -> None:
    assert CONTRACT_SETTINGS - set(deployed_settings()) == set()


def test_the_template_sets_every_setting_of_the_sample_file_that_azure_needs() -> None:
    missing = sample_settings() - set(LOCAL_ONLY) - set(deployed_settings())
    assert missing == set(), "set these in infra/ or explain in LOCAL_ONLY why Azure has none"


def test_the_template_sets_every_setting_the_code_reads() -> None:
    read = settings_the_code_reads()
    assert {"KEY_VAULT_URL", "REQUEST_QUEUE_NAME", "AzureWebJobsStorage__queueServiceUri"} <= read
    assert read - set(deployed_settings()) == set()


def test_no_secret_or_key_is_an_app_setting() -> None:
    deployed = deployed_settings()
    assert FORBIDDEN & set(deployed) == set()
    for value in deployed.values():
        assert "AccountKey" not in value and "InstrumentationKey" not in value


def test_identity_based_storage_covers_queues_and_blobs_and_the_ledger_its_table() -> None:
    deployed = deployed_settings()
    assert deployed["AzureWebJobsStorage__credential"] == "'managedidentity'"
    for service in ("queue", "blob"):
        assert deployed[f"AzureWebJobsStorage__{service}ServiceUri"] == f"storage.{service}"
    # The ledger's endpoint in a setting of its own: AzureWebJobsStorage__tableServiceUri would
    # switch on the host's diagnostic tables (and 403s without account-wide table rights).
    assert deployed[app_settings.LEDGER_TABLE_SERVICE_URI_SETTING] == "storage.table"
    assert "AzureWebJobsStorage__tableServiceUri" not in deployed
    # DefaultAzureCredential and the storage connection use the user-assigned identity.
    assert deployed["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert deployed["AZURE_CLIENT_ID"] == "identityClientId"
    assert deployed["KEY_VAULT_CREDENTIAL"] == "'default'"


def test_application_insights_takes_entra_authentication_only() -> None:
    deployed = deployed_settings()
    assert deployed["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "'ClientId=${identityClientId};Authorization=AAD'"
    )
    # Alerts count decision lines: sampling must not drop any.
    sampling = "AzureFunctionsJobHost__logging__applicationInsights__samplingSettings__isEnabled"
    assert deployed[sampling] == "'false'"
    monitoring = bicep.without_comments(bicep.text("modules/monitoring.bicep"))
    assert re.search(r"DisableLocalAuth:\s*true", monitoring)


def test_parameter_defaults_are_the_contract_defaults() -> None:
    main = bicep.params("main.bicep")
    expected = {
        "requestQueueName": app_settings.DEFAULT_REQUEST_QUEUE,
        "resultQueueName": app_settings.DEFAULT_RESULT_QUEUE,
        "partnerCenterBaseUrl": app_settings.DEFAULT_PARTNER_CENTER_BASE_URL,
        "hireLedgerTable": "hireledger",
        "upnTemplate": "{firstName}.{lastName}",
        "initialPasswordTtlDays": 7,
        "hireClaimSeconds": 240,
        "upnLookup": app_settings.DEFAULT_UPN_LOOKUP,
        "graphBaseUrl": app_settings.DEFAULT_GRAPH_BASE_URL,
    }
    sample = json.loads((bicep.ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
    for setting, parameter in (
        ("PARTNER_CENTER_APP_ID_SECRET", "appIdSecretName"),
        ("PARTNER_CENTER_APP_SECRET_SECRET", "appSecretSecretName"),
        ("PARTNER_CENTER_REFRESH_TOKEN_SECRET", "refreshTokenSecretName"),
    ):
        expected[parameter] = sample["Values"][setting]
    assert {name: bicep.literal(main[name].default) for name in expected} == expected
    # The sign-in host is the cloud's own (Bicep linter: no hard-coded environment URLs); in the
    # public cloud that is the contract's default plus the slash the function strips.
    assert main["entraAuthorityHost"].default == "environment().authentication.loginEndpoint"
    assert app_settings.DEFAULT_ENTRA_AUTHORITY_HOST == "https://login.microsoftonline.com"


def test_azd_parameters_name_only_template_parameters_and_give_every_required_one() -> None:
    main = bicep.params("main.bicep")
    given = json.loads(bicep.text("main.parameters.json"))["parameters"]
    assert set(given) - set(main) == set()
    assert {name for name, p in main.items() if p.default is None} - set(given) == set()


def test_queues_and_the_ledger_table_are_created_up_front() -> None:
    storage = bicep.resources("modules/storage-data.bicep")
    kinds = sorted(storage.values())
    assert kinds.count("Microsoft.Storage/storageAccounts/queueServices/queues") == 3
    assert kinds.count("Microsoft.Storage/storageAccounts/tableServices/tables") == 1
    source = bicep.text("modules/storage-data.bicep")
    assert "name: '${requestQueueName}-poison'" in source


def test_new_storage_and_vaults_are_locked_down() -> None:
    storage = bicep.without_comments(bicep.text("modules/storage-account.bicep"))
    assert re.search(r"allowSharedKeyAccess:\s*false", storage)
    assert re.search(r"allowBlobPublicAccess:\s*false", storage)
    vault = bicep.without_comments(bicep.text("modules/key-vault.bicep"))
    for rule in ("enableRbacAuthorization", "enableSoftDelete", "enablePurgeProtection"):
        assert re.search(rf"{rule}:\s*true", vault), rule


def test_role_ids_are_the_built_in_roles() -> None:
    known = set(BUILT_IN_ROLES.values())
    for path in sorted(bicep.INFRA.rglob("*.bicep")):
        for role_id in re.findall(r"'([0-9a-f]{8}-[0-9a-f-]{27})'", path.read_text("utf-8")):
            assert role_id in known, f"{path.name}: {role_id} is no role this test knows"


def deployment_doc() -> str:
    """The deployment guide, which names the concurrency the template sets."""
    return (bicep.ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")


def documented_roles() -> list[tuple[str, str, str]]:
    """(role, who, scope) rows of the roles table in docs/deployment-roles.md."""
    doc = (bicep.ROOT / "docs" / "deployment-roles.md").read_text(encoding="utf-8")
    table = doc.split("## Roles", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("**"):
            rows.append((cells[0].strip("*"), cells[1], cells[2]))
    return rows


def role_names() -> dict[str, str]:
    """Role (built-in id or custom-roles.bicep symbol) -> the name the docs use for it."""
    names = {role_id: name for name, role_id in BUILT_IN_ROLES.items()}
    source = bicep.text("modules/custom-roles.bicep")
    for symbol in bicep.custom_roles():
        body = bicep.block_after(source, f"resource {symbol} ")
        match = re.search(r"roleName:\s*'([^'(]+?)\s*\(", body)
        assert match, symbol
        names[symbol] = match.group(1)
    return names


def test_the_docs_name_every_role_the_template_assigns_and_where() -> None:
    rows = documented_roles()
    assert rows, "docs/deployment-roles.md has no roles table"
    names = role_names()
    for assignment in bicep.role_assignments():
        who = "function" if assignment.principal == "principalId" else "operators"
        word = SCOPE_WORDS[assignment.scope_type]
        assert any(
            names[assignment.role] == role and who in row_who.lower() and word in scope.lower()
            for role, row_who, scope in rows
        ), f"docs/deployment-roles.md lacks {assignment.symbol} ({assignment.file}) on a {word}"


def test_the_template_assigns_every_role_the_docs_name() -> None:
    names = role_names()
    assigned = {(names[a.role], SCOPE_WORDS[a.scope_type]) for a in bicep.role_assignments()}
    for role, _who, scope in documented_roles():
        assert role in names.values(), f"the docs name an unknown role: {role}"
        assert any(name == role and word in scope.lower() for name, word in assigned), (
            f"the template does not assign {role} on {scope}"
        )


def test_the_credentials_step_names_the_deployed_roles() -> None:
    doc = deployment_doc()
    section = doc.split("## Putting the credentials into Key Vault", 1)[1].split("\n## ", 1)[0]
    step = section.split("5. ", 1)[1]
    assert "**Hire provisioning secret reader and writer**" in step
    assert "Secrets Officer" not in step and "Secrets User" not in step
    assert "system-assigned" not in step
    assert "CREDENTIAL_SECRETS_STORED" not in doc  # no manual narrowing step any more


def test_per_instance_concurrency_defaults_are_host_json() -> None:
    host = json.loads((bicep.ROOT / "host.json").read_text(encoding="utf-8"))
    queues = host["extensions"]["queues"]
    main = bicep.params("main.bicep")
    assert bicep.literal(main["queueBatchSize"].default) == queues["batchSize"]
    assert bicep.literal(main["queueNewBatchThreshold"].default) == queues["newBatchThreshold"]
    instances = int(bicep.literal(main["maximumInstanceCount"].default) or 0)
    total = instances * (queues["batchSize"] + queues["newBatchThreshold"])
    doc = deployment_doc()
    assert f"at most **{total}** invocations at once" in doc


def test_the_deployed_python_is_one_the_code_and_ci_support() -> None:
    python = bicep.params("main.bicep")["pythonVersion"]
    assert bicep.literal(python.default) == "3.11"
    allowed = re.search(r"@allowed\(\[([^\]]*)\]\)\s*param pythonVersion", bicep.text("main.bicep"))
    assert allowed
    versions = re.findall(r"'(3\.\d+)'", allowed.group(1))
    assert versions and all((3, 11) <= tuple(map(int, v.split("."))) <= (3, 13) for v in versions)


@pytest.mark.parametrize("python_version", ["3.10", "3.11", "3.12", "3.13"])
def test_exactly_one_azure_functions_pin_applies_on_each_python(python_version: str) -> None:
    # requirements.txt (the hashed lock) is checked by test_deploy_lock.py.
    for name in ("requirements.in", "constraints.txt"):
        lines = (bicep.ROOT / name).read_text(encoding="utf-8").splitlines()
        pins = [
            Requirement(line)
            for line in lines
            if line.startswith("azure-functions")
        ]
        applying = [
            pin
            for pin in pins
            if pin.marker is None or pin.marker.evaluate({"python_version": python_version})
        ]
        assert len(applying) == 1, (name, python_version)
        major = 2 if python_version == "3.13" else 1
        assert str(applying[0].specifier).startswith(f"=={major}."), (name, python_version)


def test_the_deployment_package_leaves_out_infra_and_dev_material() -> None:
    ignored = (bicep.ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    for entry in ("infra/", "azure.yaml", ".azure/", "tests/", "devtools/", "scripts/"):
        assert entry in ignored


def test_on_call_alerts_cover_credentials_poison_copies_and_the_failure_rate() -> None:
    alerts = bicep.text("modules/alerts.bicep")
    rules = [
        symbol
        for symbol, kind in bicep.resources("modules/alerts.bicep").items()
        if kind == "Microsoft.Insights/scheduledQueryRules"
    ]
    assert sorted(rules) == ["credentialsAlert", "failureRateAlert", "poisonAlert"]
    credentials = bicep.block_after(alerts, "resource credentialsAlert")
    assert 'where category == "credentials"' in credentials
    poison = bicep.block_after(alerts, "resource poisonAlert")
    assert 'status in ("rejected", "failed")' in poison
    assert "Moving message to queue" in poison  # the host's own poison copies
    assert "failureRateThresholdPercent" in bicep.block_after(alerts, "resource failureRateAlert")
