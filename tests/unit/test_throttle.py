"""The process-wide throttling gate, on a fake clock: no test sleeps for real."""

from __future__ import annotations

import threading
import time

import pytest

from shared.adapters.throttle import ThrottleGate, ThrottleHeld


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def gate_on(fake: FakeTime, **options: float) -> ThrottleGate:
    return ThrottleGate(clock=fake.clock, sleep=fake.sleep, **options)


def answer(status: int, retry_after: float | None = None) -> tuple[int, float | None]:
    return status, retry_after


def throttled_for(result: tuple[int, float | None]) -> float | None:
    status, retry_after = result
    if status != 429:
        return None
    return -1.0 if retry_after is None else retry_after


def test_an_open_gate_never_waits() -> None:
    fake = FakeTime()
    gate = gate_on(fake)
    for _ in range(3):
        assert gate.call("pc", lambda: answer(201), throttled_for=throttled_for) == (201, None)
    assert fake.sleeps == []
    assert gate.stats.holds == 0


def test_one_429_holds_the_next_call_until_retry_after_has_passed() -> None:
    fake = FakeTime()
    gate = gate_on(fake)
    gate.call("pc", lambda: answer(429, 7), throttled_for=throttled_for)
    fake.now += 2
    gate.call("pc", lambda: answer(201), throttled_for=throttled_for)
    assert fake.sleeps == [pytest.approx(5.0)]
    # The successful probe reopened the gate: the next call goes at once.
    gate.call("pc", lambda: answer(201), throttled_for=throttled_for)
    assert len(fake.sleeps) == 1
    assert gate.stats.holds == 1
    assert gate.stats.waits == 1


def test_keys_are_held_independently() -> None:
    fake = FakeTime()
    gate = gate_on(fake)
    gate.hold("partner-a", 10)
    gate.call("partner-b", lambda: answer(201), throttled_for=throttled_for)
    assert fake.sleeps == []


def test_a_429_without_retry_after_holds_for_the_default() -> None:
    fake = FakeTime()
    gate = gate_on(fake, default_hold=3)
    gate.call("pc", lambda: answer(429), throttled_for=throttled_for)
    gate.call("pc", lambda: answer(201), throttled_for=throttled_for)
    assert fake.sleeps == [pytest.approx(3.0)]


def test_retry_after_zero_means_no_wait() -> None:
    fake = FakeTime()
    gate = gate_on(fake)
    gate.call("pc", lambda: answer(429, 0), throttled_for=throttled_for)
    gate.call("pc", lambda: answer(201), throttled_for=throttled_for)
    assert fake.sleeps == []


def test_a_longer_hold_extends_and_a_shorter_one_does_not_shorten() -> None:
    fake = FakeTime()
    gate = gate_on(fake)
    gate.hold("pc", 10)
    gate.hold("pc", 2)
    assert gate.wait_turn("pc") is True
    assert sum(fake.sleeps) == pytest.approx(10.0)


def test_a_wait_longer_than_the_caller_may_wait_is_refused_at_once() -> None:
    fake = FakeTime()
    gate = gate_on(fake, max_wait=30)
    gate.hold("pc", 57)
    sent: list[int] = []

    def send() -> tuple[int, float | None]:
        sent.append(1)
        return answer(201)

    with pytest.raises(ThrottleHeld) as held:
        gate.call("pc", send, throttled_for=throttled_for)
    assert held.value.remaining == pytest.approx(57.0)
    assert sent == []
    assert fake.sleeps == []


def test_after_the_hold_one_probe_goes_first_and_a_429_holds_again() -> None:
    fake = FakeTime()
    gate = gate_on(fake, max_wait=100)
    gate.hold("pc", 5)
    fake.now += 5
    assert gate.wait_turn("pc") is True  # the probe
    # The limit has not renewed yet: the probe's 429 holds everyone again.
    gate.hold("pc", 4)
    assert gate.wait_turn("pc") is True
    assert sum(fake.sleeps) == pytest.approx(4.0)


def test_others_wait_for_the_probe_and_take_over_when_it_never_reports() -> None:
    fake = FakeTime()
    gate = gate_on(fake, probe_timeout=2, max_wait=10)
    gate.hold("pc", 1)
    fake.now += 1
    assert gate.wait_turn("pc") is True  # the probe, which then vanishes
    assert gate.wait_turn("pc") is True  # a later caller becomes the probe after the timeout
    assert 2.0 <= sum(fake.sleeps) <= 2.1  # polled in steps of 50 ms


def test_a_probe_without_an_answer_lets_the_others_go() -> None:
    fake = FakeTime()
    gate = gate_on(fake)
    gate.hold("pc", 1)
    fake.now += 1

    def dropped() -> tuple[int, float | None]:
        raise ConnectionError("dropped")

    with pytest.raises(ConnectionError):
        gate.call("pc", dropped, throttled_for=throttled_for)
    gate.call("pc", lambda: answer(201), throttled_for=throttled_for)
    assert fake.sleeps == []


def test_an_answer_sent_before_the_hold_does_not_reopen_it() -> None:
    fake = FakeTime()
    gate = gate_on(fake)
    # A call goes out, another invocation's 429 arrives, then the first call's 201.
    assert gate.wait_turn("pc") is False
    gate.hold("pc", 6)
    gate._settle("pc", False, None)  # the first call's answer
    gate.call("pc", lambda: answer(201), throttled_for=throttled_for)
    assert fake.sleeps == [pytest.approx(6.0)]


def test_concurrent_callers_share_one_hold() -> None:
    # Real threads, fake time: every caller learns the one hold instead of hitting the limit.
    lock = threading.Lock()
    now = [0.0]
    statuses: list[int] = []

    def clock() -> float:
        with lock:
            return now[0]

    def sleep(seconds: float) -> None:
        with lock:
            now[0] += seconds
        time.sleep(0.001)  # lets the probe's thread run; the gate's own waits stay fake

    gate = ThrottleGate(clock=clock, sleep=sleep)
    gate.hold("pc", 3)

    def worker() -> None:
        result = gate.call("pc", lambda: answer(201), throttled_for=throttled_for)
        with lock:
            statuses.append(result[0])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert statuses == [201] * 8
    assert gate.stats.holds == 1
    assert now[0] >= 3.0
