"""The Partner Center user store (shared with Graph) answers one user's calls without reading
the customer's whole user list, as the real directory does: a 10,000-hire soak slowed down as
its customers grew while every create, Graph look-up and token check scanned every user. Real
HTTP; the store's indexes must agree with it through deletes, restores and purges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import pytest
import requests

from devtools.standins import PartnerSeed, StandInStack

from .helpers import create_user, headers, user_body
from .test_graph import customer_token, graph_get

RESTORE = {"state": "active", "attributes": {"objectType": "CustomerUser"}}


class _NoScan(list[dict[str, Any]]):
    """A user list that fails the call that reads it whole."""

    def __iter__(self) -> NoReturn:
        raise AssertionError("a call read the customer's whole user list")


@pytest.fixture
def graph_token(standins: StandInStack, partner: PartnerSeed, customer: str) -> str:
    return str(customer_token(standins, partner, customer).json()["access_token"])


def users_url(stack: StandInStack, customer: str, tail: str = "") -> str:
    return f"{stack.partner_center.base_url}/v1/customers/{customer}/users{tail}"


def test_one_users_calls_do_not_read_the_whole_user_list(
    standins: StandInStack, token: str, customer: str, graph_token: str
) -> None:
    partner_center = standins.partner_center
    partner_center.seed_users(customer, 3000, domain="contoso.com")
    jane = create_user(standins, customer, token).json()
    partner_center.delete_user(customer, jane["id"])
    # The store's list, swapped for one that refuses to be read whole (private state: this
    # test is about how the store is read).
    store = partner_center._customers[customer.lower()]
    store.users = _NoScan(store.users)

    new = create_user(standins, customer, token, user_body("new.hire@contoso.com"))
    assert new.status_code == 201, new.text
    duplicate = create_user(standins, customer, token, user_body("SEEDED1234@contoso.com"))
    assert duplicate.status_code == 400
    held_by_deleted = create_user(standins, customer, token)
    assert held_by_deleted.status_code == 400
    by_upn = graph_get(standins, graph_token, "/v1.0/users/seeded2999@contoso.com")
    assert by_upn.json()["userPrincipalName"] == "seeded2999@contoso.com"
    by_id = graph_get(standins, graph_token, f"/v1.0/users/{new.json()['id']}")
    assert by_id.json()["userPrincipalName"] == "new.hire@contoso.com"
    assert graph_get(standins, graph_token, "/v1.0/users/nobody@contoso.com").status_code == 404
    assert (
        graph_get(standins, graph_token, "/v1.0/users/jane.doe@contoso.onmicrosoft.com").status_code
        == 404
    )
    one = requests.get(
        users_url(standins, customer, f"/{new.json()['id']}"), headers=headers(token), timeout=5
    )
    assert one.json()["userPrincipalName"] == "new.hire@contoso.com"
    restored = requests.patch(
        users_url(standins, customer, f"/{jane['id']}"),
        json=RESTORE,
        headers=headers(token),
        timeout=5,
    )
    assert restored.json()["state"] == "active"
    gone = requests.delete(
        users_url(standins, customer, f"/{new.json()['id']}"), headers=headers(token), timeout=5
    )
    assert gone.status_code == 204


def test_a_purged_user_leaves_every_index(
    standins: StandInStack, token: str, customer: str, graph_token: str
) -> None:
    partner_center = standins.partner_center
    jane = create_user(standins, customer, token).json()
    # Deleted, restored, then deleted again long ago: the purge must still find it.
    partner_center.delete_user(customer, jane["id"])
    requests.patch(
        users_url(standins, customer, f"/{jane['id']}"),
        json=RESTORE,
        headers=headers(token),
        timeout=5,
    )
    partner_center.delete_user(
        customer, jane["id"], deleted_at=datetime.now(UTC) - timedelta(days=31)
    )

    assert (
        requests.get(
            users_url(standins, customer, f"/{jane['id']}"), headers=headers(token), timeout=5
        ).status_code
        == 404
    )
    again = create_user(standins, customer, token)
    assert again.status_code == 201
    found = graph_get(standins, graph_token, "/v1.0/users/jane.doe@contoso.onmicrosoft.com")
    assert found.json()["id"] == again.json()["id"]
    assert [user["id"] for user in partner_center.users(customer)] == [again.json()["id"]]


def test_a_deleted_and_an_active_user_sharing_a_upn(
    standins: StandInStack, token: str, customer: str, graph_token: str
) -> None:
    partner_center = standins.partner_center
    partner_center.configure(deleted_users_hold_upn=False)
    old = create_user(standins, customer, token).json()
    partner_center.delete_user(customer, old["id"])
    new = create_user(standins, customer, token, user_body("JANE.DOE@contoso.onmicrosoft.com"))
    assert new.status_code == 201

    found = graph_get(standins, graph_token, "/v1.0/users/jane.doe@contoso.onmicrosoft.com")
    assert found.json()["id"] == new.json()["id"]
    # The deleted one cannot come back while the new one holds the UPN.
    refused = requests.patch(
        users_url(standins, customer, f"/{old['id']}"),
        json=RESTORE,
        headers=headers(token),
        timeout=5,
    )
    assert refused.status_code == 400
    # Oldest first, both kept.
    states = [(user["id"], user["state"]) for user in partner_center.users(customer)]
    assert states == [(old["id"], "inactive"), (new.json()["id"], "active")]
