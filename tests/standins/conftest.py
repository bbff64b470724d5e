import uuid

import pytest

from devtools.standins import Domain, PartnerSeed, StandInStack

from .helpers import partner_center_token

# standin_stack and standins come from tests/conftest.py. Defining them again here would make
# a second session fixture: two stacks in one session, fighting over REQUESTS_CA_BUNDLE.


@pytest.fixture
def partner(standins: StandInStack) -> PartnerSeed:
    return standins.seed_partner(str(uuid.uuid4()))


@pytest.fixture
def token(standins: StandInStack, partner: PartnerSeed) -> str:
    """An App+User Partner Center access token."""
    return partner_center_token(standins, partner)


@pytest.fixture
def customer(standins: StandInStack) -> str:
    tenant_id = str(uuid.uuid4())
    standins.partner_center.add_customer(
        tenant_id,
        [
            Domain("contoso.onmicrosoft.com"),
            Domain("contoso.com"),
            Domain("unverified.example", verified=False),
            Domain("federated.example", federated=True),
        ],
    )
    return tenant_id
