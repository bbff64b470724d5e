"""The throughput benchmark's summary table marks each figure above issue 17's targets
(plain functions: no stack, no hosts)."""

from __future__ import annotations

import time

import pytest

from benchmarks.throughput import Figures, _publish, print_summary

CALLS = {
    "Partner Center": 1.0,
    "PC creates": 1.0,
    "PC list pages": 0.0,
    "Graph": 0.0,
    "KV reads": 0.0,
    "KV writes": 1.0,
    "tables": 2.0,
    "token endpoint": 0.0,
}


def _row(*, cpu_ms: float, p50_ms: float, pc: float = 1.0, rate: float = 0.0) -> Figures:
    return Figures(
        upn_lookup="graph",
        customer_size=30_000,
        share_without=0.5,
        hires=50,
        latency=0.05,
        calls={**CALLS, "Partner Center": pc},
        function_cpu_ms=cpu_ms,
        p50_ms=p50_ms,
        hires_per_second=40.0,
        rate=rate,
    )


def test_a_row_within_every_target_has_no_mark(capsys: pytest.CaptureFixture[str]) -> None:
    print_summary([_row(cpu_ms=4.2, p50_ms=120.0)])

    row = capsys.readouterr().out.splitlines()[3]
    assert "✗" not in row
    assert "| 30,000 | 50% | 50 | 1.00 |" in row
    assert "| 1.20 |" in row  # 120 ms against 2 x 50 ms


def test_each_figure_above_its_target_is_marked(capsys: pytest.CaptureFixture[str]) -> None:
    print_summary([_row(cpu_ms=9.0, p50_ms=300.0, pc=17.0)])

    row = capsys.readouterr().out.splitlines()[3]
    assert "17.00 ✗" in row
    assert "9.0 ms ✗" in row
    assert "3.00 ✗" in row


def test_the_offered_rate_is_in_each_row(capsys: pytest.CaptureFixture[str]) -> None:
    print_summary([_row(cpu_ms=4.2, p50_ms=120.0), _row(cpu_ms=4.2, p50_ms=120.0, rate=10)])

    lines = capsys.readouterr().out.splitlines()
    assert "| offered | hires/s |" in lines[1]
    assert "| at once | 40.0 |" in lines[3]
    assert "| 10/s | 40.0 |" in lines[4]


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[float, dict[str, object]]] = []

    def publish(self, event: dict[str, object]) -> None:
        self.sent.append((time.perf_counter(), event))


def test_a_rate_publishes_on_a_schedule_in_order() -> None:
    recorder = _Recorder()

    began = time.perf_counter()
    _publish(recorder, 0, 5, "r", share_without=0.5, rate=50)  # type: ignore[arg-type]

    numbers = [str(event["eventId"])[-6:] for _, event in recorder.sent]
    assert numbers == ["000000", "000001", "000002", "000003", "000004"]
    # The fifth is due 80 ms after the first: a schedule, not a burst.
    assert recorder.sent[4][0] - began >= 0.08
