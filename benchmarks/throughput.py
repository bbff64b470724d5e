"""Throughput and memory of the whole pipeline on the local stack; prints numbers, asserts nothing.

    .venv/bin/python -m benchmarks.throughput --events 500
    .venv/bin/python -m benchmarks.throughput --events 500 --latency 0.05  # slow Partner Center

Publishes N hire events to Azurite, runs the real function_app.py on the local host until the
queues are drained, and reports events per second, per-invocation latency percentiles, the
calls each outside service received, and the process's peak memory.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from devtools.azurite import start_azurite_queue
from devtools.funchost import LocalFunctionsHost
from devtools.publisher import HirePublisher
from devtools.standins import Domain, Fault, StandInStack

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CUSTOMER = "4b10bf41-ab11-40e3-8c53-cd67849b50de"


def run(events: int, latency: float) -> None:
    logging.disable(logging.ERROR)
    with start_azurite_queue() as azurite, StandInStack.start() as stack:
        partner = str(uuid.uuid4())
        stack.seed_partner(partner)
        stack.partner_center.add_customer(CUSTOMER, [Domain("contoso.onmicrosoft.com")])
        if latency:
            stack.partner_center.faults.add(
                Fault.latency(latency), match="POST /v1/customers/*/users", times=None
            )
        settings = {
            **stack.function_settings(partner),
            "AzureWebJobsStorage": azurite.connection_string,
            "REQUEST_QUEUE_NAME": "bench-requests",
            "RESULT_QUEUE_NAME": "bench-results",
            "REQUESTS_CA_BUNDLE": str(stack.ca_file),
        }
        os.environ.update(settings)
        publisher = HirePublisher.from_connection_string(
            azurite.connection_string, "bench-requests"
        )
        publisher.ensure_queue()
        published = time.perf_counter()
        for number in range(events):
            publisher.publish(
                {
                    "schemaVersion": "1.0",
                    "eventId": f"bench-{number:06d}",
                    "customerTenantId": CUSTOMER,
                    "user": {
                        "userPrincipalName": f"bench{number}@contoso.onmicrosoft.com",
                        "firstName": "Bench",
                        "lastName": f"User{number}",
                        "displayName": f"Bench User{number}",
                        "usageLocation": "US",
                    },
                }
            )
        publish_seconds = time.perf_counter() - published

        host = LocalFunctionsHost(
            PROJECT_ROOT, settings=settings, host_options={"maxPollingInterval": "00:00:00.200"}
        )
        started = time.perf_counter()
        host.start()
        drained = host.wait_until_drained(timeout=max(120.0, events * 0.5))
        elapsed = time.perf_counter() - started
        host.stop()

        durations = sorted(
            record.duration for record in host.invocations if record.outcome == "succeeded"
        )
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"events                 {events} (drained: {drained})")
        print(f"publish                {events / publish_seconds:8.1f} events/s")
        print(f"process                {len(durations) / elapsed:8.1f} events/s ({elapsed:.1f} s)")
        if durations:
            cuts = statistics.quantiles(durations, n=100) if len(durations) > 1 else durations * 99
            print(
                f"invocation latency     p50 {cuts[49] * 1000:6.1f} ms  "
                f"p95 {cuts[94] * 1000:6.1f} ms  max {durations[-1] * 1000:6.1f} ms"
            )
        print(f"users created          {stack.partner_center.counters['users_created']}")
        print(f"Partner Center calls   {dict(stack.partner_center.counters['calls'])}")
        print(f"token requests         {dict(stack.entra.counters['token_requests'])}")
        print(f"vault secret reads     {sum(stack.key_vault.counters['secret_reads'].values())}")
        print(f"vault secret writes    {sum(stack.key_vault.counters['secret_writes'].values())}")
        print(f"peak RSS               {peak_mib:8.1f} MiB (whole process: host, stand-ins)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to each create call"
    )
    args = parser.parse_args(argv)
    run(args.events, args.latency)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
