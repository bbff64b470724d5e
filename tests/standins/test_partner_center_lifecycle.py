"""Partner Center stand-in beyond the first create: deleted users, restore, password reset,
subscribed SKUs and licence updates. Real HTTP throughout."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from devtools.standins import Domain, Fault, StandInStack
from devtools.standins.service import ControlError

from .helpers import create_user, headers, user_body

INACTIVE_FILTER = json.dumps({"Field": "UserState", "Value": "Inactive", "Operator": "equals"})
NEW_PASSWORD = "New*Passw0rd-2026"
E3 = "c7df2760-2c81-4ef7-b578-5b5392b571df"
VISIO = "4b244418-9658-4451-a2b8-b5e2b364e9bd"
MINECRAFT = "8f1a2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d"


def users_url(stack: StandInStack, customer: str) -> str:
    return f"{stack.partner_center.base_url}/v1/customers/{customer}/users"


def call(stack, method, customer, token, tail="", *, body=None, params=None):
    return requests.request(
        method,
        users_url(stack, customer) + tail,
        json=body,
        params=params,
        headers=headers(token),
        timeout=5,
    )


def restore_body():
    return {"state": "active", "attributes": {"objectType": "CustomerUser"}}


def reset_body(password=NEW_PASSWORD, **profile):
    return {
        "passwordProfile": {"password": password, "forceChangePassword": True, **profile},
        "attributes": {"objectType": "CustomerUser"},
    }


def license_body(*sku_ids, remove=()):
    return {
        "licensesToAssign": [{"skuId": sku_id, "excludedPlans": None} for sku_id in sku_ids],
        **({"licensesToRemove": list(remove)} if remove else {}),
        "attributes": {"objectType": "LicenseUpdate"},
    }


@pytest.fixture
def jane(standins, customer, token):
    """A user created over HTTP with the helper's password."""
    return create_user(standins, customer, token).json()


# Deleted users -------------------------------------------------------------------------------


def test_delete_over_http_soft_deletes_and_lists_only_under_the_inactive_filter(
    standins, customer, token, jane
):
    deleted = call(standins, "DELETE", customer, token, f"/{jane['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""

    active = call(standins, "GET", customer, token).json()
    assert active["items"] == []
    inactive = call(standins, "GET", customer, token, params={"filter": INACTIVE_FILTER}).json()
    (listed,) = inactive["items"]
    assert listed["id"] == jane["id"]
    assert listed["state"] == "inactive"
    deleted_at = datetime.fromisoformat(listed["softDeletionTime"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - deleted_at) < timedelta(minutes=1)
    # GET one user still answers, with the state.
    one = call(standins, "GET", customer, token, f"/{jane['id']}").json()
    assert (one["state"], one["softDeletionTime"]) == ("inactive", listed["softDeletionTime"])
    assert standins.partner_center.counters["users_deleted"] == 1
    # A second delete: the user is no longer there to delete.
    assert call(standins, "DELETE", customer, token, f"/{jane['id']}").status_code == 404


def test_the_inactive_filter_works_url_encoded_and_pages(standins, customer, token):
    for number in range(3):
        standins.partner_center.add_user(
            customer,
            {"userPrincipalName": f"gone{number}@contoso.onmicrosoft.com", "state": "inactive"},
        )
    standins.partner_center.add_user(customer, {"userPrincipalName": "here@contoso.com"})
    url = f"{users_url(standins, customer)}?size=2&filter={requests.utils.quote(INACTIVE_FILTER)}"
    page = requests.get(url, headers=headers(token), timeout=5).json()
    assert [user["userPrincipalName"] for user in page["items"]] == [
        "gone0@contoso.onmicrosoft.com",
        "gone1@contoso.onmicrosoft.com",
    ]
    link = page["links"]["next"]
    continuation = {item["key"]: item["value"] for item in link["headers"]}
    rest = requests.get(
        standins.partner_center.base_url + link["uri"],
        headers=headers(token, continuation),
        timeout=5,
    ).json()
    assert [user["userPrincipalName"] for user in rest["items"]] == [
        "gone2@contoso.onmicrosoft.com"
    ]


def test_python_delete_user_keeps_the_upn_taken(standins, customer, token, jane):
    deleted = standins.partner_center.delete_user(customer, jane["id"])
    assert deleted["state"] == "inactive"
    assert deleted["softDeletionTime"].endswith("Z")
    again = create_user(standins, customer, token, user_body("JANE.DOE@contoso.onmicrosoft.com"))
    assert again.status_code == 400
    standins.partner_center.configure(duplicate_upn_status=409)
    assert create_user(standins, customer, token).status_code == 409
    # Seeding is not counted: counters describe what clients did.
    assert standins.partner_center.counters["users_deleted"] == 0


def test_a_user_deleted_more_than_30_days_ago_is_gone(standins, customer, token, jane):
    standins.partner_center.delete_user(
        customer, jane["id"], deleted_at=datetime.now(UTC) - timedelta(days=31)
    )
    assert call(standins, "GET", customer, token, f"/{jane['id']}").status_code == 404
    restore = call(standins, "PATCH", customer, token, f"/{jane['id']}", body=restore_body())
    assert (restore.status_code, restore.json()["code"]) == (404, 404)
    assert (
        call(standins, "GET", customer, token, params={"filter": INACTIVE_FILTER}).json()["items"]
        == []
    )
    # The UPN is free again.
    assert create_user(standins, customer, token).status_code == 201


def test_a_seeded_deleted_user_can_be_dated(standins, customer, token):
    when = datetime.now(UTC) - timedelta(days=29)
    seeded = standins.partner_center.add_user(
        customer,
        {
            "userPrincipalName": "old@contoso.com",
            "state": "inactive",
            "softDeletionTime": when.isoformat(),
        },
    )
    assert seeded["softDeletionTime"] == when.isoformat(timespec="seconds").replace("+00:00", "Z")
    restored = call(standins, "PATCH", customer, token, f"/{seeded['id']}", body=restore_body())
    assert restored.status_code == 200


# Restore -------------------------------------------------------------------------------------


def test_restore_within_the_window(standins, customer, token, jane):
    standins.partner_center.delete_user(customer, jane["id"])
    answer = call(standins, "PATCH", customer, token, f"/{jane['id']}", body=restore_body())

    assert answer.status_code == 200
    user = answer.json()
    assert (user["id"], user["state"], user["softDeletionTime"]) == (jane["id"], "active", None)
    assert "password" not in user.get("passwordProfile", {})
    assert [u["id"] for u in call(standins, "GET", customer, token).json()["items"]] == [jane["id"]]
    # The user keeps its old password; restoring again changes nothing and counts nothing.
    assert standins.partner_center.user_has_password(customer, jane["id"], "abCD123*xyz")
    again = call(standins, "PATCH", customer, token, f"/{jane['id']}", body=restore_body())
    assert again.status_code == 200
    assert standins.partner_center.counters["users_restored"] == 1


def test_restore_refused_while_someone_else_holds_the_upn(standins, customer, token):
    standins.partner_center.configure(deleted_users_hold_upn=False)
    gone = standins.partner_center.add_user(
        customer, {"userPrincipalName": "jane.doe@contoso.onmicrosoft.com", "state": "inactive"}
    )
    create_user(standins, customer, token)
    answer = call(standins, "PATCH", customer, token, f"/{gone['id']}", body=restore_body())
    assert (answer.status_code, answer.json()["code"]) == (400, 3000)
    assert standins.partner_center.counters["users_restored"] == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"state": "inactive", "attributes": {"objectType": "CustomerUser"}}, 400, 400056),
        ({"state": "active"}, 400, 400056),
        ({"state": "active", "attributes": {"objectType": "LicenseUpdate"}}, 400, 400056),
        ({"attributes": {"objectType": "CustomerUser"}}, 400, 400056),
        ([], 400, 800002),
    ],
)
def test_restore_validation(standins, customer, token, jane, body, status, code):
    standins.partner_center.delete_user(customer, jane["id"])
    answer = call(standins, "PATCH", customer, token, f"/{jane['id']}", body=body)
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert standins.partner_center.users(customer)[0]["state"] == "inactive"


def test_restore_of_an_unknown_user_is_404(standins, customer, token):
    answer = call(standins, "PATCH", customer, token, f"/{uuid.uuid4()}", body=restore_body())
    assert answer.status_code == 404


def test_restore_and_reset_need_gdap_and_a_token(standins, token):
    tenant_id = str(uuid.uuid4())
    standins.partner_center.add_customer(tenant_id, [Domain("nogdap.example")], gdap=False)
    user = standins.partner_center.add_user(
        tenant_id, {"userPrincipalName": "a@nogdap.example", "state": "inactive"}
    )
    for tail, body in [
        (f"/{user['id']}", restore_body()),
        (f"/{user['id']}/resetpassword", reset_body()),
    ]:
        answer = call(standins, "PATCH", tenant_id, token, tail, body=body)
        assert (answer.status_code, answer.json()["code"]) == (403, 900150)
        assert call(standins, "PATCH", tenant_id, None, tail, body=body).status_code == 401


def test_apply_then_drop_restores_although_the_answer_is_lost(standins, customer, token, jane):
    standins.partner_center.delete_user(customer, jane["id"])
    standins.partner_center.faults.add(
        Fault.apply_then_drop(), match="PATCH /v1/customers/*/users/*"
    )
    with pytest.raises(requests.ConnectionError):
        call(standins, "PATCH", customer, token, f"/{jane['id']}", body=restore_body())
    assert standins.partner_center.users(customer)[0]["state"] == "active"
    assert standins.partner_center.counters["faults_injected"]["apply_then_drop"] == 1


# Password reset ------------------------------------------------------------------------------


@pytest.mark.parametrize("tail", ["", "/resetpassword"])
def test_reset_on_either_path_by_default(standins, customer, token, jane, tail):
    answer = call(standins, "PATCH", customer, token, f"/{jane['id']}{tail}", body=reset_body())

    assert answer.status_code == 200
    user = answer.json()
    assert user["id"] == jane["id"]
    assert user["passwordProfile"] == {"forceChangePassword": True, "password": NEW_PASSWORD}
    partner_center = standins.partner_center
    assert partner_center.user_has_password(customer, jane["id"], NEW_PASSWORD)
    assert not partner_center.user_has_password(customer, jane["id"], "abCD123*xyz")
    assert partner_center.counters["passwords_reset"] == 1
    (recorded,) = [r for r in partner_center.requests if r.method == "PATCH"]
    assert recorded.json["passwordProfile"]["password"] == "<redacted>"
    assert "password" not in partner_center.users(customer)[0]["passwordProfile"]


@pytest.mark.parametrize(
    ("path_setting", "user_path", "reset_path"),
    [("user", 200, 404), ("resetpassword", 405, 200), ("both", 200, 200)],
)
def test_password_reset_path_switch(
    standins, customer, token, jane, path_setting, user_path, reset_path
):
    standins.partner_center.configure(password_reset_path=path_setting)
    on_user = call(standins, "PATCH", customer, token, f"/{jane['id']}", body=reset_body())
    on_reset = call(
        standins, "PATCH", customer, token, f"/{jane['id']}/resetpassword", body=reset_body()
    )
    assert (on_user.status_code, on_reset.status_code) == (user_path, reset_path)
    for answer in (on_user, on_reset):
        if answer.status_code != 200:
            assert answer.json()["code"] == answer.status_code
            assert answer.json()["source"] == "PartnerFD"
    expected = [user_path, reset_path].count(200)
    assert standins.partner_center.counters["passwords_reset"] == expected


def test_a_restore_still_works_on_the_user_path_when_resets_go_elsewhere(
    standins, customer, token, jane
):
    standins.partner_center.configure(password_reset_path="resetpassword")
    standins.partner_center.delete_user(customer, jane["id"])
    answer = call(standins, "PATCH", customer, token, f"/{jane['id']}", body=restore_body())
    assert answer.status_code == 200


def test_reset_answer_without_the_password(standins, customer, token, jane):
    standins.partner_center.configure(reset_echoes_password=False)
    answer = call(
        standins, "PATCH", customer, token, f"/{jane['id']}/resetpassword", body=reset_body()
    )
    assert answer.status_code == 200
    assert answer.json()["passwordProfile"] == {"forceChangePassword": True}
    assert NEW_PASSWORD not in answer.text
    assert standins.partner_center.user_has_password(customer, jane["id"], NEW_PASSWORD)


def test_restore_and_reset_in_one_patch(standins, customer, token, jane):
    standins.partner_center.delete_user(customer, jane["id"])
    body = {**restore_body(), **reset_body()}
    answer = call(standins, "PATCH", customer, token, f"/{jane['id']}", body=body)
    assert answer.status_code == 200
    assert answer.json()["state"] == "active"
    assert standins.partner_center.user_has_password(customer, jane["id"], NEW_PASSWORD)
    counters = standins.partner_center.counters
    assert (counters["users_restored"], counters["passwords_reset"]) == (1, 1)


@pytest.mark.parametrize("tail", ["", "/resetpassword"])
def test_a_deleted_users_password_cannot_be_reset(standins, customer, token, jane, tail):
    standins.partner_center.delete_user(customer, jane["id"])
    answer = call(standins, "PATCH", customer, token, f"/{jane['id']}{tail}", body=reset_body())
    assert answer.status_code == 404
    assert standins.partner_center.user_has_password(customer, jane["id"], "abCD123*xyz")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (reset_body("weak"), 3000),
        (reset_body("abcDEF12é"), 3000),
        (
            {
                "passwordProfile": {"forceChangePassword": True},
                "attributes": {"objectType": "CustomerUser"},
            },
            400056,
        ),
        ({"passwordProfile": {"password": NEW_PASSWORD}}, 400056),
    ],
)
@pytest.mark.parametrize("tail", ["", "/resetpassword"])
def test_reset_validation(standins, customer, token, jane, body, code, tail):
    answer = call(standins, "PATCH", customer, token, f"/{jane['id']}{tail}", body=body)
    assert (answer.status_code, answer.json()["code"]) == (400, code)
    assert standins.partner_center.user_has_password(customer, jane["id"], "abCD123*xyz")


def test_reset_of_an_unknown_user_is_404_with_string_codes(standins, customer, token):
    standins.partner_center.configure(code_as_string=True)
    answer = call(
        standins, "PATCH", customer, token, f"/{uuid.uuid4()}/resetpassword", body=reset_body()
    )
    assert (answer.status_code, answer.json()["code"]) == (404, "404")


def test_reset_faults_match_on_method_and_path(standins, customer, token, jane):
    standins.partner_center.faults.add(
        Fault.status(429, retry_after=3), match="PATCH /v1/customers/*/users/*/resetpassword"
    )
    throttled = call(
        standins, "PATCH", customer, token, f"/{jane['id']}/resetpassword", body=reset_body()
    )
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "3"
    assert (
        call(
            standins, "PATCH", customer, token, f"/{jane['id']}/resetpassword", body=reset_body()
        ).status_code
        == 200
    )


# Subscribed SKUs and licences ----------------------------------------------------------------


@pytest.fixture
def skus(standins, customer):
    partner_center = standins.partner_center
    partner_center.add_subscribed_sku(customer, E3, "group1", 2, name="Microsoft 365 E3")
    partner_center.add_subscribed_sku(customer, VISIO, "group1", 1, name="Visio Plan 2")
    partner_center.add_subscribed_sku(customer, MINECRAFT, "group2", 5)
    return partner_center


def skus_url(stack, customer):
    return f"{stack.partner_center.base_url}/v1/customers/{customer}/subscribedskus"


def sku_units(stack, customer, token, sku_id):
    listing = requests.get(skus_url(stack, customer), headers=headers(token), timeout=5).json()
    (item,) = [item for item in listing["items"] if item["productSku"]["id"] == sku_id]
    return item["availableUnits"], item["activeUnits"], item["consumedUnits"]


def test_subscribed_skus_listing(standins, customer, token, skus):
    answer = requests.get(skus_url(standins, customer), headers=headers(token), timeout=5)
    assert answer.status_code == 200
    listing = answer.json()
    assert listing["totalCount"] == 3
    assert listing["attributes"] == {"objectType": "Collection"}
    e3 = listing["items"][0]
    assert e3["productSku"]["id"] == E3
    assert e3["productSku"]["name"] == "Microsoft 365 E3"
    assert e3["productSku"]["licenseGroupId"] == e3["licenseGroupId"] == "group1"
    assert (e3["availableUnits"], e3["activeUnits"], e3["consumedUnits"]) == (2, 2, 0)
    assert e3["attributes"] == {"objectType": "SubscribedSku"}
    group2 = requests.get(
        skus_url(standins, customer),
        params={"licenseGroupIds": "group2"},
        headers=headers(token),
        timeout=5,
    ).json()
    assert [item["productSku"]["id"] for item in group2["items"]] == [MINECRAFT]
    counters = standins.partner_center.counters["calls"]
    assert counters["GET /v1/customers/{id}/subscribedskus"] == 2


def test_assign_licences_consumes_units(standins, customer, token, jane, skus):
    url = f"/{jane['id']}/licenseupdates"
    answer = call(standins, "POST", customer, token, url, body=license_body(E3, VISIO))

    assert answer.status_code == 201
    update = answer.json()
    assert update["licensesToAssign"] == [
        {"skuId": E3, "excludedPlans": None},
        {"skuId": VISIO, "excludedPlans": None},
    ]
    assert update["attributes"] == {"objectType": "LicenseUpdate"}
    assert update["licenseWarnings"] == []
    assert sku_units(standins, customer, token, E3) == (1, 2, 1)
    assert sku_units(standins, customer, token, VISIO) == (0, 1, 1)
    assert skus.assigned_skus(customer, jane["id"]) == [E3, VISIO]
    # Assigning what the user already has consumes nothing more.
    again = call(standins, "POST", customer, token, url, body=license_body(E3, VISIO))
    assert again.status_code == 201
    assert sku_units(standins, customer, token, VISIO) == (0, 1, 1)
    counters = skus.counters
    assert (counters["license_updates"], counters["licenses_assigned"]) == (2, 2)

    licenses = call(standins, "GET", customer, token, f"/{jane['id']}/licenses").json()
    assert [item["productSku"]["id"] for item in licenses["items"]] == [E3, VISIO]
    assert licenses["items"][0]["attributes"] == {"objectType": "License"}


def test_no_units_left_is_60012_and_assigns_nothing(standins, customer, token, jane, skus):
    other = create_user(standins, customer, token, user_body("other@contoso.com")).json()
    url = f"/{other['id']}/licenseupdates"
    assert call(standins, "POST", customer, token, url, body=license_body(VISIO)).status_code == 201

    answer = call(
        standins,
        "POST",
        customer,
        token,
        f"/{jane['id']}/licenseupdates",
        body=license_body(E3, VISIO),
    )
    assert (answer.status_code, answer.json()["code"]) == (400, 60012)
    assert VISIO in answer.json()["description"]
    assert skus.assigned_skus(customer, jane["id"]) == []
    assert sku_units(standins, customer, token, E3) == (2, 2, 0)

    skus.add_units(customer, VISIO, 1)
    retry = call(
        standins,
        "POST",
        customer,
        token,
        f"/{jane['id']}/licenseupdates",
        body=license_body(E3, VISIO),
    )
    assert retry.status_code == 201
    assert sku_units(standins, customer, token, VISIO) == (0, 2, 2)


def test_one_licence_group_per_request(standins, customer, token, jane, skus):
    answer = call(
        standins,
        "POST",
        customer,
        token,
        f"/{jane['id']}/licenseupdates",
        body=license_body(E3, MINECRAFT),
    )
    assert (answer.status_code, answer.json()["code"]) == (400, 400056)
    assert "licence groups" in answer.json()["description"]
    assert skus.assigned_skus(customer, jane["id"]) == []


def test_unknown_sku_is_400_400056(standins, customer, token, jane, skus):
    unknown = str(uuid.uuid4())
    answer = call(
        standins,
        "POST",
        customer,
        token,
        f"/{jane['id']}/licenseupdates",
        body=license_body(unknown),
    )
    assert (answer.status_code, answer.json()["code"]) == (400, 400056)
    assert "no subscription" in answer.json()["description"]


@pytest.mark.parametrize(
    "body",
    [
        {"licensesToAssign": [{"skuId": E3}]},  # no attributes
        {"licensesToAssign": [{"skuId": E3}], "attributes": {"objectType": "CustomerUser"}},
        {"licensesToAssign": [], "attributes": {"objectType": "LicenseUpdate"}},
        {"licensesToAssign": [{"skuId": "nope"}], "attributes": {"objectType": "LicenseUpdate"}},
        {
            "licensesToAssign": [{"skuId": E3, "excludedPlans": "x"}],
            "attributes": {"objectType": "LicenseUpdate"},
        },
        {"licensesToAssign": {"skuId": E3}, "attributes": {"objectType": "LicenseUpdate"}},
        {"licensesToRemove": [{"skuId": E3}], "attributes": {"objectType": "LicenseUpdate"}},
    ],
)
def test_licence_update_validation(standins, customer, token, jane, skus, body):
    answer = call(standins, "POST", customer, token, f"/{jane['id']}/licenseupdates", body=body)
    assert (answer.status_code, answer.json()["code"]) == (400, 400056)


def test_licence_update_for_a_missing_or_deleted_user_is_404(standins, customer, token, jane, skus):
    missing = call(
        standins,
        "POST",
        customer,
        token,
        f"/{uuid.uuid4()}/licenseupdates",
        body=license_body(E3),
    )
    assert missing.status_code == 404
    standins.partner_center.delete_user(customer, jane["id"])
    deleted = call(
        standins,
        "POST",
        customer,
        token,
        f"/{jane['id']}/licenseupdates",
        body=license_body(E3),
    )
    assert deleted.status_code == 404


def test_licence_update_without_gdap_is_403(standins, token):
    tenant_id = str(uuid.uuid4())
    standins.partner_center.add_customer(tenant_id, [Domain("nogdap.example")], gdap=False)
    standins.partner_center.add_subscribed_sku(tenant_id, E3, "group1", 1)
    user = standins.partner_center.add_user(tenant_id, {"userPrincipalName": "a@nogdap.example"})
    answer = call(
        standins, "POST", tenant_id, token, f"/{user['id']}/licenseupdates", body=license_body(E3)
    )
    assert (answer.status_code, answer.json()["code"]) == (403, 900150)
    assert standins.partner_center.assigned_skus(tenant_id, user["id"]) == []


def test_remove_frees_units_and_delete_releases_them(standins, customer, token, jane, skus):
    url = f"/{jane['id']}/licenseupdates"
    call(standins, "POST", customer, token, url, body=license_body(E3))
    removed = call(standins, "POST", customer, token, url, body=license_body(remove=[E3]))
    assert removed.status_code == 201
    assert sku_units(standins, customer, token, E3) == (2, 2, 0)
    assert skus.counters["licenses_removed"] == 1

    call(standins, "POST", customer, token, url, body=license_body(E3))
    assert sku_units(standins, customer, token, E3) == (1, 2, 1)
    call(standins, "DELETE", customer, token, f"/{jane['id']}")
    assert sku_units(standins, customer, token, E3) == (2, 2, 0)
    call(standins, "PATCH", customer, token, f"/{jane['id']}", body=restore_body())
    assert skus.assigned_skus(customer, jane["id"]) == []


def test_licence_faults_and_string_codes(standins, customer, token, jane, skus):
    standins.partner_center.configure(code_as_string=True)
    standins.partner_center.add_subscribed_sku(customer, VISIO, "group1", 0)
    answer = call(
        standins,
        "POST",
        customer,
        token,
        f"/{jane['id']}/licenseupdates",
        body=license_body(VISIO),
    )
    assert answer.json()["code"] == "60012"
    standins.partner_center.faults.add(
        Fault.apply_then_drop(), match="POST /v1/customers/*/users/*/licenseupdates"
    )
    with pytest.raises(requests.ConnectionError):
        call(
            standins,
            "POST",
            customer,
            token,
            f"/{jane['id']}/licenseupdates",
            body=license_body(E3),
        )
    assert skus.assigned_skus(customer, jane["id"]) == [E3]


# Config switches -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"success_status": 202},
        {"duplicate_upn_status": 500},
        {"password_reset_path": "somewhere"},
        {"reset_echoes_password": "yes"},
        {"no_such_switch": True},
    ],
)
def test_configure_refuses_values_the_service_cannot_take(standins, changes):
    with pytest.raises(ControlError):
        standins.partner_center.configure(**changes)


def test_configure_lasts_until_the_next_reset(standins):
    partner_center = standins.partner_center
    partner_center.configure(
        success_status=200,
        duplicate_upn_status=409,
        idempotent_request_ids=False,
        password_reset_path="user",
        reset_echoes_password=False,
    )
    assert partner_center.config.password_reset_path == "user"
    standins.reset()
    config = partner_center.config
    assert (config.success_status, config.duplicate_upn_status) == (201, 400)
    assert config.idempotent_request_ids is True
    assert (config.password_reset_path, config.reset_echoes_password) == ("both", True)
    assert config.deleted_users_hold_upn is True
