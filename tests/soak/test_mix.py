"""The soak's original mix and its pace figure, and the throughput benchmark's event mix
(plain functions: no stack, no hosts)."""

from __future__ import annotations

import json

from benchmarks.soak import (
    Customers,
    SoakConfig,
    build_workload,
    customer_count,
    kill_allowed,
    pace,
)
from benchmarks.throughput import parse_size, without_immutable_id


def _customers(count: int) -> Customers:
    working = [(f"0000000{n}-0000-4000-8000-000000000000", f"c{n}.example") for n in range(count)]
    return Customers(working, ("99999999-0000-4000-8000-000000000000", "locked.example"))


def _share_without(config: SoakConfig) -> float:
    hires = build_workload(config, _customers(customer_count(config)))
    users = [json.loads(h.body)["user"] for h in hires if h.kind == "normal"]
    return sum("immutableId" not in user for user in users) / len(users)


def test_the_original_mix_is_half_without_immutable_id_over_three_customers() -> None:
    original = SoakConfig(hires=10_000, mix="original", verbose=False)
    gentle = SoakConfig(hires=10_000, verbose=False)

    assert customer_count(original) == 3
    assert customer_count(gentle) == 10
    assert 0.47 < _share_without(original) < 0.53
    assert 0.22 < _share_without(gentle) < 0.28


def test_pace_compares_the_first_and_the_last_window() -> None:
    # 10 outcomes a second for 100 s, then 5 a second for 100 s, then a slow drain.
    progress = [(float(t), 10 * t) for t in range(101)]
    progress += [(100.0 + t, 1000 + 5 * t) for t in range(1, 101)]
    progress += [(200.0 + t, 1500 + t) for t in range(1, 80)]

    figures = pace(progress, hires=1579)

    assert figures["pace window"] == 526
    assert 9.5 < figures["pace first"] < 10.5
    assert 4.5 < figures["pace last"] < 5.5  # the drain after 95 % is left out
    # Thirds of the 1,500 outcomes up to 95 %: the first all at 10 a second, the last at 5.
    assert figures["pace third"] == 500
    assert 9.5 < figures["pace first third"] < 10.5
    assert 4.5 < figures["pace last third"] < 5.5


def test_pace_by_thirds_averages_over_pauses_a_window_may_catch() -> None:
    # 25 outcomes a second, with a pause of 15 s every 80 s; the last 1,000-outcome window
    # happens to hold two pauses, the first none.
    progress: list[tuple[float, int]] = []
    now, produced = 0.0, 0
    while produced < 10_000:
        now += 1.0
        if int(now) % 80 >= 65:
            continue  # paused
        produced += 25
        progress.append((now, produced))
    figures = pace(progress, hires=10_000)
    thirds = figures["pace last third"] / figures["pace first third"] - 1
    assert abs(thirds) < 0.1


def test_pace_counts_the_hosts_killed_in_each_window() -> None:
    # One outcome a second, as the result queue's insertion times give them.
    progress = [(float(t), t) for t in range(1, 3001)]

    figures = pace(progress, hires=3000, kills=[500, 2000, 2500])

    assert (figures["pace first"], figures["pace last"]) == (1.0, 1.0)
    # The last window is outcomes 1,850 to 2,850 (95 % of 3,000).
    assert (figures["pace kills first"], figures["pace kills last"]) == (1, 2)


def test_no_host_is_killed_in_or_just_before_a_pace_window() -> None:
    # 10,000 hires, 10,892 first-round events: windows of 1,000; the last one ends when the
    # late duplicates are published, about 600 (the backlog) before the first round's end.
    def allowed(produced: int) -> bool:
        return kill_allowed(produced, hires=10_000, first_round_events=10_892)

    assert [at for at in range(2000, 12001, 2000) if allowed(at)] == [2000, 4000, 6000, 8000]
    assert not allowed(500)  # the first window
    assert not allowed(8400)  # within a window of the last one: its leases would spill in
    assert allowed(8200)
    # 1,000 hires, 1,090 first-round events: the late duplicates go out at about 500 outcomes,
    # too early for two windows of 333, so there is no pace figure and kills go anywhere.
    assert all(kill_allowed(at, hires=1000, first_round_events=1090) for at in range(0, 1200))


def test_the_last_pace_window_ends_before_the_late_duplicates() -> None:
    # 20 outcomes a second for 500 s; the late duplicates are published at 450 s, after which
    # the hosts idle, then burst: none of that is in the last window.
    progress = [(float(t), 20 * t) for t in range(1, 451)]
    progress += [(450.0 + t, 9000) for t in range(1, 11)]
    progress += [(461.0, 9800)]
    figures = pace(progress, hires=10_000, late_from=450.5)
    assert (figures["pace first"], figures["pace last"]) == (20.0, 20.0)
    # Without the time, the last window would end at 95 % of 9,800: the idle 10 s and the burst.
    assert abs(pace(progress, hires=10_000)["pace last"] - 20.0) > 2


def test_pace_needs_two_windows() -> None:
    assert pace([(0.0, 0), (1.0, 3)], hires=300) == {}


def test_the_share_without_immutable_id_is_spread_evenly() -> None:
    assert [without_immutable_id(n, 0.5) for n in range(4)] == [False, True, False, True]
    assert not any(without_immutable_id(n, 0.0) for n in range(100))
    assert all(without_immutable_id(n, 1.0) for n in range(100))
    assert sum(without_immutable_id(n, 0.25) for n in range(100)) == 25


def test_customer_size_with_its_own_hires() -> None:
    assert parse_size("30,000:16", 1000) == (30000, 16)
    assert parse_size("100", 300) == (100, 300)


def test_unconsented_customers_are_the_last_ones(standins) -> None:  # type: ignore[no-untyped-def]
    from benchmarks.soak import seed_stack

    config = SoakConfig(hires=300, mix="original", unconsented=1, verbose=False)
    _, customers = seed_stack(standins, config, config.seed)

    consents = [standins.graph.consent_of(tenant) for tenant, _ in customers.working]
    assert consents == ["consented", "consented", "identity_not_found"]
