"""Issue 15 end to end: a create (or restore) that may have been applied survives a definite
refusal, through the local Functions host, Azurite and the stand-ins, under both MS-RequestId
behaviours. The operator fixes the cause and replays the poison copy with the project's tool;
the replay reports the hire's own user with the secret holding its password."""

from __future__ import annotations

import time
from typing import Any

import pytest

from devtools.standins import Fault
from ops.poison_cli import main as poison_queue

from .test_pipeline import CREATE, CUSTOMER, DOMAIN, Pipeline, hire_event, pipeline

__all__ = ["pipeline"]

RESET = "PATCH /v1/customers/*/users/*/resetpassword"


def _replay_all(pipeline: Pipeline, *, category: str = "permission") -> None:
    code = poison_queue(
        [
            "replay",
            "--connection-string",
            pipeline.azurite.connection_string,
            "--queue",
            pipeline.request_queue,
            "--category",
            category,
            "--yes",
            # A validation copy is refused without it (it "would fail again unchanged"): here
            # the user list has caught up, which is the operator's reason to replay.
            *(["--force"] if category == "validation" else []),
        ]
    )
    assert code == 0


def _assert_secret_holds_password(pipeline: Pipeline, outcome: dict[str, Any]) -> None:
    secret_id = outcome["initialPasswordSecretId"]
    assert secret_id, outcome
    name, version = secret_id.rstrip("/").split("/")[-2:]
    stored = next(v for v in pipeline.stack.key_vault.versions(name) if v["id"].endswith(version))
    assert pipeline.stack.partner_center.user_has_password(
        CUSTOMER, outcome["userId"], stored["value"]
    )


@pytest.mark.parametrize("remembers", [True, False], ids=["remembers-request-id", "forgets"])
@pytest.mark.parametrize("upn", ["given", "generated"])
def test_a_lost_create_refused_on_its_repeat_is_the_hires_own_user_after_the_replay(
    pipeline: Pipeline, remembers: bool, upn: str
) -> None:
    pipeline.stack.partner_center.configure(idempotent_request_ids=remembers)
    event = hire_event(151)
    if upn == "generated":
        event["schemaVersion"] = "1.1"
        del event["user"]["userPrincipalName"]
        event["user"]["upnDomain"] = DOMAIN
    expected_upn = event["user"].get("userPrincipalName") or f"hire.number151@{DOMAIN}"
    # The create is applied but its answer lost; its repeat is refused for good (403).
    pc = pipeline.stack.partner_center
    pc.faults.add(Fault.apply_then_drop(), match=CREATE, times=1)
    pc.faults.add(Fault.status(403), match=CREATE, times=1)
    pipeline.publisher.publish(event)
    pipeline.run_until_drained()
    first = pipeline.outcomes()[event["eventId"]]
    assert first["status"] == "rejected", first
    # The operator restores the role and replays the poison copy.
    _replay_all(pipeline)
    pipeline.run_until_drained()

    outcome = pipeline.outcomes()[event["eventId"]]
    assert outcome["status"] == "created", outcome
    assert outcome["userPrincipalName"] == expected_upn
    users = pc.users(CUSTOMER)
    assert [u["userPrincipalName"] for u in users] == [expected_upn]  # no second user
    assert outcome["userId"] == users[0]["id"]
    _assert_secret_holds_password(pipeline, outcome)
    assert pipeline.poison() == []


@pytest.mark.parametrize("remembers", [True, False], ids=["remembers-request-id", "forgets"])
def test_a_rehire_whose_reset_was_refused_gets_the_reset_on_replay(
    pipeline: Pipeline, remembers: bool
) -> None:
    pc = pipeline.stack.partner_center
    pc.configure(idempotent_request_ids=remembers, password_reset_path="resetpassword")
    event = hire_event(152)
    event["user"]["immutableId"] = "EMP-152"
    deleted = pc.add_user(
        CUSTOMER,
        {
            "userPrincipalName": event["user"]["userPrincipalName"],
            "immutableId": "EMP-152",
            "state": "inactive",
        },
    )
    pc.faults.add(Fault.status(403), match=RESET, times=1)
    pipeline.publisher.publish(event)
    pipeline.run_until_drained()
    assert pipeline.outcomes()[event["eventId"]]["status"] == "rejected"

    _replay_all(pipeline)
    pipeline.run_until_drained()

    outcome = pipeline.outcomes()[event["eventId"]]
    assert outcome["status"] == "restored", outcome
    assert outcome["userId"] == deleted["id"]
    _assert_secret_holds_password(pipeline, outcome)


# The lag is the Partner Center user list's: with Graph consented the lost create is settled by
# the holder's creation time at once (tests/function/test_upn_directory_wiring.py).
@pytest.mark.upn_lookup("partner-center")
@pytest.mark.parametrize("remembers", [True, False], ids=["remembers-request-id", "forgets"])
def test_a_lost_create_whose_repeat_is_a_plain_400_while_the_list_lags_is_created_on_replay(
    pipeline: Pipeline, remembers: bool
) -> None:
    pc = pipeline.stack.partner_center
    lag = 8.0
    pc.configure(
        idempotent_request_ids=remembers, duplicate_upn_plain=True, user_list_lag_seconds=lag
    )
    event = hire_event(153)
    pc.faults.add(Fault.apply_then_drop(), match=CREATE, times=1)
    pipeline.publisher.publish(event)
    pipeline.run_until_drained()
    first = pipeline.outcomes()[event["eventId"]]
    # Remembering the MS-RequestId, the repeat is answered with the user; forgetting it, the
    # repeat is a plain 400 and the list does not show the user yet: rejected for now.
    assert first["status"] == ("created" if remembers else "rejected"), first
    if not remembers:
        assert first["error"]["category"] == "validation", first
        time.sleep(lag + 0.5)  # the list catches up; the operator replays
        _replay_all(pipeline, category="validation")
        pipeline.run_until_drained()
        first = pipeline.outcomes()[event["eventId"]]
    assert first["status"] == "created", first
    (user,) = pc.users(CUSTOMER)
    assert first["userId"] == user["id"]
    _assert_secret_holds_password(pipeline, first)
