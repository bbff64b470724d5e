"""The Partner Center client against canned answers: how it reads errors and follows pages.

The same client the function uses, with its requests session answered by ``CannedHttp``: no
network, so a broken adapter shows up in the unit tier. The stand-in tests (tests/hostile,
tests/function) cover the same ground over real HTTPS.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.adapters.partner_center import PartnerCenterClient
from shared.domain.errors import (
    AnswerLost,
    CredentialsError,
    ProvisioningError,
    Refused,
    ServiceUnavailableError,
    UpnTaken,
)
from shared.domain.model import NewUser
from shared.domain.outcomes import Category
from shared.domain.passwords import fingerprint
from tests.unit.canned import BASE_URL, CannedHttp, session_with

CUSTOMER = "4b10bf41-ab11-40e3-8c53-cd67849b50de"
CORRELATION = "8a53b025-d5be-4d98-ab20-229d1813de76"
REQUEST_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
PASSWORD = "Xy7!canned-initial-Pw"
USER = NewUser(
    user_principal_name="jane.doe@contoso.onmicrosoft.com",
    first_name="Jane",
    last_name="Doe",
    display_name="Jane Doe",
    usage_location="US",
    immutable_id="E1",
    password=PASSWORD,
)
USERS_PATH = f"/v1/customers/{CUSTOMER}/users"


class Tokens:
    def __init__(self) -> None:
        self.refreshed = 0

    def access_token(self, *, force_refresh: bool = False) -> str:
        self.refreshed += force_refresh
        return f"token-{self.refreshed}"


def client(canned: CannedHttp, base_url: str = BASE_URL) -> tuple[PartnerCenterClient, Tokens]:
    tokens = Tokens()
    return (
        PartnerCenterClient(
            base_url, tokens, session=session_with(canned), sleep=lambda _seconds: None
        ),
        tokens,
    )


def create(canned: CannedHttp) -> object:
    pc, _ = client(canned)
    return pc.create_user(CUSTOMER, USER, request_id=REQUEST_ID, correlation_id=CORRELATION)


# ------------------------------------------------------------------ reading an answer


def test_a_create_sends_the_documented_request_and_keeps_no_echoed_password() -> None:
    canned = CannedHttp().answer(
        201,
        {"id": "u-1", "userPrincipalName": USER.user_principal_name, "state": "active",
         "passwordProfile": {"password": PASSWORD, "forceChangePassword": True}},
    )
    found = create(canned)

    (sent,) = canned.requests
    assert (sent.method, urlsplit(sent.url).path) == ("POST", USERS_PATH)
    assert sent.headers["MS-RequestId"] == REQUEST_ID
    assert sent.headers["MS-CorrelationId"] == CORRELATION
    assert sent.headers["Authorization"] == "Bearer token-0"
    body = json.loads(sent.body or b"{}")
    assert body["passwordProfile"] == {"password": PASSWORD, "forceChangePassword": True}
    assert body["immutableId"] == "E1"
    assert found.id == "u-1"  # type: ignore[attr-defined]
    assert found.password_fingerprint == fingerprint(PASSWORD)  # type: ignore[attr-defined]
    assert PASSWORD not in repr(found)


@pytest.mark.parametrize(
    ("status", "body", "kind", "category", "code"),
    [
        (403, {"code": 900150, "description": "The supplied role does not have the rights"},
         Refused, Category.PERMISSION, 900150),
        (403, {"code": "900150", "description": "The supplied role does not have the rights"},
         Refused, Category.PERMISSION, 900150),
        (404, {"code": 60003, "description": "Tenant not found", "source": "PartnerFD"},
         Refused, Category.VALIDATION, 60003),
        (409, {"code": 1000, "description": "The user already exists"},
         UpnTaken, Category.CONFLICT, 1000),
        (400, {"code": 400056, "description": "Another object with the same value for property "
               "userPrincipalName already exists."}, UpnTaken, Category.CONFLICT, 400056),
        (400, {"code": 400056, "description": "Another object with the same value for property "
               "immutableId already exists."}, Refused, Category.CONFLICT, 400056),
        (400, {"code": 3000, "description": "Invalid property usageLocation", "data": []},
         Refused, Category.VALIDATION, 3000),
        (400, {"code": "not-a-number", "message": "Bad request"},
         Refused, Category.VALIDATION, "not-a-number"),
        (500, {"code": 800003, "description": "Unexpected service error"},
         AnswerLost, Category.UNAVAILABLE, 800003),
        (503, b"<html>Service Unavailable</html>", AnswerLost, Category.UNAVAILABLE, None),
        (408, None, AnswerLost, Category.UNAVAILABLE, None),
    ],
    ids=["403-number", "403-string-code", "404-tenant", "409-taken", "400-upn-taken",
         "400-other-unique", "400-invalid", "400-message-member", "500", "503-html", "408"],
)
def test_error_answers_are_read_into_the_kind_of_failure(
    status: int, body: object, kind: type[ProvisioningError], category: Category, code: object
) -> None:
    canned = CannedHttp().answer(status, body)
    with pytest.raises(kind) as raised:
        create(canned)
    failure = raised.value.failure
    assert (failure.category, failure.http_status, failure.code) == (category, status, code)
    assert f"answered {status}" in failure.message


def test_a_429_is_throttled_with_the_wait_partner_center_asked_for() -> None:
    canned = CannedHttp().answer(
        429, {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 57 seconds."},
        Retry_After="57",
    )
    with pytest.raises(ServiceUnavailableError) as raised:
        create(canned)
    assert raised.value.failure.category is Category.THROTTLED
    assert raised.value.failure.code == 429
    assert raised.value.retry_after == 57


def test_a_429_with_an_http_date_is_read_as_a_wait_too() -> None:
    canned = CannedHttp().answer(
        429, {"statusCode": 429}, Retry_After="Fri, 01 Jan 2100 00:00:00 GMT"
    )
    with pytest.raises(ServiceUnavailableError) as raised:
        create(canned)
    assert raised.value.failure.category is Category.THROTTLED
    assert (raised.value.retry_after or 0) > 0


def test_a_401_gets_one_fresh_token_and_then_is_credentials() -> None:
    canned = CannedHttp().answer(401, {"code": 900421}).answer(401, {"code": 900421})
    pc, tokens = client(canned)
    with pytest.raises(CredentialsError) as raised:
        pc.create_user(CUSTOMER, USER, request_id=REQUEST_ID, correlation_id=CORRELATION)
    assert tokens.refreshed == 1
    assert [r.headers["Authorization"] for r in canned.requests] == [
        "Bearer token-0", "Bearer token-1"
    ]
    assert raised.value.failure.code == 900421


def test_a_description_that_quotes_the_password_is_not_kept() -> None:
    canned = CannedHttp().answer(400, {"code": 3000, "description": f"password {PASSWORD} is weak"})
    with pytest.raises(Refused) as raised:
        create(canned)
    assert PASSWORD not in str(raised.value)
    assert "is not kept" in raised.value.failure.message


def test_a_create_answered_without_a_user_id_may_have_been_applied() -> None:
    with pytest.raises(AnswerLost):
        create(CannedHttp().answer(201, {"userPrincipalName": USER.user_principal_name}))
    with pytest.raises(AnswerLost):
        create(CannedHttp().answer(201, b"not json"))


# ------------------------------------------------------------------ following pages


def page(*upns: str, next_uri: str | None = None, token: str = "page-2") -> dict[str, object]:
    body: dict[str, object] = {
        "totalCount": len(upns),
        "items": [{"id": f"id-{upn}", "userPrincipalName": upn, "state": "active"} for upn in upns],
        "attributes": {"objectType": "Collection"},
    }
    if next_uri is not None:
        body["links"] = {
            "next": {"uri": next_uri, "method": "GET",
                     "headers": [{"key": "MS-ContinuationToken", "value": token}]}
        }
    return body


NEXT_QUERY = "size=100&seekOperation=Next"


@pytest.mark.parametrize(
    "next_uri",
    [
        f"{USERS_PATH}?{NEXT_QUERY}",
        f"v1/customers/{CUSTOMER}/users?{NEXT_QUERY}",
        f"/customers/{CUSTOMER}/users?{NEXT_QUERY}",
        f"customers/{CUSTOMER}/users?{NEXT_QUERY}",
        f"{BASE_URL}{USERS_PATH}?{NEXT_QUERY}",
        f"{BASE_URL}:443{USERS_PATH}?{NEXT_QUERY}",
    ],
    ids=["absolute-path", "relative-path", "without-version", "relative-without-version",
         "absolute-url", "absolute-url-default-port"],
)
def test_a_next_link_of_any_plausible_form_is_followed_with_its_continuation_token(
    next_uri: str,
) -> None:
    canned = (
        CannedHttp()
        .answer(200, page("a@contoso.onmicrosoft.com", next_uri=next_uri))
        .answer(200, page("Jane.Doe@contoso.onmicrosoft.com"))
    )
    pc, _ = client(canned)

    found = pc.find_user_by_upn(CUSTOMER, USER.user_principal_name, correlation_id=CORRELATION)

    assert found is not None and found.id == "id-Jane.Doe@contoso.onmicrosoft.com"
    first, second = canned.requests
    assert parse_qs(urlsplit(first.url).query) == {"size": ["100"]}
    assert urlsplit(second.url).netloc == urlsplit(BASE_URL).netloc
    assert urlsplit(second.url).path == USERS_PATH
    assert parse_qs(urlsplit(second.url).query) == parse_qs(NEXT_QUERY)
    assert second.headers["MS-ContinuationToken"] == "page-2"
    assert "MS-ContinuationToken" not in first.headers


@pytest.mark.parametrize(
    "next_uri",
    [
        f"https://evil.example{USERS_PATH}",
        f"//evil.example{USERS_PATH}",
        f"http://api.partnercenter.test{USERS_PATH}",
        f"https://api.partnercenter.test:8443{USERS_PATH}",
        f"https://user@api.partnercenter.test{USERS_PATH}",
        f"/\\\\evil.example{USERS_PATH}",
        f"https://[::1{USERS_PATH}",
        f"{USERS_PATH} HTTP/1.1",
    ],
    ids=["other-host", "scheme-relative", "plain-http", "other-port", "user-info",
         "backslash", "broken-ipv6", "space"],
)
def test_a_next_link_anywhere_else_is_refused_and_gets_no_token(next_uri: str) -> None:
    canned = CannedHttp().answer(200, page("a@contoso.onmicrosoft.com", next_uri=next_uri))
    pc, _ = client(canned)
    with pytest.raises(ServiceUnavailableError, match="next-page link"):
        pc.find_user_by_upn(CUSTOMER, USER.user_principal_name, correlation_id=CORRELATION)
    assert len(canned.requests) == 1


def test_a_link_that_leaves_the_base_urls_path_is_refused() -> None:
    base = f"{BASE_URL}/partner"
    canned = CannedHttp().answer(
        200, page("a@contoso.onmicrosoft.com", next_uri=f"{BASE_URL}{USERS_PATH}")
    )
    pc, _ = client(canned, base_url=base)
    with pytest.raises(ServiceUnavailableError, match="leaves the base URL's path"):
        pc.find_user_by_upn(CUSTOMER, USER.user_principal_name, correlation_id=CORRELATION)
    assert urlsplit(canned.requests[0].url).path == f"/partner{USERS_PATH}"


def test_the_last_page_ends_the_lookup_and_a_missing_user_is_none() -> None:
    canned = CannedHttp().answer(200, page("a@contoso.onmicrosoft.com"))
    pc, _ = client(canned)
    assert pc.find_user_by_upn(CUSTOMER, "b@contoso.onmicrosoft.com",
                               correlation_id=CORRELATION) is None
    assert len(canned.requests) == 1


def test_a_page_answered_5xx_is_read_again_and_a_throttled_one_is_not() -> None:
    canned = (
        CannedHttp()
        .answer(503, {"code": 800003})
        .answer(200, page("Jane.Doe@contoso.onmicrosoft.com"))
    )
    pc, _ = client(canned)
    assert pc.find_user_by_upn(CUSTOMER, USER.user_principal_name, correlation_id=CORRELATION)
    assert len(canned.requests) == 2

    throttled = CannedHttp().answer(429, {"statusCode": 429}, Retry_After="1")
    pc, _ = client(throttled)
    with pytest.raises(ServiceUnavailableError) as raised:
        pc.find_user_by_upn(CUSTOMER, USER.user_principal_name, correlation_id=CORRELATION)
    assert raised.value.failure.category is Category.THROTTLED
    assert len(throttled.requests) == 1
