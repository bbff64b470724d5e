import uuid

import pytest
import requests

from devtools.standins import Domain, PartnerSeed, StandInStack

from .helpers import create_user, headers, partner_center_token, user_body

GUID_KEYS = ("id",)


def users_url(stack: StandInStack, customer: str) -> str:
    return f"{stack.partner_center.base_url}/v1/customers/{customer}/users"


def test_create_answers_201_with_the_user_and_echoes_the_password(standins, customer, token):
    answer = create_user(standins, customer, token)

    assert answer.status_code == 201
    user = answer.json()
    uuid.UUID(user["id"])
    assert user["userPrincipalName"] == "jane.doe@contoso.onmicrosoft.com"
    assert user["immutableId"] == "E12345"
    assert user["passwordProfile"]["password"] == "abCD123*xyz"
    assert user["userDomainType"] == "managed"
    assert user["state"] == "active"
    assert user["softDeletionTime"] is None
    assert user["lastDirectorySyncTime"] is None
    assert user["attributes"] == {"objectType": "CustomerUser"}
    assert standins.partner_center.counters["users_created"] == 1
    stored = standins.partner_center.users(customer)
    assert [u["id"] for u in stored] == [user["id"]]
    assert "password" not in stored[0].get("passwordProfile", {})


def test_success_status_200_variant(standins, customer, token):
    standins.partner_center.config.success_status = 200
    assert create_user(standins, customer, token).status_code == 200


def test_answer_echoes_request_and_correlation_ids(standins, customer, token):
    request_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    answer = create_user(
        standins,
        customer,
        token,
        request_id=request_id,
        correlation_id=correlation_id,
    )
    assert answer.headers["MS-RequestId"] == request_id
    assert answer.headers["MS-CorrelationId"] == correlation_id


def test_requests_are_recorded_with_headers_and_redacted_password(standins, customer, token):
    request_id = str(uuid.uuid4())
    create_user(standins, customer, token, request_id=request_id)

    (recorded,) = standins.partner_center.requests
    assert recorded.method == "POST"
    assert recorded.path == f"/v1/customers/{customer}/users"
    assert recorded.route == "POST /v1/customers/{id}/users"
    assert recorded.headers["ms-requestid"] == request_id
    assert recorded.headers["MS-Contract-Version"] == "v1"
    assert recorded.json["passwordProfile"]["password"] == "<redacted>"
    assert recorded.json["userPrincipalName"] == "jane.doe@contoso.onmicrosoft.com"
    assert recorded.status == 201
    assert standins.partner_center.counters["calls"]["POST /v1/customers/{id}/users"] == 1


# Authentication and authorisation, in the service's order -----------------------------------


def test_missing_token_is_401_800001(standins, customer):
    answer = create_user(standins, customer, None)
    assert answer.status_code == 401
    assert answer.json() == {
        "code": 800001,
        "description": "Partner token missing.",
        "data": [],
        "source": "PartnerFD",
    }


def test_unknown_token_is_401_400(standins, customer):
    answer = create_user(standins, customer, "not-a-token")
    assert answer.status_code == 401
    assert answer.json()["code"] == 400


def test_expired_token_is_401(standins, customer, token):
    standins.entra.expire_access_tokens()
    answer = create_user(standins, customer, token)
    assert answer.status_code == 401
    assert "expired" in answer.json()["description"]


def test_token_for_another_audience_is_401(standins, customer, partner):
    vault_token = requests.post(
        f"{standins.entra.authority_host}/{partner.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": partner.client_id,
            "client_secret": partner.client_secret,
            "refresh_token": partner.refresh_token,
            "scope": "https://vault.azure.net/.default offline_access",
        },
        timeout=5,
    ).json()["access_token"]
    answer = create_user(standins, customer, vault_token)
    assert answer.status_code == 401
    assert "audience" in answer.json()["description"]


def test_app_only_token_is_refused(standins, customer, partner):
    app_token = requests.post(
        f"{standins.entra.authority_host}/{partner.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": partner.client_id,
            "client_secret": partner.client_secret,
            "scope": "https://api.partnercenter.microsoft.com/.default",
        },
        timeout=5,
    ).json()["access_token"]
    answer = create_user(standins, customer, app_token)
    assert (answer.status_code, answer.json()["code"]) == (403, 2032)


def test_token_without_mfa_claim_is_401_900421(standins, customer, partner):
    no_mfa = standins.entra.issue_refresh_token(partner.tenant_id, partner.client_id, mfa=False)
    seed = PartnerSeed(partner.tenant_id, partner.client_id, partner.client_secret, no_mfa)
    answer = create_user(standins, customer, partner_center_token(standins, seed))
    assert (answer.status_code, answer.json()["code"]) == (401, 900421)


def test_unknown_customer_is_404_60003(standins, token):
    answer = create_user(standins, str(uuid.uuid4()), token)
    assert answer.status_code == 404
    assert answer.json()["code"] == 60003
    assert answer.json()["description"] == "Tenant not found"


def test_customer_without_gdap_role_is_403_900150(standins, token):
    tenant_id = str(uuid.uuid4())
    standins.partner_center.add_customer(tenant_id, [Domain("nogdap.example")], gdap=False)
    answer = create_user(standins, tenant_id, token, user_body("a@nogdap.example"))
    assert (answer.status_code, answer.json()["code"]) == (403, 900150)


def test_auth_is_checked_before_the_customer(standins):
    answer = create_user(standins, str(uuid.uuid4()), None)
    assert answer.status_code == 401


def test_malformed_request_id_header_is_400(standins, customer, token):
    answer = create_user(standins, customer, token, request_id="not-a-guid")
    assert (answer.status_code, answer.json()["code"]) == (400, 800002)
    answer = create_user(standins, customer, token, correlation_id="nope")
    assert answer.status_code == 400


# Validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["usageLocation", "userPrincipalName", "firstName", "lastName", "displayName"]
)
def test_missing_required_field_is_400(standins, customer, token, field):
    body = user_body()
    del body[field]
    answer = create_user(standins, customer, token, body)
    assert answer.status_code == 400
    assert answer.json()["code"] == 400056
    assert field in answer.json()["description"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"passwordProfile": {"forceChangePassword": True}},
        {"passwordProfile": None},
        {"attributes": {"objectType": "Customer"}},
        {"attributes": None},
    ],
)
def test_missing_password_or_object_type_is_400(standins, customer, token, overrides):
    answer = create_user(standins, customer, token, user_body(**overrides))
    assert (answer.status_code, answer.json()["code"]) == (400, 400056)


def test_body_that_is_not_json_is_400_800002(standins, customer, token):
    answer = requests.post(
        users_url(standins, customer), data=b"{nope", headers=headers(token), timeout=5
    )
    assert (answer.status_code, answer.json()["code"]) == (400, 800002)


@pytest.mark.parametrize(
    ("upn", "word"),
    [
        ("no-at-sign.contoso.com", "userPrincipalName"),
        (".dot@contoso.com", "userPrincipalName"),
        ("two..dots@contoso.com", "userPrincipalName"),
        ("spa ce@contoso.com", "userPrincipalName"),
        ("jane@other.example", "verified domain"),
        ("jane@unverified.example", "verified domain"),
        ("jane@federated.example", "federated"),
    ],
)
def test_bad_upn_or_domain_is_400_3000(standins, customer, token, upn, word):
    answer = create_user(standins, customer, token, user_body(upn))
    assert (answer.status_code, answer.json()["code"]) == (400, 3000)
    assert word in answer.json()["description"]


def test_upn_in_second_verified_domain_is_accepted(standins, customer, token):
    assert create_user(standins, customer, token, user_body("x@Contoso.COM")).status_code == 201


@pytest.mark.parametrize("location", ["XX", "USA", "U", "zz"])
def test_usage_location_must_be_iso_3166_alpha_2(standins, customer, token, location):
    answer = create_user(standins, customer, token, user_body(usageLocation=location))
    assert (answer.status_code, answer.json()["code"]) == (400, 3000)
    assert "usageLocation" in answer.json()["description"]


@pytest.mark.parametrize("location", ["US", "DE", "fr"])
def test_real_country_codes_are_accepted(standins, customer, token, location):
    answer = create_user(standins, customer, token, user_body(usageLocation=location))
    assert answer.status_code == 201


@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        ("abCD123*", True),  # 8 characters, four classes
        ("abcdefg1!", True),  # three classes
        ("ABCDEFG12", False),  # two classes
        ("aB1*", False),  # too short
        ("aB1*" * 64 + "x", False),  # 257 characters
        ("aB1*" * 64, True),  # 256 characters
        ("abcDEF12é", False),  # not ASCII
    ],
)
def test_password_complexity(standins, customer, token, password, accepted):
    body = user_body(passwordProfile={"password": password, "forceChangePassword": True})
    answer = create_user(standins, customer, token, body)
    assert (answer.status_code == 201) is accepted
    if not accepted:
        assert "password" in answer.json()["description"]


def test_validation_order_is_fields_then_upn_then_domain_then_location_then_password(
    standins, customer, token
):
    weak = {"password": "weak", "forceChangePassword": True}
    body = user_body("jane@other.example", usageLocation="XX", passwordProfile=weak)
    assert "verified domain" in create_user(standins, customer, token, body).json()["description"]
    body = user_body(usageLocation="XX", passwordProfile=weak)
    assert "usageLocation" in create_user(standins, customer, token, body).json()["description"]


def test_duplicate_upn_is_400_by_default_case_insensitively(standins, customer, token):
    assert create_user(standins, customer, token).status_code == 201
    answer = create_user(standins, customer, token, user_body("JANE.DOE@contoso.onmicrosoft.com"))
    assert answer.status_code == 400
    assert answer.json()["description"] == (
        "Another object with the same value for property userPrincipalName already exists."
    )
    assert standins.partner_center.counters["users_created"] == 1


def test_duplicate_upn_409_variant_against_a_seeded_user(standins, customer, token):
    standins.partner_center.config.duplicate_upn_status = 409
    standins.partner_center.add_user(customer, {"userPrincipalName": "jane.doe@contoso.com"})
    answer = create_user(standins, customer, token, user_body("Jane.Doe@contoso.com"))
    assert answer.status_code == 409


def test_a_deleted_user_still_holds_the_upn(standins, customer, token):
    standins.partner_center.add_user(
        customer, {"userPrincipalName": "jane.doe@contoso.onmicrosoft.com", "state": "inactive"}
    )
    answer = create_user(standins, customer, token)
    assert (answer.status_code, answer.json()["code"]) == (400, 3000)
    assert "userPrincipalName already exists" in answer.json()["description"]


def test_deleted_users_hold_upn_switch(standins, customer, token):
    standins.partner_center.configure(deleted_users_hold_upn=False)
    standins.partner_center.add_user(
        customer, {"userPrincipalName": "jane.doe@contoso.onmicrosoft.com", "state": "inactive"}
    )
    assert create_user(standins, customer, token).status_code == 201


def test_code_as_string_switch(standins, token):
    standins.partner_center.config.code_as_string = True
    answer = create_user(standins, str(uuid.uuid4()), token)
    assert answer.json()["code"] == "60003"


# Idempotency ------------------------------------------------------------------------------------


def test_replayed_request_id_returns_the_first_answer_and_creates_nothing(
    standins, customer, token
):
    request_id = str(uuid.uuid4())
    first = create_user(standins, customer, token, request_id=request_id)
    replay = create_user(standins, customer, token, request_id=request_id.upper())

    assert replay.status_code == first.status_code == 201
    assert replay.json() == first.json()
    counters = standins.partner_center.counters
    assert counters["users_created"] == 1
    assert counters["replays_absorbed"] == 1
    assert counters["calls"]["POST /v1/customers/{id}/users"] == 2


def test_replay_of_a_business_failure_returns_the_same_failure(standins, customer, token):
    request_id = str(uuid.uuid4())
    body = user_body(usageLocation="XX")
    first = create_user(standins, customer, token, body, request_id=request_id)
    replay = create_user(standins, customer, token, request_id=request_id)
    assert first.status_code == replay.status_code == 400
    assert replay.json() == first.json()
    assert standins.partner_center.counters["users_created"] == 0


def test_request_ids_are_remembered_per_customer(standins, customer, token):
    other = str(uuid.uuid4())
    standins.partner_center.add_customer(other, [Domain("contoso.onmicrosoft.com")])
    request_id = str(uuid.uuid4())
    create_user(standins, customer, token, request_id=request_id)
    answer = create_user(standins, other, token, request_id=request_id)
    assert answer.status_code == 201
    assert standins.partner_center.counters["replays_absorbed"] == 0


def test_request_id_memory_can_be_switched_off(standins, customer, token):
    standins.partner_center.config.idempotent_request_ids = False
    request_id = str(uuid.uuid4())
    create_user(standins, customer, token, request_id=request_id)
    again = create_user(standins, customer, token, request_id=request_id)
    assert again.status_code == 400  # the duplicate UPN, as a service that forgot would say


# Reading users back -------------------------------------------------------------------------


def seed_users(stack: StandInStack, customer: str, count: int) -> list[str]:
    return [
        stack.partner_center.add_user(
            customer, {"userPrincipalName": f"user{index}@contoso.onmicrosoft.com"}
        )["id"]
        for index in range(count)
    ]


def test_list_pages_with_continuation_token(standins, customer, token):
    created = seed_users(standins, customer, 5)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    page = session.get(users_url(standins, customer), params={"size": 2}, timeout=5).json()
    seen = [user["id"] for user in page["items"]]
    assert page["totalCount"] == 2
    assert page["attributes"] == {"objectType": "Collection"}
    while "next" in page["links"]:
        link = page["links"]["next"]
        assert link["uri"] == f"/v1/customers/{customer}/users?size=2&seekOperation=next"
        assert link["method"] == "GET"
        continuation = {item["key"]: item["value"] for item in link["headers"]}
        answer = session.get(
            standins.partner_center.base_url + link["uri"], headers=continuation, timeout=5
        )
        assert answer.status_code == 200
        page = answer.json()
        seen += [user["id"] for user in page["items"]]
    assert seen == created
    assert all("password" not in str(user) for user in page["items"])


def test_list_default_page_size_is_100(standins, customer, token):
    seed_users(standins, customer, 101)
    page = requests.get(users_url(standins, customer), headers=headers(token), timeout=5).json()
    assert len(page["items"]) == 100
    assert "next" in page["links"]


def test_list_filters_inactive_users(standins, customer, token):
    seed_users(standins, customer, 2)
    gone = standins.partner_center.add_user(
        customer, {"userPrincipalName": "gone@contoso.onmicrosoft.com", "state": "inactive"}
    )
    active = requests.get(users_url(standins, customer), headers=headers(token), timeout=5)
    assert len(active.json()["items"]) == 2
    inactive = requests.get(
        users_url(standins, customer),
        params={
            "size": "10",
            "filter": '{"Field":"UserState","Value":"Inactive","Operator":"equals"}',
        },
        headers=headers(token),
        timeout=5,
    )
    assert [user["id"] for user in inactive.json()["items"]] == [gone["id"]]


def test_bad_continuation_token_and_size_are_400(standins, customer, token):
    answer = requests.get(
        users_url(standins, customer) + "?size=2&seekOperation=next",
        headers=headers(token, {"MS-ContinuationToken": "bogus"}),
        timeout=5,
    )
    assert answer.status_code == 400
    answer = requests.get(
        users_url(standins, customer) + "?size=0", headers=headers(token), timeout=5
    )
    assert answer.status_code == 400


def test_get_one_user_and_404(standins, customer, token):
    created = create_user(standins, customer, token).json()
    answer = requests.get(
        f"{users_url(standins, customer)}/{created['id']}", headers=headers(token), timeout=5
    )
    assert answer.status_code == 200
    assert answer.json()["userPrincipalName"] == created["userPrincipalName"]
    assert "password" not in answer.json().get("passwordProfile", {})
    missing = requests.get(
        f"{users_url(standins, customer)}/{uuid.uuid4()}", headers=headers(token), timeout=5
    )
    assert missing.status_code == 404
    counters = standins.partner_center.counters["calls"]
    assert counters["GET /v1/customers/{id}/users/{user_id}"] == 2


def test_gets_check_the_token_too(standins, customer):
    assert requests.get(users_url(standins, customer), timeout=5).status_code == 401
    answer = requests.get(f"{users_url(standins, customer)}/{uuid.uuid4()}", timeout=5)
    assert answer.status_code == 401


def test_unknown_path_is_404(standins, token):
    answer = requests.get(
        f"{standins.partner_center.base_url}/v1/nothing", headers=headers(token), timeout=5
    )
    assert answer.status_code == 404


def test_duplicate_upn_plain_400_variant(standins, customer, token):
    standins.partner_center.configure(duplicate_upn_plain=True)
    assert create_user(standins, customer, token).status_code == 201
    answer = create_user(standins, customer, token)
    assert (answer.status_code, answer.json()["code"]) == (400, 3000)
    assert "userPrincipalName" not in answer.json()["description"]


def test_user_list_lag_variant_hides_a_new_user_from_the_list_only(standins, customer, token):
    standins.partner_center.configure(user_list_lag_seconds=60.0)
    created = create_user(standins, customer, token).json()
    session = requests.Session()
    session.headers.update(headers(token))
    session.verify = str(standins.ca_file)
    listed = session.get(users_url(standins, customer), timeout=5).json()["items"]
    assert created["id"] not in [user["id"] for user in listed]
    one = session.get(f"{users_url(standins, customer)}/{created['id']}", timeout=5)
    assert one.status_code == 200  # reading the user by id is current
