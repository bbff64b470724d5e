"""GraphUpnDirectory's memory per customer, over any order of Graph answers for several
customers (hypothesis state machine), with a scripted client in place of the Graph adapter."""

from __future__ import annotations

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


class DirectoryMemory(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.graph = ScriptedGraph()
        self.fallbacks: list[str] = []
        self.directory = GraphUpnDirectory(
            self.graph,  # type: ignore[arg-type]
            mode=AUTO,
            on_fallback=self.fallbacks.append,
        )
        self.refused: set[str] = set()
        self.answered: set[str] = set()

    @rule(customer=st.sampled_from(CUSTOMERS), answer=st.sampled_from(ANSWERS))
    def look_up(self, customer: str, answer: str) -> None:
        calls_before = len(self.graph.calls)
        self.graph.script.append(answer)
        try:
            found = self.directory.find_user_by_upn(customer, "a@x.com", correlation_id="c")
        except DirectoryUnavailable:
            if customer in self.refused:
                # Remembered: Graph was not asked again.
                assert len(self.graph.calls) == calls_before
                self.graph.script.pop()
            else:
                assert answer == "not_consented"
                self.refused.add(customer)
            return
        except ServiceUnavailableError:
            assert answer == "transient" and customer not in self.refused
            return
        assert customer not in self.refused
        assert (found is not None) == (answer == "found")
        self.answered.add(customer)

    @precondition(lambda self: bool(self.refused))
    @rule()
    def refused_customers_make_no_calls(self) -> None:
        customer = sorted(self.refused)[0]
        calls_before = len(self.graph.calls)
        with pytest.raises(DirectoryUnavailable):
            self.directory.find_user_by_upn(customer, "b@x.com", correlation_id="c")
        assert len(self.graph.calls) == calls_before

    @invariant()
    def available_says_what_was_learnt(self) -> None:
        for customer in CUSTOMERS:
            expected = (
                False if customer in self.refused else True if customer in self.answered else None
            )
            assert self.directory.available(customer) is expected

    @invariant()
    def one_fallback_per_refused_customer(self) -> None:
        assert sorted(self.fallbacks) == sorted(self.refused)


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
