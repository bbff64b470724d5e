"""The soak's own checks, on made-up text: a secret is found wherever it hides."""

import json
import uuid
from dataclasses import replace
from typing import Any

from benchmarks.soak import Hire, Poisoned, Report, SoakConfig, check, find_secrets, render
from devtools.standins import Domain, StandInStack
from shared.domain.passwords import secret_name_for
from tests.standins.helpers import create_user, partner_center_token, user_body

PASSWORD = "aB3$kk9!Zq#x2Lm0Pw7^"
TOKEN = "standin-app-secret.Qm9vYmFy_LTE2ODk-xyz"


def test_a_secret_is_found_inside_json_and_log_text():
    secrets = {PASSWORD, TOKEN}
    assert find_secrets(f'{{"value": "{PASSWORD}"}}', secrets) == 1
    assert find_secrets(f"INFO decision body={PASSWORD}{PASSWORD} token {TOKEN}.", secrets) == 3
    assert find_secrets(f"x{TOKEN}y", secrets) == 1


def test_text_without_secrets_finds_none():
    secrets = {PASSWORD, TOKEN}
    assert find_secrets('decision {"status": "created"} ' + PASSWORD[:-1], secrets) == 0
    assert find_secrets("anything", set()) == 0


# -- the defect counts, on a made-up end state of real stand-ins ------------------------------

DOMAIN = "contoso.onmicrosoft.com"


def _hire(number: int, customer: str) -> Hire:
    return Hire(
        kind="normal",
        event_id=f"e{number}",
        body=json.dumps({"eventId": f"e{number}"}).encode(),
        customer=customer,
        upns={f"user{number}@{DOMAIN}"},
    )


def _create(stack: StandInStack, customer: str, token: str, upn: str, password: str) -> str:
    body = user_body(upn, immutableId=upn, passwordProfile={"password": password})
    answer = create_user(stack, customer, token, body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _success(hire: Hire, user_id: str, secret_id: str | None) -> dict[str, Any]:
    return {
        "eventId": hire.event_id,
        "status": "created",
        "userId": user_id,
        "initialPasswordSecretId": secret_id,
    }


def test_each_kind_of_defect_is_counted(standins: StandInStack):
    partner = standins.seed_partner(str(uuid.uuid4()))
    customer = str(uuid.uuid4())
    standins.partner_center.add_customer(customer, [Domain(DOMAIN)])
    token = partner_center_token(standins, partner)
    good, wrong, doubled, lost, poisoned = (_hire(n, customer) for n in range(1, 6))
    doubled.upns.add(f"user3.moved@{DOMAIN}")
    hires = [good, wrong, doubled, lost, poisoned]

    def stored(hire: Hire, password: str) -> str:
        assert hire.event_id
        return str(standins.key_vault.set_secret(secret_name_for(hire.event_id), password)["id"])

    good_user = _create(standins, customer, token, f"user1@{DOMAIN}", PASSWORD)
    outcomes = [_success(good, good_user, stored(good, PASSWORD))]
    # The user got one password, the outcome points at another.
    wrong_user = _create(standins, customer, token, f"user2@{DOMAIN}", "Right-Pw-0123456789")
    outcomes.append(_success(wrong, wrong_user, stored(wrong, "Other-Pw-0123456789")))
    # One event, two users, two outcomes naming different users.
    first = _create(standins, customer, token, f"user3@{DOMAIN}", "Pw-3-aaaaaaaaaaaaaaA")
    second = _create(standins, customer, token, f"user3.moved@{DOMAIN}", "Pw-3-aaaaaaaaaaaaaaA")
    secret = stored(doubled, "Pw-3-aaaaaaaaaaaaaaA")
    outcomes += [_success(doubled, first, secret), _success(doubled, second, secret)]
    # A user, a success without a password secret, and a conflict poison copy.
    fifth = _create(standins, customer, token, f"user5@{DOMAIN}", "Pw-5-bbbbbbbbbbbbbbB")
    outcomes.append(_success(poisoned, fifth, None))
    copy = {"eventId": "e5", "lastFailure": {"category": "conflict"}}
    poison = [Poisoned(json.dumps(copy).encode(), copy)]
    outcomes.append({"eventId": "e5", "status": "rejected", "error": {"category": "conflict"}})

    report = Report(SoakConfig(verbose=False))
    logs = {"host-01": f"INFO decision ... {PASSWORD} ..."}
    check(report, standins, hires, outcomes, poison, logs, 0, None)

    assert report.defects == {
        "not drained": 0,
        "lost": 1,  # e4
        "hires with more than one user": 1,  # e3
        "outcomes whose password secret does not hold the user's password": 1,  # e2
        "outcomes naming a user that does not exist": 0,
        "successes without a password secret": 1,  # e5
        "outcomes contradicting each other": 2,  # e3 (two users), e5 (created and rejected)
        "successes poisoned": 1,  # e5
        "wrong verdicts": 1,  # e5 rejected as a conflict
        "more than 5 % of valid hires got no user": 1,  # e4: one in five
        "events left to the host's poison copy": 0,
        "secrets in outcomes": 0,
        "secrets in poison copies": 0,
        "secrets in logs": 1,
    }, render(report)


def test_the_same_person_from_before_must_be_already_exists_without_a_password(
    standins: StandInStack,
) -> None:
    partner = standins.seed_partner(str(uuid.uuid4()))
    customer = str(uuid.uuid4())
    standins.partner_center.add_customer(customer, [Domain(DOMAIN)])
    token = partner_center_token(standins, partner)
    right, created, with_password = (
        replace(_hire(n, customer), kind="returning") for n in range(1, 4)
    )
    users = [_create(standins, customer, token, f"user{n}@{DOMAIN}", PASSWORD) for n in (1, 2, 3)]
    secret = str(standins.key_vault.set_secret(secret_name_for("e2"), PASSWORD)["id"])
    outcomes = [
        {**_success(right, users[0], None), "status": "already_exists"},
        _success(created, users[1], secret),  # the residual case: created, with a password
        {**_success(with_password, users[2], secret), "status": "already_exists"},
    ]

    report = Report(SoakConfig(verbose=False))
    check(report, standins, [right, created, with_password], outcomes, [], {}, 0, None)

    assert report.defects["wrong verdicts"] == 2, render(report)
    assert report.defects["successes without a password secret"] == 0
    assert sum(report.defects.values()) == 2, render(report)
