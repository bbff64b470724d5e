"""Cold-start cost of telemetry: import time of function_app with and without it configured.

    .venv/bin/python -m benchmarks.import_time [--runs 7]

Each run is a fresh interpreter that imports ``function_app`` (which calls
``shared.adapters.telemetry.configure()``) and reports the time the import took, the interpreter's
start-up excluded, and how many modules it loaded. Exporters point at a closed loopback port
and Azure Monitor's own statistics are off, so nothing leaves the machine. Prints medians;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TELEMETRY_SETTINGS = ("APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_EXPORTER_OTLP_ENDPOINT")
CONFIGURATIONS: dict[str, dict[str, str]] = {
    "no telemetry": {},
    "OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    "Azure Monitor (APPLICATIONINSIGHTS_CONNECTION_STRING)": {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            "IngestionEndpoint=http://127.0.0.1:9/"
        ),
    },
}
# os._exit: the exporters' final flush would only wait on the closed port.
PROBE = """
import json, os, sys, time
before = len(sys.modules)
started = time.perf_counter()
import function_app
took = time.perf_counter() - started
print(json.dumps({"seconds": took, "modules": len(sys.modules) - before}))
sys.stdout.flush()
os._exit(0)
"""


def measure(settings: dict[str, str]) -> tuple[float, int]:
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_SETTINGS}
    env.update(
        {
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            **settings,
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), int(result["modules"])


def run(runs: int) -> None:
    print(f"import function_app, {runs} fresh interpreters each (first run discarded: warm-up)")
    baseline: float | None = None
    for name, settings in CONFIGURATIONS.items():
        measure(settings)  # byte-compiles and warms the OS cache
        samples = [measure(settings) for _ in range(runs)]
        median = statistics.median(seconds for seconds, _ in samples) * 1000
        modules = samples[-1][1]
        extra = "" if baseline is None else f"  (+{median - baseline:.0f} ms)"
        baseline = median if baseline is None else baseline
        spread = [round(seconds * 1000) for seconds, _ in samples]
        print(f"  {name:55} median {median:6.0f} ms{extra}, {modules} modules, runs {spread}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per setting")
    args = parser.parse_args(argv)
    run(max(1, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
