"""Run the stand-ins as a process: ``python -m devtools.standins`` (console script ``standins``).

Prints where each stand-in listens and where the CA file is, never a secret; writes the
credentials other processes need to ``--state-file`` (mode 0600) instead. Stops cleanly on
Ctrl-C or SIGTERM. See README.md in this folder for the flags and the control endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from .demo import DEMO_CUSTOMERS, seed_demo
from .faults import Fault, parse_kinds
from .partner_center import Domain
from .service import CONTROL_PREFIX
from .stack import PartnerSeed, StandInStack


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="standins",
        description="Local HTTPS stand-ins for Partner Center, Entra ID, Key Vault and Graph.",
    )
    parser.add_argument("--partner-center-port", type=int, default=0, help="default: ephemeral")
    parser.add_argument("--entra-port", type=int, default=0, help="default: ephemeral")
    parser.add_argument("--key-vault-port", type=int, default=0, help="default: ephemeral")
    parser.add_argument("--graph-port", type=int, default=0, help="default: ephemeral")
    parser.add_argument(
        "--cert-dir",
        type=Path,
        help="where the CA PEM files go (kept); default: a temporary directory removed on exit",
    )
    parser.add_argument(
        "--local-settings",
        type=Path,
        help="merge the first seeded partner's function settings into this local.settings.json "
        "(mode 0600, kept on exit) so the local host or `func start` can use the stand-ins",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        help="write URLs, CA paths, credentials and function settings here as JSON (mode 0600)",
    )
    parser.add_argument(
        "--seed-demo",
        action="store_true",
        help="a demo partner (app, refresh token, 3 vault secrets) and demo customers",
    )
    parser.add_argument(
        "--seed-partner",
        action="append",
        default=[],
        metavar="TENANT_ID",
        help="register a partner app, refresh token and vault secrets for this tenant",
    )
    parser.add_argument(
        "--customer",
        action="append",
        default=[],
        metavar="SPEC",
        help="TENANT_ID:DOMAIN[=federated|=unverified],...[:no-gdap]",
    )
    parser.add_argument(
        "--subscribed-sku",
        action="append",
        default=[],
        metavar="SPEC",
        help="TENANT_ID:SKU_ID:UNITS[:LICENSE_GROUP[:NAME]] (group default group1), a product "
        "the customer can assign",
    )
    parser.add_argument(
        "--graph-consent",
        action="append",
        default=[],
        metavar="TENANT_ID:VARIANT",
        help="how Microsoft Graph answers for a customer: consented, identity_not_found, "
        "request_denied, request_denied_401 or token_refused (default: graph.default_consent)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="SERVICE:MATCH:KIND[:times=N,retry_after=S], e.g. "
        "'partner_center:POST /v1/customers/*/users:429:times=2'",
    )
    parser.add_argument(
        "--random-faults",
        action="append",
        default=[],
        metavar="SPEC",
        help="SERVICE:MATCH:rate=R[,seed=N][,kinds=429|503|drop]",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="SERVICE.FIELD=VALUE",
        help="e.g. partner_center.success_status=200 (VALUE is JSON)",
    )
    return parser


def parse_customer(spec: str) -> tuple[str, list[Domain], bool]:
    tenant_id, _, rest = spec.partition(":")
    domain_list, _, flag = rest.partition(":")
    if not tenant_id or not domain_list or flag not in ("", "no-gdap"):
        raise ValueError(f"customer spec {spec!r}: expected TENANT_ID:DOMAIN,...[:no-gdap]")
    domains = []
    for item in domain_list.split(","):
        name, _, kind = item.partition("=")
        if kind not in ("", "federated", "unverified"):
            raise ValueError(f"domain {item!r}: the kind is federated or unverified")
        domains.append(Domain(name, federated=kind == "federated", verified=kind != "unverified"))
    return tenant_id, domains, flag != "no-gdap"


def parse_subscribed_sku(spec: str) -> tuple[str, str, int, str, str | None]:
    """(tenant id, SKU id, units, licence group, name) from TENANT:SKU:UNITS[:GROUP[:NAME]]."""
    parts = spec.split(":", 4)
    if len(parts) < 3 or not parts[0] or not parts[1] or not parts[2].isdigit():
        raise ValueError(
            f"subscribed SKU spec {spec!r}: expected TENANT_ID:SKU_ID:UNITS[:GROUP[:NAME]]"
        )
    group = parts[3] if len(parts) > 3 and parts[3] else "group1"
    name = parts[4] if len(parts) > 4 and parts[4] else None
    return parts[0], parts[1], int(parts[2]), group, name


def parse_options(text: str) -> dict[str, str]:
    options = {}
    for item in filter(None, text.split(",")):
        name, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"option {item!r}: expected NAME=VALUE")
        options[name.strip()] = value.strip()
    return options


def apply_fault(stack: StandInStack, spec: str) -> None:
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise ValueError(f"fault spec {spec!r}: expected SERVICE:MATCH:KIND[:OPTIONS]")
    service, match, kind = parts[:3]
    options = parse_options(parts[3] if len(parts) == 4 else "")
    times_text = options.pop("times", "1")
    times = None if times_text in ("always", "0") else int(times_text)
    stack.services[service].faults.add(
        Fault.parse(kind, options), match=None if match == "*" else match, times=times
    )


def apply_random_faults(stack: StandInStack, spec: str) -> None:
    service, match, option_text = spec.split(":", 2)
    options = parse_options(option_text)
    kinds = options.get("kinds")
    stack.services[service].faults.random(
        seed=int(options["seed"]) if "seed" in options else None,
        rate=float(options["rate"]),
        kinds=None if kinds is None else parse_kinds(kinds),
        match=None if match == "*" else match,
    )


def apply_config(stack: StandInStack, spec: str) -> None:
    target, _, value = spec.partition("=")
    service, _, field = target.partition(".")
    stack.services[service].update_config({field: json.loads(value)})


def state_document(stack: StandInStack, partners: Sequence[PartnerSeed]) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "ca_file": str(stack.ca_file),
        "ca_bundle_file": str(stack.ca_bundle_file),
        "partner_center": {"base_url": stack.partner_center.base_url},
        "entra": {"authority_host": stack.entra.authority_host},
        "graph": {"base_url": stack.graph.base_url},
        "key_vault": {
            "vault_url": stack.key_vault.vault_url,
            "tenant_id": stack.key_vault.vault_tenant_id,
            "client_id": stack.key_vault.vault_client_id,
            "client_secret": stack.key_vault.vault_client_secret,
        },
        "control": {
            name: f"{service.base_url}{CONTROL_PREFIX}" for name, service in stack.services.items()
        },
        "partners": [
            {
                "tenant_id": seed.tenant_id,
                "client_id": seed.client_id,
                "secret_names": [
                    seed.app_id_secret,
                    seed.app_secret_secret,
                    seed.refresh_token_secret,
                ],
            }
            for seed in partners
        ],
        "function_settings": {
            seed.tenant_id: stack.function_settings(seed.tenant_id) for seed in partners
        },
    }


def write_private_json(path: Path, document: dict[str, Any]) -> None:
    """Write atomically, readable by the owner only: it holds a client secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    os.replace(temporary, path)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    stop_requested = threading.Event()

    def request_stop(_signal: int, _frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    stack = StandInStack.start(
        cert_dir=arguments.cert_dir.resolve() if arguments.cert_dir else None,
        partner_center_port=arguments.partner_center_port,
        entra_port=arguments.entra_port,
        key_vault_port=arguments.key_vault_port,
        graph_port=arguments.graph_port,
    )
    try:
        partners = configure(stack, arguments)
        if arguments.state_file:
            write_private_json(arguments.state_file, state_document(stack, partners))
        if arguments.local_settings and partners:
            write_private_json(
                arguments.local_settings,
                local_settings_document(arguments.local_settings, stack, partners[0]),
            )
        announce(stack, arguments, partners)
        while not stop_requested.wait(0.5):
            pass
    except (KeyError, ValueError) as problem:
        print(f"standins: {problem}", file=sys.stderr)
        return 2
    finally:
        stack.stop()
        if arguments.state_file:
            arguments.state_file.unlink(missing_ok=True)
    print("standins: stopped", flush=True)
    return 0


def local_settings_document(
    path: Path, stack: StandInStack, partner: PartnerSeed
) -> dict[str, Any]:
    """An existing local.settings.json with the values that point the app at this stack."""
    document: dict[str, Any] = {"IsEncrypted": False, "Values": {}}
    if path.exists():
        document = json.loads(path.read_text(encoding="utf-8"))
    values = document.setdefault("Values", {})
    values.setdefault("FUNCTIONS_WORKER_RUNTIME", "python")
    values.setdefault("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    values.setdefault("REQUEST_QUEUE_NAME", "user-create-requests")
    values.setdefault("RESULT_QUEUE_NAME", "user-create-results")
    values.update(stack.function_settings(partner.tenant_id))
    return document


def configure(stack: StandInStack, arguments: argparse.Namespace) -> list[PartnerSeed]:
    partners = [seed_demo(stack)] if arguments.seed_demo else []
    partners += [stack.seed_partner(tenant_id) for tenant_id in arguments.seed_partner]
    for spec in arguments.customer:
        tenant_id, domains, gdap = parse_customer(spec)
        stack.partner_center.add_customer(tenant_id, domains, gdap=gdap)
    for spec in arguments.subscribed_sku:
        tenant_id, sku_id, units, group, name = parse_subscribed_sku(spec)
        stack.partner_center.add_subscribed_sku(tenant_id, sku_id, group, units, name=name)
    for spec in arguments.graph_consent:
        tenant_id, _, variant = spec.partition(":")
        stack.graph.set_consent(tenant_id, variant)
    for spec in arguments.config:
        apply_config(stack, spec)
    for spec in arguments.fault:
        apply_fault(stack, spec)
    for spec in arguments.random_faults:
        apply_random_faults(stack, spec)
    return partners


def announce(
    stack: StandInStack, arguments: argparse.Namespace, partners: Sequence[PartnerSeed]
) -> None:
    lines = [
        f"Partner Center  {stack.partner_center.base_url}",
        f"Entra ID        {stack.entra.authority_host}",
        f"Key Vault       {stack.key_vault.vault_url}",
        f"Graph           {stack.graph.base_url}",
        f"CA file         {stack.ca_file}",
        f"CA bundle       {stack.ca_bundle_file}  (use as REQUESTS_CA_BUNDLE)",
        f"control         <each URL above>{CONTROL_PREFIX}/...",
    ]
    if arguments.state_file:
        lines.append(f"state file      {arguments.state_file}")
    if arguments.local_settings and partners:
        lines.append(f"app settings    {arguments.local_settings}")
    lines += [f"partner tenant  {seed.tenant_id} (credentials in the vault)" for seed in partners]
    if arguments.seed_demo:
        lines += [f"demo customer   {c.tenant_id}  {c.name}" for c in DEMO_CUSTOMERS]
    lines.append("ready (Ctrl-C to stop)")
    print("\n".join(f"standins: {line}" for line in lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
