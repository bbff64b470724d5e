"""docs/contract.md and its JSON Schemas agree with the code.

The schema files are generated from the models (``python -m devtools.schemas``); these tests
regenerate them and compare, check the contract's examples against them and against the
function's own validation, and check that what the code writes and accepts fits them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devtools import schemas
from shared.domain.events import InvalidEvent, decode_body, parse_event
from shared.domain.outcomes import (
    Category,
    ErrorMessage,
    Failure,
    LicenseFailure,
    LicenseReport,
    Outcome,
    Status,
    outcome_from_message,
)
from tests.hostile import corpus

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "contract.md"
CUSTOMER = "4b10bf41-ab11-40e3-8c53-cd67849b50de"
SKU = "c42b9cae-ea4f-4ab7-9717-81576235ccac"
# A JSON example in docs/contract.md, announced by the comment line before its code fence.
EXAMPLE = re.compile(r"<!-- schema: ([a-z-]+) -->\n```json\n(.*?)\n```", re.DOTALL)


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((schemas.SCHEMA_FOLDER / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(check: Draft202012Validator, document: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in check.iter_errors(document)]


def examples(kind: str) -> list[dict[str, Any]]:
    found = [json.loads(text) for name, text in EXAMPLE.findall(CONTRACT.read_text("utf-8"))
             if name == kind]
    assert found, f"docs/contract.md has no '<!-- schema: {kind} -->' example"
    return found


def test_the_checked_in_schemas_are_what_the_models_generate() -> None:
    stale = schemas.stale_files()
    assert not stale, (
        f"docs/schemas/{', '.join(stale)} no longer match the code's models: run "
        f"`.venv/bin/{schemas.REGENERATE}` and commit the result"
    )


def test_the_contracts_example_event_is_valid_by_schema_and_by_the_function() -> None:
    check = validator("hire-event.schema.json")
    for document in examples("hire-event"):
        assert problems(check, document) == []
        assert parse_event(document).event_id == document["eventId"]


def test_the_contracts_example_outcome_fits_the_schema_and_reads_back() -> None:
    check = validator("outcome.schema.json")
    for document in examples("outcome"):
        assert problems(check, document) == []
        read = outcome_from_message(document)
        assert read is not None and read.status is Status(document["status"])


def test_the_contracts_example_poison_copy_is_its_event_with_last_failure() -> None:
    check = validator("hire-event.schema.json")
    error_members = set(ErrorMessage.__annotations__)
    for document in examples("poison-copy"):
        assert problems(check, document) == []  # lastFailure and replay are ignored members
        parse_event(document)
        assert set(document["lastFailure"]) == error_members | {"attempts", "at"}
        assert Category(document["lastFailure"]["category"])


def outcomes_the_code_writes() -> list[Outcome]:
    licenses = LicenseReport(
        assigned=(SKU,),
        failed=(
            LicenseFailure(
                sku_id="0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
                category=Category.VALIDATION,
                message="no unit left",
                code=60012,
            ),
        ),
    )
    common: dict[str, Any] = {
        "event_id": "hr-1",
        "customer_tenant_id": CUSTOMER,
        "user_principal_name": "jane.doe@contoso.onmicrosoft.com",
        "correlation_id": None,
        "attempts": 1,
    }
    written = [
        Outcome(status=Status.CREATED, user_id="u-1", initial_password_secret_id="s/1", **common),
        Outcome(status=Status.RESTORED, user_id="u-1", initial_password_secret_id="s/2",
                licenses=licenses, **common),
        Outcome(status=Status.ALREADY_EXISTS, user_id="u-1",
                traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", **common),
    ]
    for category in Category:
        written.append(
            Outcome(
                status=Status.FAILED if category in (Category.THROTTLED, Category.UNAVAILABLE)
                else Status.REJECTED,
                failure=Failure(category=category, message="what to do", http_status=403,
                                code="AADSTS700082"),
                **common,
            )
        )
    written.append(
        Outcome(event_id=None, status=Status.REJECTED, customer_tenant_id=None,
                user_principal_name=None, correlation_id=None, attempts=5,
                failure=Failure(category=Category.INVALID_EVENT, message="not JSON"))
    )
    return written


@pytest.mark.parametrize("outcome", outcomes_the_code_writes(), ids=lambda o: str(o.status))
def test_every_outcome_the_code_writes_fits_the_schema(outcome: Outcome) -> None:
    check = validator("outcome.schema.json")
    assert problems(check, json.loads(outcome.to_json())) == []


def test_every_event_the_function_accepts_fits_the_schema() -> None:
    """The schema is never stricter than the function: the hostile corpus's accepted events
    (names in many scripts, limits at their edge, unknown members) all pass it."""
    check = validator("hire-event.schema.json")
    accepted = 0
    for case in corpus.build():
        try:
            document = decode_body(case.body)
            parse_event(document)
        except InvalidEvent:
            continue
        accepted += 1
        assert problems(check, document) == [], case.name
    assert accepted >= 10


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("schemaVersion", "2.0"),
        ("customerTenantId", "contoso"),
        ("eventId", "   "),
        ("user", {"firstName": "Jane", "lastName": "Doe", "displayName": "Jane Doe",
                  "usageLocation": "US"}),
        ("licenses", [{"skuId": "not-a-guid"}]),
        ("traceparent", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ],
)
def test_the_schema_refuses_what_the_function_refuses(member: str, value: Any) -> None:
    document = {**examples("hire-event")[0], member: value}
    with pytest.raises(InvalidEvent):
        parse_event(document)
    assert problems(validator("hire-event.schema.json"), document)
