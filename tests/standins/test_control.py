import uuid

import requests

from devtools.standins import StandInStack

from .helpers import create_user, partner_center_token, user_body


def control(stack: StandInStack, service: str, method: str, path: str, payload=None):
    base = stack.services[service].base_url
    answer = requests.request(method, f"{base}/_standin/{path}", json=payload, timeout=5)
    return answer


def test_seed_customers_and_users_over_http(standins, partner):
    tenant_id = str(uuid.uuid4())
    answer = control(
        standins,
        "partner_center",
        "POST",
        "customers",
        {
            "tenantId": tenant_id,
            "domains": [{"name": "a.example"}, {"name": "b.example", "federated": True}],
            "gdap": True,
        },
    )
    assert answer.status_code == 200
    assert [c["tenantId"] for c in answer.json()] == [tenant_id]
    control(
        standins,
        "partner_center",
        "POST",
        f"customers/{tenant_id}/users",
        {"userPrincipalName": "taken@a.example"},
    )

    token = partner_center_token(standins, partner)
    duplicate = create_user(standins, tenant_id, token, user_body("taken@a.example"))
    federated = create_user(standins, tenant_id, token, user_body("x@b.example"))
    assert duplicate.status_code == 400
    assert "federated" in federated.json()["description"]
    users = control(standins, "partner_center", "GET", f"customers/{tenant_id}/users").json()
    assert [u["userPrincipalName"] for u in users] == ["taken@a.example"]


def test_counters_requests_and_reset_over_http(standins, customer, token):
    create_user(standins, customer, token)
    counters = control(standins, "partner_center", "GET", "counters").json()
    assert counters["users_created"] == 1
    assert counters["calls"] == {"POST /v1/customers/{id}/users": 1}
    recorded = control(standins, "partner_center", "GET", "requests").json()
    assert recorded[0]["json"]["passwordProfile"]["password"] == "<redacted>"
    assert "MS-RequestId" in recorded[0]["headers"]
    # Control calls are neither counted nor recorded.
    assert standins.partner_center.counters["calls"] == {"POST /v1/customers/{id}/users": 1}

    assert control(standins, "partner_center", "POST", "reset").status_code == 200
    assert standins.partner_center.counters["users_created"] == 0


def test_faults_over_http(standins, customer, token):
    added = control(
        standins,
        "partner_center",
        "POST",
        "faults",
        {
            "fault": {"kind": "status", "status": 429, "retry_after": 2},
            "match": "POST /v1/customers/*/users",
            "times": 1,
        },
    )
    assert added.json()["scripted"][0]["remaining"] == 1
    assert create_user(standins, customer, token).status_code == 429

    control(
        standins,
        "partner_center",
        "POST",
        "faults/random",
        {"seed": 1, "rate": 1.0, "kinds": "503|drop", "match": "GET *"},
    )
    described = control(standins, "partner_center", "GET", "faults").json()
    assert described["random"][0]["rate"] == 1.0
    control(standins, "partner_center", "DELETE", "faults")
    assert control(standins, "partner_center", "GET", "faults").json() == {
        "scripted": [],
        "random": [],
    }


def test_config_over_http(standins, customer, token):
    answer = control(
        standins,
        "partner_center",
        "POST",
        "config",
        {"success_status": 200, "code_as_string": True},
    )
    assert answer.json()["success_status"] == 200
    assert create_user(standins, customer, token).status_code == 200
    wrong_type = control(standins, "partner_center", "POST", "config", {"success_status": "200"})
    unknown = control(standins, "entra", "POST", "config", {"nope": 1})
    assert wrong_type.status_code == unknown.status_code == 400


def test_entra_apps_and_refresh_tokens_over_http(standins):
    tenant_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    control(
        standins,
        "entra",
        "POST",
        "apps",
        {"tenantId": tenant_id, "clientId": client_id, "clientSecret": "s3cret"},
    )
    issued = control(
        standins, "entra", "POST", "refresh-tokens", {"tenantId": tenant_id, "clientId": client_id}
    )
    refresh_token = issued.json()["refreshToken"]
    revoked = control(
        standins, "entra", "POST", "refresh-tokens/revoke", {"refreshToken": refresh_token}
    )
    assert revoked.status_code == 200
    answer = requests.post(
        f"{standins.entra.authority_host}/{tenant_id}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": "s3cret",
            "refresh_token": refresh_token,
            "resource": "https://api.partnercenter.microsoft.com",
        },
        timeout=5,
    )
    assert answer.json()["error_codes"] == [700082]


def test_vault_secrets_and_deny_over_http(standins):
    stored = control(
        standins,
        "key_vault",
        "PUT",
        "secrets/demo-secret",
        {"value": "v", "tags": {"a": "b"}, "expiresOn": "2030-01-01T00:00:00+00:00"},
    ).json()
    assert "value" not in stored
    assert stored["attributes"]["exp"] == 1893456000
    assert standins.key_vault.get_secret_value("demo-secret") == "v"
    assert control(standins, "key_vault", "GET", "secrets").json() == {
        "versions": {"demo-secret": 1}
    }
    control(standins, "key_vault", "POST", "deny", {"name": "demo-secret"})
    assert control(standins, "key_vault", "POST", "deny", {"name": None}).status_code == 200


def test_control_errors(standins):
    assert control(standins, "partner_center", "GET", "nothing").status_code == 404
    bad = control(standins, "partner_center", "POST", "customers", {"tenantId": "x"})
    assert bad.status_code == 400
    assert control(standins, "partner_center", "POST", "faults", {"fault": {}}).status_code == 400


def test_deleted_users_skus_and_licences_over_http(standins, customer, token):
    sku_id = str(uuid.uuid4())
    user = create_user(standins, customer, token).json()
    added = control(
        standins,
        "partner_center",
        "POST",
        f"customers/{customer}/subscribedskus",
        {"skuId": sku_id, "licenseGroupId": "group1", "units": 0, "name": "Plan"},
    )
    assert added.json()["availableUnits"] == 0
    more = control(
        standins,
        "partner_center",
        "POST",
        f"customers/{customer}/subscribedskus/{sku_id}/units",
        {"units": 2},
    )
    assert more.json()["activeUnits"] == 2
    listed = control(standins, "partner_center", "GET", f"customers/{customer}/subscribedskus")
    assert [sku["productSku"]["name"] for sku in listed.json()] == ["Plan"]
    assigned = requests.post(
        f"{standins.partner_center.base_url}/v1/customers/{customer}/users/{user['id']}"
        "/licenseupdates",
        json={
            "licensesToAssign": [{"skuId": sku_id, "excludedPlans": None}],
            "attributes": {"objectType": "LicenseUpdate"},
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert assigned.status_code == 201
    licences = control(
        standins, "partner_center", "GET", f"customers/{customer}/users/{user['id']}/licenses"
    )
    assert licences.json() == [sku_id]

    deleted = control(
        standins,
        "partner_center",
        "POST",
        f"customers/{customer}/users/{user['id']}/delete",
        {"daysAgo": 3},
    )
    assert deleted.json()["state"] == "inactive"
    assert (
        control(
            standins, "partner_center", "GET", f"customers/{customer}/users/{user['id']}/licenses"
        ).json()
        == []
    )
    aged = control(
        standins,
        "partner_center",
        "POST",
        f"customers/{customer}/users/{user['id']}/delete",
        {"deletedAt": "2020-01-01T00:00:00Z"},
    )
    assert aged.status_code == 200
    assert control(standins, "partner_center", "GET", f"customers/{customer}/users").json() == []

    counters = control(standins, "partner_center", "GET", "counters").json()
    assert counters["license_updates"] == counters["licenses_assigned"] == 1
    for name in ("users_restored", "passwords_reset", "users_deleted", "licenses_removed"):
        assert counters[name] == 0


def test_new_config_switches_over_http(standins):
    answer = control(
        standins,
        "partner_center",
        "POST",
        "config",
        {"password_reset_path": "resetpassword", "reset_echoes_password": False},
    )
    assert answer.status_code == 200
    assert answer.json()["password_reset_path"] == "resetpassword"
    assert answer.json()["deleted_users_hold_upn"] is True
    refused = control(
        standins, "partner_center", "POST", "config", {"password_reset_path": "nowhere"}
    )
    assert refused.status_code == 400
    assert "password_reset_path" in refused.json()["error"]
    assert (
        control(
            standins, "partner_center", "POST", "config", {"duplicate_upn_status": 404}
        ).status_code
        == 400
    )
