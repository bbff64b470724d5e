"""GraphUpnDirectory's memory per customer, over any order of Graph answers for several
customers (hypothesis state machine), with a scripted client in place of the Graph adapter."""

from __future__ import annotations

import logging
from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared.adapters.graph import AUTO, GRAPH, GraphUpnDirectory
from shared.domain.errors import DirectoryUnavailable, Refused, ServiceUnavailableError
from shared.domain.model import FoundUser
from shared.domain.outcomes import Category

CUSTOMERS = ("c1", "c2", "c3")
ANSWERS = ("found", "absent", "not_consented", "transient")


class ScriptedGraph:
    """Answers the next scripted answer for each call; records who was called."""

    def __init__(self) -> None:
        self.script: deque[str] = deque()
        self.calls: list[str] = []

    def find_user_by_upn(
        self, customer_tenant_id: str, user_principal_name: str, *, correlation_id: str
    ) -> FoundUser | None:
        self.calls.append(customer_tenant_id)
        answer = self.script.popleft()
        if answer == "found":
            return FoundUser(id="u1", user_principal_name=user_principal_name)
        if answer == "absent":
            return None
        if answer == "not_consented":
            raise DirectoryUnavailable("403 Authorization_IdentityNotFound")
        raise ServiceUnavailableError("429", throttled=True)


RECHECK = 3600.0


class DirectoryMemory(RuleBasedStateMachine):
    """A customer found not consented is remembered for RECHECK seconds, then Graph is asked
    again; each change is said once (a fallback when it becomes not consented)."""

    def __init__(self) -> None:
        super().__init__()
        self.graph = ScriptedGraph()
        self.fallbacks: list[str] = []
        self.now = 0.0
        self.directory = GraphUpnDirectory(
            self.graph,  # type: ignore[arg-type]
            mode=AUTO,
            on_fallback=self.fallbacks.append,
            recheck_after=RECHECK,
            clock=lambda: self.now,
        )
        self.refused_at: dict[str, float] = {}
        self.answered: set[str] = set()
        self.expected_fallbacks: list[str] = []

    def _remembered(self, customer: str) -> bool:
        at = self.refused_at.get(customer)
        return at is not None and self.now - at < RECHECK

    @rule(customer=st.sampled_from(CUSTOMERS), answer=st.sampled_from(ANSWERS))
    def look_up(self, customer: str, answer: str) -> None:
        calls_before = len(self.graph.calls)
        remembered = self._remembered(customer)
        self.graph.script.append(answer)
        try:
            found = self.directory.find_user_by_upn(customer, "a@x.com", correlation_id="c")
        except DirectoryUnavailable:
            if remembered:
                # Remembered: Graph was not asked again.
                assert len(self.graph.calls) == calls_before
                self.graph.script.pop()
            else:
                assert answer == "not_consented"
                if customer not in self.refused_at:
                    self.expected_fallbacks.append(customer)
                self.refused_at[customer] = self.now
                self.answered.discard(customer)
            return
        except ServiceUnavailableError:
            assert answer == "transient" and not remembered
            return
        assert not remembered
        assert (found is not None) == (answer == "found")
        self.refused_at.pop(customer, None)  # consent given since: Graph answers again
        self.answered.add(customer)

    @precondition(lambda self: any(self._remembered(c) for c in CUSTOMERS))
    @rule()
    def refused_customers_make_no_calls(self) -> None:
        customer = next(c for c in CUSTOMERS if self._remembered(c))
        calls_before = len(self.graph.calls)
        with pytest.raises(DirectoryUnavailable):
            self.directory.find_user_by_upn(customer, "b@x.com", correlation_id="c")
        assert len(self.graph.calls) == calls_before

    @rule(seconds=st.sampled_from([60.0, 1800.0, RECHECK]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def available_says_what_was_learnt(self) -> None:
        for customer in CUSTOMERS:
            if customer in self.refused_at:
                expected = False if self._remembered(customer) else None
            else:
                expected = True if customer in self.answered else None
            assert self.directory.available(customer) is expected

    @invariant()
    def one_fallback_each_time_a_customer_is_found_not_consented(self) -> None:
        assert self.fallbacks == self.expected_fallbacks


TestDirectoryMemory = DirectoryMemory.TestCase
TestDirectoryMemory.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


def test_graph_mode_refuses_and_remembers_nothing() -> None:
    graph = ScriptedGraph()
    fallbacks: list[str] = []
    directory = GraphUpnDirectory(
        graph,  # type: ignore[arg-type]
        mode=GRAPH,
        on_fallback=fallbacks.append,
    )
    for _ in range(2):
        graph.script.append("not_consented")
        with pytest.raises(Refused) as raised:
            directory.find_user_by_upn("c1", "a@x.com", correlation_id="c")
        assert raised.value.failure.category is Category.PERMISSION
    assert graph.calls == ["c1", "c1"]
    assert fallbacks == []
    assert directory.available("c1") is True


def test_customer_ids_are_compared_case_insensitively() -> None:
    graph = ScriptedGraph()
    directory = GraphUpnDirectory(graph, mode=AUTO)  # type: ignore[arg-type]
    graph.script.append("not_consented")
    with pytest.raises(DirectoryUnavailable):
        directory.find_user_by_upn("ABC", "a@x.com", correlation_id="c")

    assert directory.available("abc") is False


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        GraphUpnDirectory(ScriptedGraph(), mode="partner-center")  # type: ignore[arg-type]


def clocked_directory() -> tuple[ScriptedGraph, list[str], list[float], GraphUpnDirectory]:
    """An ``auto`` directory over a scripted Graph, with its fallbacks and a clock the test
    moves (``now[0]``)."""
    graph = ScriptedGraph()
    fallbacks: list[str] = []
    now = [0.0]
    directory = GraphUpnDirectory(
        graph,  # type: ignore[arg-type]
        mode=AUTO,
        on_fallback=fallbacks.append,
        clock=lambda: now[0],
    )
    return graph, fallbacks, now, directory


def test_a_consent_given_while_the_app_runs_is_used_after_the_recheck_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph, fallbacks, now, directory = clocked_directory()
    graph.script.append("not_consented")
    with pytest.raises(DirectoryUnavailable):
        directory.find_user_by_upn("c1", "a@x.com", correlation_id="c")
    now[0] += 3599.0
    with pytest.raises(DirectoryUnavailable):  # within the hour: no Graph call
        directory.find_user_by_upn("c1", "a@x.com", correlation_id="c")
    assert graph.calls == ["c1"] and directory.available("c1") is False

    now[0] += 1.0
    assert directory.available("c1") is None  # the hour is over: unknown until asked
    graph.script.append("found")
    with caplog.at_level(logging.INFO, logger="hire_provisioning.graph"):
        assert directory.find_user_by_upn("c1", "a@x.com", correlation_id="c") is not None

    assert directory.available("c1") is True
    assert graph.calls == ["c1", "c1"] and fallbacks == ["c1"]
    assert "use Microsoft Graph again" in caplog.text


def test_a_recheck_still_refused_says_nothing_new(caplog: pytest.LogCaptureFixture) -> None:
    graph, fallbacks, now, directory = clocked_directory()
    with caplog.at_level(logging.WARNING, logger="hire_provisioning.graph"):
        for _ in range(3):
            graph.script.append("not_consented")
            with pytest.raises(DirectoryUnavailable):
                directory.find_user_by_upn("c1", "a@x.com", correlation_id="c")
            now[0] += 3600.0

    assert graph.calls == ["c1", "c1", "c1"] and fallbacks == ["c1"]
    assert caplog.text.count("use Partner Center's user list") == 1
