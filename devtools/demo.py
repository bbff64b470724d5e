"""The whole pipeline on a local stack: Azurite, the HTTPS stand-ins and the local host.

``scripts/demo`` runs this after setting up the machine. It publishes a realistic batch of hire
events, runs the real ``function_app.py`` until the queues are drained, prints the outcomes and
the poison queue, and stops everything it started, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console

from devtools.azurite import start_azurite_queue
from devtools.funchost import LocalFunctionsHost
from devtools.http_demo import http_keys, post_over_http, show_status, split_for_http
from devtools.publisher import HirePublisher
from devtools.standins import Fault, StandInStack
from devtools.standins.demo import DEMO_CUSTOMERS, DEMO_PARTNER_TENANT_ID, DEMO_SKUS, seed_demo
from devtools.traces import render, span_tree
from ops.cli import Column, print_columns
from ops.preview import Verdict, preview_with_settings, render_verdicts
from shared.adapters.telemetry import install
from shared.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REQUEST_QUEUE = "user-create-requests"
RESULT_QUEUE = "user-create-results"
CONTOSO, FABRIKAM, NORTHWIND, TAILSPIN = (c.tenant_id for c in DEMO_CUSTOMERS[:4])
# Demo-speed retries: the real host.json backs off 30 s between deliveries.
DEMO_HOST_OPTIONS = {"visibilityTimeout": "00:00:01", "maxPollingInterval": "00:00:00.500"}

# The HR system's trace of hire-2026-000103: the demo's event continues it (--traces).
TRACED_EVENT = "hr-2026-000103"
HR_TRACE_ID = "5f1d2c3b4a5968778695a4b3c2d1e0f1"
HR_SPAN_ID = "a1b2c3d4e5f60718"

# Wide enough for the tables when the output is a file or a CI log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 180)


def _event(
    number: int, customer: str, domain: str, first: str, last: str, **extra: Any
) -> dict[str, Any]:
    return {
        "schemaVersion": extra.pop("schemaVersion", "1.0"),
        "eventId": f"hr-2026-{number:06d}",
        "customerTenantId": customer,
        "user": {
            "userPrincipalName": f"{first}.{last}@{domain}".lower(),
            "firstName": first,
            "lastName": last,
            "displayName": f"{first} {last}",
            "usageLocation": extra.pop("usageLocation", "US"),
            "immutableId": f"E{number:05d}",
        },
        "correlationId": str(uuid.uuid4()),
        **extra,
    }


def _generated(number: int, first: str, last: str, **extra: Any) -> dict[str, Any]:
    """A schema 1.1 event: no UPN, the function generates one in ``upnDomain``."""
    event = _event(number, CONTOSO, "contoso.onmicrosoft.com", first, last, **extra)
    event["schemaVersion"] = "1.1"
    del event["user"]["userPrincipalName"]
    event["user"]["upnDomain"] = "contoso.onmicrosoft.com"
    return event


BUSINESS_PREMIUM, VISIO, MINECRAFT = (sku[0] for sku in DEMO_SKUS)
# A person who left Contoso last week and comes back: the deleted account is restored.
REHIRE = {
    "userPrincipalName": "carlos.rivera@contoso.onmicrosoft.com",
    "firstName": "Carlos",
    "lastName": "Rivera",
    "displayName": "Carlos Rivera",
    "usageLocation": "US",
    "immutableId": "E00113",
    "state": "inactive",
}


def hire_batch() -> list[dict[str, Any]]:
    return [
        _event(101, CONTOSO, "contoso.onmicrosoft.com", "Jane", "Doe"),
        _event(102, CONTOSO, "contoso.com", "Ravi", "Patel"),
        _event(
            103,
            CONTOSO,
            "contoso.onmicrosoft.com",
            "Mei",
            "Chen",
            schemaVersion="1.1",
            traceparent=f"00-{HR_TRACE_ID}-{HR_SPAN_ID}-01",
        ),
        _event(104, NORTHWIND, "northwind.onmicrosoft.com", "Lukas", "Schmidt", usageLocation="DE"),
        _event(105, NORTHWIND, "northwind.onmicrosoft.com", "Amelie", "Dubois", usageLocation="FR"),
        _event(106, CONTOSO, "contoso.onmicrosoft.com", "Existing", "User"),  # UPN held by another
        _event(107, TAILSPIN, "tailspin.onmicrosoft.com", "Sam", "Lee"),  # no GDAP role
        _event(108, NORTHWIND, "northwindtraders.com", "Nora", "Federated"),  # federated domain
        _event(109, FABRIKAM, "fabrikam.onmicrosoft.com", "Omar", "Haddad"),  # outage
        _generated(111, "Zoë", "Ångström"),  # generated UPN: zoe.angstrom
        _generated(112, "Existing", "User"),  # generated UPN held by another: existing.user2
        _generated(113, "Carlos", "Rivera"),  # a rehire: restored
        _generated(  # licences of two licence groups: two requests
            114, "Priya", "Nair", licenses=[{"skuId": BUSINESS_PREMIUM}, {"skuId": MINECRAFT}]
        ),
        _generated(  # Visio has no unit left: created, plus a poison copy for the licence
            115, "Tom", "Berg", licenses=[{"skuId": BUSINESS_PREMIUM}, {"skuId": VISIO}]
        ),
    ]


def invalid_event() -> dict[str, Any]:
    """An event that breaks the contract (published without the publisher's validation)."""
    invalid = _event(110, CONTOSO, "contoso.onmicrosoft.com", "Bad", "Country")
    invalid["user"]["usageLocation"] = "XX"
    return invalid


NOT_JSON = "this is not JSON"


def all_bodies() -> list[dict[str, Any] | str]:
    """Everything the demo publishes, in order: the batch, the invalid event, a body that is
    not JSON, and the first event once more (a duplicate delivery)."""
    batch = hire_batch()
    return [*batch, invalid_event(), NOT_JSON, batch[0]]


def seed(stack: StandInStack) -> None:
    seed_demo(stack)
    stack.partner_center.add_user(CONTOSO, dict(REHIRE))
    stack.partner_center.faults.add(
        Fault.status(429, retry_after=1), match="POST /v1/customers/*/users", times=1
    )
    # Fabrikam's create calls keep failing, so that event outlasts every delivery.
    stack.partner_center.faults.add(
        Fault.status(503), match=f"POST /v1/customers/{FABRIKAM}/users", times=None
    )


def read_queue(client: QueueClient) -> list[dict[str, Any] | str]:
    """What a queue holds (a demo's queues stay under the 32 a peek returns), left in place."""
    found: list[dict[str, Any] | str] = []
    for message in client.peek_messages(max_messages=32):
        content: bytes = message.content
        try:
            found.append(json.loads(content))
        except ValueError:
            found.append(content.decode("utf-8", errors="replace"))
    return found


def print_outcomes(outcomes: list[dict[str, Any] | str]) -> None:
    """The result queue, one line per outcome, fitted like the operator tools' tables."""
    rows = sorted(
        (o for o in outcomes if isinstance(o, dict)), key=lambda o: _cell(o.get("eventId"))
    )

    def what_to_do(outcome: dict[str, Any]) -> str:
        error = outcome.get("error") or {}
        secret = outcome.get("initialPasswordSecretId")
        if error.get("message"):
            return _cell(error.get("message"))
        return f"password in {short_secret_id(secret)}" if isinstance(secret, str) else ""

    console.print("Outcomes (result queue)", style="bold")
    print_columns(
        [
            Column("eventId", [_cell(o.get("eventId")) or "-" for o in rows], "id", keep=9),
            Column("status", [_cell(o.get("status")) for o in rows], "id", keep=8),
            Column(
                "category",
                [_cell((o.get("error") or {}).get("category")) for o in rows],
                "id",
                keep=7,
            ),
            Column("UPN", [_cell(o.get("userPrincipalName")) for o in rows], "id", keep=5),
            Column("licences", [_licenses(o.get("licenses")) for o in rows], "text", keep=3),
            Column("attempts", [_cell(o.get("attempts")) for o in rows], "id", keep=2),
            Column("what to do", [what_to_do(o) for o in rows], "text", keep=6),
        ],
        full_hint="the result queue",
    )


def _cell(value: object) -> str:
    """A table cell: nothing for a missing value (never 'None')."""
    return "" if value is None else str(value)


def short_secret_id(secret_id: str) -> str:
    """A Key Vault secret id shortened for a table: its name's start and its version's."""
    parts = [part for part in secret_id.split("/") if part]
    if len(parts) >= 4 and parts[-3] == "secrets":
        name, version = parts[-2], parts[-1]
        return f"{name[:24]}\N{HORIZONTAL ELLIPSIS}/{version[:8]}"
    return secret_id if len(secret_id) <= 40 else secret_id[:39] + "\N{HORIZONTAL ELLIPSIS}"


def counts_text(counts: object) -> str:
    """{'POST users': 3, ...} as 'POST users 3, ...' (no Python reprs in the summary)."""
    if not isinstance(counts, dict) or not counts:
        return "none"
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items(), key=str))


def _licenses(licenses: object) -> str:
    if not isinstance(licenses, dict):
        return ""
    names = {sku_id: name for sku_id, name, _, _ in DEMO_SKUS}
    assigned = [names.get(s, s) for s in licenses.get("assigned") or []]
    failed = [names.get(f.get("skuId"), f.get("skuId")) for f in licenses.get("failed") or []]
    return "; ".join(
        part
        for part in (
            f"assigned: {', '.join(assigned)}" if assigned else "",
            f"failed: {', '.join(map(str, failed))}" if failed else "",
        )
        if part
    )


def compare(verdicts: list[Verdict], outcomes: list[dict[str, Any] | str]) -> list[str]:
    """Where the run differed from the preview (by eventId; the first outcome of each)."""
    reported: dict[str, str] = {}
    for outcome in outcomes:
        if isinstance(outcome, dict) and outcome.get("eventId"):
            reported.setdefault(str(outcome["eventId"]), str(outcome["status"]))
    differences = []
    for verdict in verdicts:
        if verdict.event_id is None or verdict.event_id in _UNFORESEEABLE:
            continue
        ran = reported.get(verdict.event_id)
        if verdict.expected_status != ran and not (
            verdict.verdict == "exists" and ran in ("created", "restored")  # the repeat
        ):
            differences.append(f"{verdict.event_id}: preview {verdict.expected_status}, run {ran}")
    return differences


# Only a create call can reveal these: a federated domain, and an outage of the create calls.
_UNFORESEEABLE = {"hr-2026-000108": "federated domain", "hr-2026-000109": "outage"}


def print_poison(messages: list[dict[str, Any] | str]) -> None:
    console.print("Poison queue (what operators replay: poison-queue list)", style="bold")
    events = [m for m in messages if isinstance(m, dict)]
    others = [m for m in messages if not isinstance(m, dict)]
    failures = [m.get("lastFailure") or {} for m in events]
    print_columns(
        [
            Column(
                "eventId", [_cell(m.get("eventId")) for m in events] + ["-"] * len(others), "id"
            ),
            Column(
                "category",
                [_cell(f.get("category", "(poisoned by host)")) for f in failures]
                + ["(not an event)"] * len(others),
                "id",
            ),
            Column(
                "httpStatus", [_cell(f.get("httpStatus")) for f in failures] + [""] * len(others)
            ),
            Column("code", [_cell(f.get("code")) for f in failures] + [""] * len(others)),
            Column("attempts", [_cell(f.get("attempts")) for f in failures] + [""] * len(others)),
            Column(
                "body",
                ["event + lastFailure" if f else "event" for f in failures]
                + [m[:60] for m in others],
            ),
        ],
        full_hint="poison-queue show",
    )


PROGRESS_EVERY_SECONDS = 5.0


def wait_with_progress(host: LocalFunctionsHost, connection_string: str, *, timeout: float) -> bool:
    """Wait for the host to drain, saying every few seconds what it is still working on."""
    queues = {
        name: QueueClient.from_connection_string(connection_string, name)
        for name in (REQUEST_QUEUE, RESULT_QUEUE, f"{REQUEST_QUEUE}-poison")
    }
    started = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            return False
        if host.wait_until_drained(timeout=min(PROGRESS_EVERY_SECONDS, left)):
            return True
        counts = {}
        for name, client in queues.items():
            try:
                counts[name] = client.get_queue_properties().approximate_message_count or 0
            except AzureError:
                counts[name] = 0
        console.print(
            f"  waiting for the host ({time.monotonic() - started:.0f} s): "
            f"{counts[REQUEST_QUEUE]} request(s) still queued or retrying (a retry waits "
            f"{DEMO_HOST_OPTIONS['visibilityTimeout']}), {counts[RESULT_QUEUE]} outcome(s), "
            f"{counts[REQUEST_QUEUE + '-poison']} poisoned",
            highlight=False,
        )


def run_demo(*, verbose: bool = False, traces: bool = False) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        # The host logs every failed delivery with its traceback, as the real one does; the
        # tables below tell the story without them.
        logging.disable(logging.ERROR)
    spans = _trace_in_memory() if traces else None
    with ExitStack() as cleanup:
        console.rule("[bold]Starting the local stack")
        azurite = cleanup.enter_context(start_azurite_queue())
        console.print(f"Azurite queues on 127.0.0.1:{azurite.port}")
        stack = cleanup.enter_context(StandInStack.start())
        console.print(
            f"Stand-ins over HTTPS: Partner Center {stack.partner_center.base_url}, "
            f"Entra {stack.entra.authority_host}, Key Vault {stack.key_vault.vault_url}; "
            f"CA {stack.ca_file}"
        )
        seed(stack)
        settings = {
            **stack.function_settings(DEMO_PARTNER_TENANT_ID),
            "AzureWebJobsStorage": azurite.connection_string,
            "REQUEST_QUEUE_NAME": REQUEST_QUEUE,
            "RESULT_QUEUE_NAME": RESULT_QUEUE,
            "FUNCTIONS_WORKER_RUNTIME": "python",
        }
        os.environ.update(settings)

        publisher = HirePublisher.from_connection_string(azurite.connection_string, REQUEST_QUEUE)
        publisher.ensure_queue()
        batch = hire_batch()
        invalid = invalid_event()
        console.rule("[bold]An operator previews the batch (hire-preview; reads only)")
        lines = [b if isinstance(b, str) else json.dumps(b) for b in all_bodies()]
        verdicts = preview_with_settings(Settings.from_environment(), lines)
        render_verdicts(verdicts)
        console.print(
            "The preview cannot foresee what only a create reveals: "
            + ", ".join(f"{k} ({v})" for k, v in _UNFORESEEABLE.items())
        )
        console.rule("[bold]HR publishes hire events")
        on_queue, over_http = split_for_http(batch)
        for event in on_queue:
            publisher.publish(event)
            upn = event["user"].get("userPrincipalName") or "(generated in contoso.onmicrosoft.com)"
            console.print(f"  {event['eventId']}  {upn}")
        HirePublisher.from_connection_string(
            azurite.connection_string, REQUEST_QUEUE, validate=False
        ).publish(invalid)
        console.print(f"  {invalid['eventId']}  (invalid: usageLocation XX, sent unvalidated)")
        publisher.publish_raw(NOT_JSON)
        console.print("  (a body that is not JSON)")

        console.rule("[bold]The local Functions host runs function_app.py")
        keys = http_keys()
        host = LocalFunctionsHost(
            PROJECT_ROOT,
            settings={**settings, **keys},
            host_options=DEMO_HOST_OPTIONS,
            http_port=0,
        )
        host.start()
        cleanup.callback(host.stop)
        console.rule("[bold]HR posts the rest over HTTP (POST /api/hires)")
        post_over_http(console, host.http_base_url, keys, over_http)
        if not wait_with_progress(host, azurite.connection_string, timeout=180):
            console.print("[red]the queues did not drain within 180 s[/]")
            return 1
        console.print("HR delivers hire-2026-000101 a second time (at-least-once delivery)")
        publisher.publish(batch[0])
        if not wait_with_progress(host, azurite.connection_string, timeout=60):
            console.print("[red]the queues did not drain within 60 s[/]")
            return 1
        console.rule("[bold]HR asks for a hire's status (GET /api/hires/{eventId})")
        show_status(console, host.http_base_url, keys, over_http[1]["eventId"])
        host.stop()

        results = QueueClient.from_connection_string(
            azurite.connection_string,
            RESULT_QUEUE,
            message_decode_policy=BinaryBase64DecodePolicy(),
        )
        poison = QueueClient.from_connection_string(
            azurite.connection_string,
            f"{REQUEST_QUEUE}-poison",
            message_decode_policy=BinaryBase64DecodePolicy(),
        )
        outcomes = read_queue(results)
        console.rule("[bold]Results")
        print_outcomes(outcomes)
        print_poison(read_queue(poison))
        users = sum(len(stack.partner_center.users(c.tenant_id)) for c in DEMO_CUSTOMERS)
        pc_counters = stack.partner_center.counters
        for line in (
            f"Users in customer tenants: {users} (two were there before: one holds a UPN, "
            "one was deleted)",
            f"Partner Center calls: {counts_text(dict(pc_counters['calls']))}",
            f"Faults injected: {counts_text(dict(pc_counters['faults_injected']))}",
            f"Token requests: {counts_text(dict(stack.entra.counters['token_requests']))}",
        ):
            # One line each, never folded inside an item (a call name and its count).
            console.print(line, soft_wrap=True, highlight=False)
        differences = compare(verdicts, outcomes)
        if differences:
            console.print(f"[red]the run differed from the preview: {'; '.join(differences)}[/]")
            return 1
        console.print("The run produced the statuses the preview said (both unforeseeables aside).")
        if spans is not None:
            print_trace(spans, outcomes)
        statuses = {o.get("status") for o in outcomes if isinstance(o, dict)}
        missing = {"created", "restored", "already_exists", "rejected", "failed"} - statuses
        if missing:
            console.print(f"[red]expected every status, missing {', '.join(sorted(missing))}[/]")
            return 1
        console.print(
            "[green]Demo finished: every event has an outcome, failures are in poison.[/]"
        )
        return 0


def _trace_in_memory() -> InMemorySpanExporter:
    """OpenTelemetry for the in-process host, exporting to memory (as configure() would to
    Application Insights or an OTLP collector)."""
    spans = InMemorySpanExporter()
    install(span_processors=[SimpleSpanProcessor(spans)])
    return spans


def print_trace(spans: InMemorySpanExporter, outcomes: list[dict[str, Any] | str]) -> None:
    console.rule(f"[bold]The trace of {TRACED_EVENT} (HR trace {HR_TRACE_ID})")
    tree = span_tree(spans.get_finished_spans(), int(HR_TRACE_ID, 16))
    if not tree:
        console.print("[red]no span of that trace was exported[/]")
    for line in render(tree):
        console.print(line, highlight=False, markup=False)
    carried = [
        o.get("traceparent")
        for o in outcomes
        if isinstance(o, dict) and o.get("eventId") == TRACED_EVENT
    ]
    console.print(
        f"{len(spans.get_finished_spans())} spans exported in all; the outcome of {TRACED_EVENT} "
        f"carries traceparent {', '.join(map(str, carried))}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the hire pipeline on a local stack.")
    parser.add_argument("--verbose", action="store_true", help="show the function's log lines")
    parser.add_argument(
        "--traces", action="store_true", help=f"print the span tree of {TRACED_EVENT}'s trace"
    )
    args = parser.parse_args(argv)
    try:
        return run_demo(verbose=args.verbose, traces=args.traces)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; everything the demo started has been stopped[/]")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
