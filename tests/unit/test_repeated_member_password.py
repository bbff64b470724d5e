"""Issue 15 item 6: the password check sees every copy of a repeated member (no I/O)."""

from __future__ import annotations

import pytest

from shared.adapters.poison import poisoned_body
from shared.domain.jsontext import member_names
from shared.domain.outcomes import Category, Failure

SECRET = "Sup3r-Secret-HR-Password"
EVENT_START = (
    '{"schemaVersion":"1.0","eventId":"hr-1",'
    '"customerTenantId":"4b10bf41-ab11-40e3-8c53-cd67849b50de",'
)
USER = '"user":{"userPrincipalName":"jane@contoso.com","firstName":"Jane"}'
USER_WITH_PASSWORD = (
    '"user":{"userPrincipalName":"jane@contoso.com",'
    '"passwordProfile":{"password":"' + SECRET + '"}}'
)
FAILURE = Failure(category=Category.INVALID_EVENT, message="user: repeated member")


@pytest.mark.parametrize(
    "body",
    [
        EVENT_START + USER_WITH_PASSWORD + "," + USER + "}",  # the first copy holds it
        EVENT_START + USER + "," + USER_WITH_PASSWORD + "}",  # the last copy holds it
        EVENT_START + '"x":{"pwd":"' + SECRET + '"},"x":1,' + USER + "}",  # a nested copy
    ],
    ids=["first-copy", "last-copy", "nested-first-copy"],
)
def test_a_password_in_any_copy_of_a_repeated_member_never_reaches_the_poison_copy(
    body: str,
) -> None:
    copy = poisoned_body(body.encode(), FAILURE, attempts=1)
    assert SECRET.encode() not in copy
    assert b'"eventId":"hr-1"' in copy and b"lastFailure" in copy


def test_a_repeated_member_without_a_password_is_poisoned_unchanged() -> None:
    body = (EVENT_START + USER + "," + USER + "}").encode()
    assert poisoned_body(body, FAILURE, attempts=1) == body


def test_member_names_sees_every_copy() -> None:
    text = '{"a":{"secret1":1},"a":{"b":2}}'
    assert member_names(text) == {"a", "secret1", "b"}
    assert member_names("not json") == set()
