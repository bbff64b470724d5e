"""The throughput benchmark's summary table marks each figure above issue 17's targets
(plain functions: no stack, no hosts)."""

from __future__ import annotations

import pytest

from benchmarks.throughput import Figures, print_summary

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


def _row(*, cpu_ms: float, p50_ms: float, pc: float = 1.0) -> Figures:
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
