"""Local Functions hosts as separate processes, as instances of a function app are.

Each runs ``python -m devtools.funchost`` on the project with the app settings in its
environment, logs to its own file, and can be stopped gracefully or killed outright. CPU and
memory are read from ``/proc`` (Linux), so they are the function app process's alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
THREAD_COUNT_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"


def deployed_thread_count() -> int:
    """The worker threads a deployed instance has: the template sets
    ``PYTHON_THREADPOOL_THREAD_COUNT`` to host.json's ``batchSize + newBatchThreshold``, so no
    message the host holds waits for a thread. A benchmark host without it would run the
    worker's default (cores + 4) and measure messages queued inside the worker, which no
    deployment does."""
    queues = json.loads((PROJECT_ROOT / "host.json").read_text())["extensions"]["queues"]
    return int(queues["batchSize"]) + int(queues["newBatchThreshold"])


@dataclass
class HostProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    killed: bool = False
    # CPU seconds and peak RSS read just before the process ended (a dead one cannot tell).
    final_cpu: float | None = field(default=None)
    final_peak_rss: int | None = field(default=None)

    @classmethod
    def start(
        cls,
        name: str,
        settings: Mapping[str, str],
        log_dir: Path,
        *,
        lease_seconds: int,
        extra_args: tuple[str, ...] = (),
    ) -> HostProcess:
        log_path = log_dir / f"{name}.log"
        environment = {
            **os.environ,
            THREAD_COUNT_SETTING: str(deployed_thread_count()),
            **settings,
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            sys.executable,
            "-m",
            "devtools.funchost",
            "--app-dir",
            str(PROJECT_ROOT),
            "--lease-seconds",
            str(lease_seconds),
            *extra_args,
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return cls(name, process, log_path)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu_seconds(self) -> float:
        """User plus system CPU of the process so far."""
        if not self.alive:
            return self.final_cpu or 0.0
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return self.final_cpu or 0.0
        # After the ")" that ends the command name: utime and stime are fields 12 and 13.
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def memory(self) -> tuple[int, int]:
        """(current RSS, peak RSS) in bytes."""
        values = {"VmRSS": 0, "VmHWM": 0}
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0]) * 1024
        except OSError:
            return 0, self.final_peak_rss or 0
        return values["VmRSS"], values["VmHWM"]

    def _remember(self) -> None:
        if self.alive:
            self.final_cpu = self.cpu_seconds()
            self.final_peak_rss = self.memory()[1]

    def kill(self) -> None:
        """SIGKILL: no stop, no cleanup, in-flight invocations vanish mid-way."""
        self._remember()
        self.killed = True
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (graceful: in-flight invocations finish), SIGKILL if it takes too long."""
        self._remember()
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
