"""Deliveries of one hire racing each other on two local hosts, through Azurite."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient

from devtools.standins import Fault

from .test_pipeline import CREATE, CUSTOMER, Pipeline, hire_event, pipeline

__all__ = ["pipeline"]


def _all_messages(pipeline: Pipeline, queue: str) -> list[dict[str, Any]]:
    client = QueueClient.from_connection_string(
        pipeline.azurite.connection_string, queue, message_decode_policy=BinaryBase64DecodePolicy()
    )
    found = []
    for message in client.peek_messages(max_messages=32):
        found.append(json.loads(message.content))
    return found


@pytest.mark.parametrize("remembers", [True, False], ids=["remembers-request-id", "forgets"])
@pytest.mark.parametrize(
    "with_immutable_id", [True, False], ids=["immutable-id", "no-immutable-id"]
)
def test_five_deliveries_of_one_hire_at_once_on_two_hosts(
    pipeline: Pipeline, remembers: bool, with_immutable_id: bool
) -> None:
    pipeline.stack.partner_center.config.idempotent_request_ids = remembers
    event = hire_event(70)
    if with_immutable_id:
        event["user"]["immutableId"] = "EMP-70"
    # Slow creates keep every delivery in flight at once; one answer is lost after the apply.
    pipeline.stack.partner_center.faults.add(Fault.latency(0.5), match=CREATE, times=5)
    pipeline.stack.partner_center.faults.add(Fault.apply_then_drop(), match=CREATE, times=1)
    body = base64.b64encode(json.dumps(event).encode()).decode()
    for _ in range(5):
        pipeline.send_raw(body)

    pipeline.run_until_drained(pipeline.host(), pipeline.host(), timeout=120)

    upn = event["user"]["userPrincipalName"]
    users = [u for u in pipeline.stack.partner_center.users(CUSTOMER)]
    (user,) = [u for u in users if u["userPrincipalName"] == upn]
    outcomes = _all_messages(pipeline, pipeline.settings["RESULT_QUEUE_NAME"])
    assert len(outcomes) == 5
    assert {o["status"] for o in outcomes} <= {"created", "already_exists"}
    assert [o["status"] for o in outcomes].count("created") == 1
    assert {o["userId"] for o in outcomes} == {user["id"]}
    (secret_id,) = {o["initialPasswordSecretId"] for o in outcomes}
    name, version = secret_id.rstrip("/").split("/")[-2:]
    stored = next(v for v in pipeline.stack.key_vault.versions(name) if v["id"].endswith(version))
    assert pipeline.stack.partner_center.user_has_password(CUSTOMER, user["id"], stored["value"])
    assert _all_messages(pipeline, f"{pipeline.request_queue}-poison") == []
