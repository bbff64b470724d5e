"""The demo data ``python -m devtools.standins --seed-demo`` loads: one partner with App+User
credentials in the vault, and customers that exercise each path of the product (a normal
customer, an unverified domain, a federated domain, no GDAP role, an existing user, products
to license).

Tenant ids are fixed so demo events and documentation can name them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .partner_center import Domain
from .stack import PartnerSeed, StandInStack

DEMO_PARTNER_TENANT_ID = "7f0c2a6e-0d3b-4c6e-9a51-2d1f8f3b9c10"


@dataclass(frozen=True)
class DemoCustomer:
    tenant_id: str
    name: str
    domains: tuple[Domain, ...]
    gdap: bool = True


DEMO_CUSTOMERS = (
    DemoCustomer(
        "4b10bf41-ab11-40e3-8c53-cd67849b50de",
        "Contoso",
        (Domain("contoso.onmicrosoft.com"), Domain("contoso.com")),
    ),
    DemoCustomer(
        "0d5e1c3a-7b8f-4e21-9c6d-3a2b1f4e5d60",
        "Fabrikam",
        (Domain("fabrikam.onmicrosoft.com"), Domain("fabrikam.com", verified=False)),
    ),
    DemoCustomer(
        "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
        "Northwind",
        (Domain("northwind.onmicrosoft.com"), Domain("northwindtraders.com", federated=True)),
    ),
    DemoCustomer(
        "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f",
        "Tailspin (no GDAP role)",
        (Domain("tailspin.onmicrosoft.com"),),
        gdap=False,
    ),
    DemoCustomer(
        "5f6e7d8c-9b0a-4f1e-8d2c-3b4a5f6e7d8c",
        "Woodgrove (no GDAP role)",
        (Domain("woodgrove.onmicrosoft.com"),),
        gdap=False,
    ),
)
# Someone who already holds a UPN, so a hire with the same UPN is a conflict.
DEMO_EXISTING_USER = {
    "userPrincipalName": "existing.user@contoso.onmicrosoft.com",
    "firstName": "Existing",
    "lastName": "User",
    "displayName": "Existing User",
    "usageLocation": "US",
}


# Contoso's products, so hire events can ask for licences: three units of one, none of the other
# (its licence update answers 60012), and one of another licence group.
DEMO_SKUS = (
    ("c42b9cae-ea4f-4ab7-9717-81576235ccac", "Microsoft 365 Business Premium", "group1", 3),
    ("4b244418-9658-4451-a2b8-b5e2b364e9bd", "Visio Plan 2", "group1", 0),
    ("a5e4f3d2-c1b0-4a9f-8e7d-6c5b4a3f2e1d", "Minecraft Education", "group2", 10),
)


def seed_demo(stack: StandInStack) -> PartnerSeed:
    seed = stack.seed_partner(DEMO_PARTNER_TENANT_ID)
    for customer in DEMO_CUSTOMERS:
        stack.partner_center.add_customer(customer.tenant_id, customer.domains, gdap=customer.gdap)
    stack.partner_center.add_user(DEMO_CUSTOMERS[0].tenant_id, dict(DEMO_EXISTING_USER))
    for sku_id, name, group, units in DEMO_SKUS:
        stack.partner_center.add_subscribed_sku(
            DEMO_CUSTOMERS[0].tenant_id, sku_id, group, units, name=name
        )
    return seed
