"""The hostile corpus end to end: publisher → Azurite → local host → function → stand-ins.

Every body that fits a queue message gets exactly its expected outcome, and every poison copy
is the function's own (never expiring): none is left to the host's seven-day copy.
"""

from __future__ import annotations

import base64
import json
from collections import Counter

from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient

from tests.e2e.test_pipeline import Pipeline, pipeline
from tests.hostile.corpus import NONE, build

__all__ = ["pipeline"]
QUEUE_BODY_LIMIT = 48 * 1024  # what base64 fits in 64 KiB of message text
NEVER_EXPIRES_YEAR = 9999


def test_every_corpus_body_gets_its_outcome_through_the_local_host(pipeline: Pipeline) -> None:
    cases = [case for case in build() if len(case.body) <= QUEUE_BODY_LIMIT]
    assert len(cases) >= 100
    request = QueueClient.from_connection_string(
        pipeline.azurite.connection_string, pipeline.request_queue
    )
    for case in cases:
        request.send_message(base64.b64encode(case.body).decode("ascii"))

    pipeline.run_until_drained(timeout=120)

    results = QueueClient.from_connection_string(
        pipeline.azurite.connection_string,
        pipeline.settings["RESULT_QUEUE_NAME"],
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    outcomes = []
    while batch := list(results.receive_messages(max_messages=32)):
        for message in batch:
            outcomes.append(json.loads(message.content))
            results.delete_message(message)
    got = Counter((o["status"], o["eventId"]) for o in outcomes)
    expected = Counter((case.status, case.event_id) for case in cases)
    assert got == expected
    poison = QueueClient.from_connection_string(
        pipeline.azurite.connection_string,
        f"{pipeline.request_queue}-poison",
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    copies = []
    while batch := list(poison.receive_messages(max_messages=32)):
        for message in batch:
            copies.append(message)
            poison.delete_message(message)
    assert len(copies) == sum(1 for case in cases if case.poison != NONE)
    assert all(m.expires_on.year >= NEVER_EXPIRES_YEAR for m in copies), "a host copy expires"
