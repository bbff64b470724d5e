import json
import queue
import signal
import stat
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import msal
import pytest
import requests
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from devtools.standins.__main__ import build_parser, configure, parse_customer, parse_subscribed_sku
from devtools.standins.demo import DEMO_CUSTOMERS, DEMO_PARTNER_TENANT_ID

from .helpers import PARTNER_CENTER_SCOPE, headers, user_body

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class RunningStandIns:
    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devtools.standins", *arguments],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 15) -> None:
        while True:
            line = self.lines.get(timeout=timeout)
            self.output.append(line)
            if text in line:
                return

    def value(self, label: str) -> str:
        (line,) = [line for line in self.output if line.startswith(f"standins: {label} ")]
        return line.removeprefix(f"standins: {label} ").split()[0]

    def stop(self, signal_number: int) -> int:
        self.process.send_signal(signal_number)
        code = self.process.wait(timeout=10)
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return code


@pytest.fixture
def state_file(tmp_path):
    return tmp_path / "state" / "standins.json"


def test_standalone_process_serves_the_demo_and_stops_on_sigint(state_file, monkeypatch):
    running = RunningStandIns(
        "--seed-demo",
        "--state-file",
        str(state_file),
        "--fault",
        "partner_center:POST /v1/customers/*/users:429:times=1,retry_after=2",
        "--config",
        "partner_center.success_status=200",
    )
    try:
        running.wait_for("ready")
        state = json.loads(state_file.read_text())
        settings = state["function_settings"][DEMO_PARTNER_TENANT_ID]
        printed = "\n".join(running.output)

        assert running.value("Partner Center") == settings["PARTNER_CENTER_BASE_URL"]
        assert running.value("Key Vault") == settings["KEY_VAULT_URL"]
        assert running.value("Entra ID") == settings["ENTRA_AUTHORITY_HOST"]
        assert running.value("Graph") == settings["GRAPH_BASE_URL"]
        assert Path(running.value("CA file")).is_file()
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        assert settings["AZURE_CLIENT_SECRET"] not in printed

        # Another process would do exactly this with the state file.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", settings["REQUESTS_CA_BUNDLE"])
        credential = ClientSecretCredential(
            settings["AZURE_TENANT_ID"],
            settings["AZURE_CLIENT_ID"],
            settings["AZURE_CLIENT_SECRET"],
            authority=settings["ENTRA_AUTHORITY_HOST"],
            disable_instance_discovery=True,
        )
        vault = SecretClient(settings["KEY_VAULT_URL"], credential, verify_challenge_resource=False)
        app_id = vault.get_secret(settings["PARTNER_CENTER_APP_ID_SECRET"]).value
        app_secret = vault.get_secret(settings["PARTNER_CENTER_APP_SECRET_SECRET"]).value
        refresh_token = vault.get_secret(settings["PARTNER_CENTER_REFRESH_TOKEN_SECRET"]).value
        token = msal.ConfidentialClientApplication(
            app_id,
            client_credential=app_secret,
            authority=f"{settings['ENTRA_AUTHORITY_HOST']}/{DEMO_PARTNER_TENANT_ID}",
            instance_discovery=False,
        ).acquire_token_by_refresh_token(refresh_token, scopes=[PARTNER_CENTER_SCOPE])[
            "access_token"
        ]

        contoso = DEMO_CUSTOMERS[0].tenant_id
        contoso_users = f"{settings['PARTNER_CENTER_BASE_URL']}/v1/customers/{contoso}/users"
        statuses = [
            requests.post(contoso_users, json=user_body(), headers=headers(token), timeout=5)
            for _ in range(2)
        ]
        assert [answer.status_code for answer in statuses] == [429, 200]
        counters = requests.get(
            f"{settings['PARTNER_CENTER_BASE_URL']}/_standin/counters", timeout=5
        ).json()
        assert counters["users_created"] == 1
    finally:
        code = running.stop(signal.SIGINT)

    assert code == 0
    assert running.output[-1] == "standins: stopped"
    assert not state_file.exists()


def test_standalone_process_stops_on_sigterm_with_fixed_port(tmp_path):
    from devtools.azurite import free_port

    port = free_port()
    running = RunningStandIns("--key-vault-port", str(port), "--cert-dir", str(tmp_path))
    running.wait_for("ready")
    assert running.value("Key Vault") == f"https://127.0.0.1:{port}"
    assert (tmp_path / "standins-ca.pem").is_file()
    assert running.stop(signal.SIGTERM) == 0
    assert (tmp_path / "standins-ca.pem").is_file()  # a chosen directory is kept


def test_standalone_process_rejects_a_bad_fault_spec():
    completed = subprocess.run(
        [sys.executable, "-m", "devtools.standins", "--fault", "partner_center:only-two"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 2
    assert "fault spec" in completed.stderr


def test_customer_spec():
    tenant_id = str(uuid.uuid4())
    parsed_tenant, domains, gdap = parse_customer(
        f"{tenant_id}:a.example,b.example=federated,c.example=unverified:no-gdap"
    )
    assert parsed_tenant == tenant_id
    assert [(d.name, d.federated, d.verified) for d in domains] == [
        ("a.example", False, True),
        ("b.example", True, True),
        ("c.example", False, False),
    ]
    assert gdap is False
    with pytest.raises(ValueError):
        parse_customer(f"{tenant_id}:a.example=weird")


def test_subscribed_sku_spec():
    tenant_id, sku_id = str(uuid.uuid4()), str(uuid.uuid4())
    assert parse_subscribed_sku(f"{tenant_id}:{sku_id}:5") == (tenant_id, sku_id, 5, "group1", None)
    assert parse_subscribed_sku(f"{tenant_id}:{sku_id}:0:group2:Minecraft: Education") == (
        tenant_id,
        sku_id,
        0,
        "group2",
        "Minecraft: Education",
    )
    for bad in (f"{tenant_id}:{sku_id}", f"{tenant_id}:{sku_id}:many", f"::{sku_id}:1"):
        with pytest.raises(ValueError, match="subscribed SKU spec"):
            parse_subscribed_sku(bad)


def test_flags_configure_skus_and_switches(standins):
    tenant_id, sku_id = str(uuid.uuid4()), str(uuid.uuid4())
    arguments = build_parser().parse_args(
        [
            "--customer",
            f"{tenant_id}:a.example",
            "--subscribed-sku",
            f"{tenant_id}:{sku_id}:4:group1:Plan",
            "--config",
            'partner_center.password_reset_path="user"',
            "--config",
            "partner_center.reset_echoes_password=false",
            "--config",
            "partner_center.duplicate_upn_status=409",
        ]
    )
    configure(standins, arguments)
    (sku,) = standins.partner_center.subscribed_skus(tenant_id)
    assert (sku["productSku"]["id"], sku["activeUnits"], sku["productSku"]["name"]) == (
        sku_id,
        4,
        "Plan",
    )
    config = standins.partner_center.config
    assert (config.password_reset_path, config.reset_echoes_password) == ("user", False)
    assert config.duplicate_upn_status == 409
    bad = build_parser().parse_args(["--config", 'partner_center.password_reset_path="x"'])
    with pytest.raises(ValueError, match="password_reset_path"):
        configure(standins, bad)


def test_graph_flags_set_consent_and_config(standins):
    tenant_id = str(uuid.uuid4())
    arguments = build_parser().parse_args(
        [
            "--customer",
            f"{tenant_id}:a.example",
            "--graph-consent",
            f"{tenant_id}:identity_not_found",
            "--config",
            "graph.replication_delay_seconds=5",
        ]
    )
    configure(standins, arguments)
    assert standins.graph.consent_of(tenant_id) == "identity_not_found"
    assert standins.graph.config.replication_delay_seconds == 5
    bad = build_parser().parse_args(["--graph-consent", f"{tenant_id}:maybe"])
    with pytest.raises(ValueError, match="consent"):
        configure(standins, bad)
