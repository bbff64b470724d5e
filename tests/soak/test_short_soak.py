"""A short soak: a few hundred hires through every fault, three hosts, one killed mid-run.

The full run (10,000 hires, both MS-RequestId behaviours) is `python -m benchmarks.soak`.
"""

from __future__ import annotations

from benchmarks.soak import DEFECTS, SoakConfig, render, run_soak
from devtools.azurite import AzuriteQueue


def test_a_short_soak_finds_no_defect(azurite: AzuriteQueue) -> None:
    config = SoakConfig(
        hires=250,
        hosts=3,
        kill_every=120,
        # Hangs outlast the client's 30 s timeout: too slow for the suite (the full run has them).
        hang_rate=0.0,
        # The harder of the two behaviours: only the product's own record prevents a second user.
        request_ids="forgotten",
        seed=7,
        lease_seconds=10,
        drain_timeout=150,
        verbose=False,
    )
    report = run_soak(config, azurite)
    assert report.figures["kills"] >= 1
    assert set(report.defects) == set(DEFECTS)
    assert report.clean, render(report)
