"""The paged UPN lookup: where next-page links may lead, and how long a lookup may take."""

from __future__ import annotations

import itertools
from urllib.parse import urlsplit

import pytest

from devtools.standins import Domain, StandInStack
from shared.adapters.partner_center import PartnerCenterClient
from shared.domain.errors import ServiceUnavailableError as PartnerCenterError
from shared.domain.outcomes import Category
from tests.hostile.helpers import make_credentials

CUSTOMER = "4b10bf41-ab11-40e3-8c53-cd67849b50de"
DOMAIN = "contoso.onmicrosoft.com"
WANTED = f"staff240@{DOMAIN}"
CORRELATION = "8a53b025-d5be-4d98-ab20-229d1813de76"


def tenant_of(stack: StandInStack, users: int = 250) -> PartnerCenterClient:
    credentials, _ = make_credentials(stack)
    stack.partner_center.add_customer(CUSTOMER, [Domain(DOMAIN)])
    for number in range(users):
        stack.partner_center.add_user(CUSTOMER, {"userPrincipalName": f"staff{number}@{DOMAIN}"})
    return PartnerCenterClient(stack.partner_center.base_url, credentials)


def list_calls(stack: StandInStack) -> int:
    return int(stack.partner_center.counters["calls"]["GET /v1/customers/{id}/users"])


@pytest.mark.parametrize(
    "link",
    [
        "{path}?{query}",
        "v1/customers/" + CUSTOMER + "/users?{query}",
        "{tail}?{query}",
        "customers/" + CUSTOMER + "/users?{query}",
        "{base}{path}?{query}",
    ],
    ids=["absolute-path", "relative-path", "without-version", "relative-without-version",
         "absolute-url-same-host"],
)
def test_next_links_of_every_plausible_form_are_followed(
    standins: StandInStack, link: str
) -> None:
    client = tenant_of(standins)
    standins.partner_center.config.next_link_format = link

    found = client.find_user_by_upn(CUSTOMER, WANTED.upper(), correlation_id=CORRELATION)

    assert found is not None
    assert found.user_principal_name == WANTED
    assert list_calls(standins) == 3


def foreign_links(stack: StandInStack) -> list[tuple[str, str]]:
    base = urlsplit(stack.partner_center.base_url)
    entra = stack.entra.authority_host
    vault = urlsplit(stack.key_vault.vault_url)
    return [
        ("another-service", entra + "{path}?{query}"),
        ("scheme-relative", f"//{vault.netloc}" + "{path}?{query}"),
        ("same-host-other-port", f"https://{vault.netloc}" + "{path}?{query}"),
        ("plain-http", f"http://{base.netloc}" + "{path}?{query}"),
        ("user-info", f"https://{base.netloc}@{vault.netloc}" + "{path}?{query}"),
        ("backslash", "/\\\\" + vault.netloc + "{path}?{query}"),
        ("public-host", "https://evil.example{path}?{query}"),
        ("broken-ipv6", "https://[::1{path}"),
    ]


@pytest.mark.parametrize("which", range(8))
def test_a_next_link_to_another_host_is_refused_and_gets_no_token(
    standins: StandInStack, which: int
) -> None:
    client = tenant_of(standins)
    name, link = foreign_links(standins)[which]
    standins.partner_center.config.next_link_format = link

    with pytest.raises(PartnerCenterError) as raised:
        client.find_user_by_upn(CUSTOMER, WANTED, correlation_id=CORRELATION)

    assert raised.value.failure.category is Category.UNAVAILABLE, name
    assert "was not followed" in raised.value.failure.message
    assert list_calls(standins) == 1
    for service in (standins.entra, standins.key_vault):
        assert not [r for r in service.requests if "/customers/" in r.path], name


def test_a_lookup_stops_at_its_time_budget(standins: StandInStack) -> None:
    credentials, _ = make_credentials(standins)
    standins.partner_center.add_customer(CUSTOMER, [Domain(DOMAIN)])
    for number in range(250):
        standins.partner_center.add_user(CUSTOMER, {"userPrincipalName": f"staff{number}@{DOMAIN}"})
    ticks = itertools.count(step=30.0)  # every look at the clock: 30 s later
    client = PartnerCenterClient(
        standins.partner_center.base_url,
        credentials,
        lookup_budget=60.0,
        monotonic=lambda: next(ticks),
    )

    with pytest.raises(PartnerCenterError) as raised:
        client.find_user_by_upn(CUSTOMER, WANTED, correlation_id=CORRELATION)

    assert raised.value.is_transient
    assert "within 60s" in raised.value.failure.message
    assert list_calls(standins) == 1
