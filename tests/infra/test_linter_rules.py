"""Rules of the Bicep linter that checkov does not check (the Bicep CLI cannot be installed
here), and Flex Consumption's list of unsupported properties, read from the template's text."""

from __future__ import annotations

import re

import pytest

from tests.infra import bicep

FILES = sorted(path.relative_to(bicep.INFRA).as_posix() for path in bicep.INFRA.rglob("*.bicep"))

# The Bicep linter's no-hardcoded-env-urls list: hosts that differ between Azure clouds and
# belong to environment() instead.
ENVIRONMENT_HOSTS = (
    "management.core.windows.net",
    "gallery.azure.com",
    "management.azure.com",
    "database.windows.net",
    "core.windows.net",
    "login.microsoftonline.com",
    "graph.windows.net",
    "trafficmanager.net",
    "vault.azure.net",
    "datalake.azure.net",
    "azuredatalakestore.net",
    "azuredatalakeanalytics.net",
    "api.loganalytics.io",
    "asazure.windows.net",
    "batch.core.windows.net",
)

# siteConfig properties Flex Consumption does not support (Microsoft's Flex Consumption
# deprecation list); the template must not set them.
FLEX_UNSUPPORTED = (
    "ftpsState",
    "alwaysOn",
    "use32BitWorkerProcess",
    "linuxFxVersion",
    "netFrameworkVersion",
)


@pytest.mark.parametrize("name", FILES)
def test_no_hard_coded_environment_url(name: str) -> None:
    code = bicep.without_comments(bicep.text(name)).lower()
    found = [host for host in ENVIRONMENT_HOSTS if host in code]
    assert found == [], f"{name}: use environment() instead of {found}"


def _bodies(source: str) -> dict[str, str]:
    """Symbol -> body of every resource and module declaration."""
    bodies = {}
    for symbol in re.findall(r"^(?:resource|module)\s+(\w+)\s+'", source, re.MULTILINE):
        declaration = re.search(rf"^(?:resource|module)\s+{symbol}\s+'", source, re.MULTILINE)
        assert declaration
        bodies[symbol] = bicep.block_after(source[declaration.start() :], f" {symbol} ")
    return bodies


def needless_depends_on(source: str) -> list[str]:
    """dependsOn entries the body already references (Bicep linter: no-unnecessary-dependson)."""
    source = bicep.without_comments(source)
    found = []
    for symbol, body in _bodies(source).items():
        listed = re.search(r"^\s*dependsOn:\s*\[([^\]]*)\]", body, re.MULTILINE)
        if not listed:
            continue
        rest = body[: listed.start()] + body[listed.end() :]
        for dependency in re.findall(r"\w+", listed.group(1)):
            if re.search(rf"\b{dependency}\.", rest) or re.search(
                rf"\b(scope|parent):\s*{dependency}\b", rest
            ):
                found.append(f"{symbol} -> {dependency}")
    return found


@pytest.mark.parametrize("name", FILES)
def test_no_needless_depends_on(name: str) -> None:
    assert needless_depends_on(bicep.text(name)) == []


def test_the_needless_depends_on_check_finds_one() -> None:
    # The function app's dependsOn before issue 16: every entry is already an output it reads.
    source = """
module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  dependsOn: [storage, vaultAccess]
  params: {
    storage: storage.outputs.endpoints
    vault: vaultAccess.outputs.vaultUri
  }
}
"""
    assert needless_depends_on(source) == ["functionApp -> storage", "functionApp -> vaultAccess"]


def test_no_property_flex_consumption_does_not_support() -> None:
    app = bicep.without_comments(bicep.text("modules/function-app.bicep"))
    found = [name for name in FLEX_UNSUPPORTED if re.search(rf"\b{name}\s*:", app)]
    assert found == []


def test_new_vault_names_take_a_seed_the_azd_hooks_renew() -> None:
    main = bicep.without_comments(bicep.text("main.bicep"))
    assert re.search(r"'kv-\$\{vaultToken\}'", main) and re.search(r"'kvpw-\$\{vaultToken\}'", main)
    assert "uniqueString(subscription().id, environmentName, location, vaultNameSeed)" in main
    given = (bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8")
    assert '"vaultNameSeed": { "value": "${VAULT_NAME_SEED=}" }' in given
    azure_yaml = (bicep.ROOT / "azure.yaml").read_text(encoding="utf-8")
    hooks = azure_yaml.split("\nhooks:", 1)[1]
    assert "preprovision:" in hooks and "postdown:" in hooks
    assert hooks.count("azd env set VAULT_NAME_SEED") == 4  # posix and windows, each hook


def test_two_alerts_need_nothing_from_the_app() -> None:
    alerts = bicep.resources("modules/alerts.bicep")
    source = bicep.text("modules/alerts.bicep")
    metric = [s for s, kind in alerts.items() if kind == "Microsoft.Insights/metricAlerts"]
    health = [s for s, kind in alerts.items() if kind == "Microsoft.Insights/activityLogAlerts"]
    assert metric == ["queueBacklogAlert"] and health == ["appHealthAlert"]
    backlog = bicep.block_after(source, "resource queueBacklogAlert")
    assert "metricName: 'QueueMessageCount'" in backlog
    assert "storageAccountId}/queueServices/default" in backlog
    assert "appInsights" not in backlog
    app_health = bicep.block_after(source, "resource appHealthAlert")
    assert "'ResourceHealth'" in app_health and "scopes: [functionAppId]" in app_health
