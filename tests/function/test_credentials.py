"""App+User credentials: caching, sharing between threads, refresh-token rotation."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from devtools.standins import Fault, StandInStack
from shared.adapters.credentials import MsalTokenExchange, PartnerCenterCredentials
from shared.adapters.vault import KeyVaultSecretStore
from shared.domain.errors import ProvisioningError

REFRESH_TOKEN_SECRET = "partner-center-refresh-token"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def make_credentials(
    stack: StandInStack, **options: object
) -> tuple[PartnerCenterCredentials, str]:
    partner_tenant_id = str(uuid.uuid4())
    stack.seed_partner(partner_tenant_id)
    vault_credential = ClientSecretCredential(
        stack.key_vault.vault_tenant_id,
        stack.key_vault.vault_client_id,
        stack.key_vault.vault_client_secret,
        authority=stack.entra.authority_host,
        disable_instance_discovery=True,
    )
    store = KeyVaultSecretStore(
        SecretClient(stack.key_vault.vault_url, vault_credential, verify_challenge_resource=False)
    )
    exchange = MsalTokenExchange(
        authority_host=stack.entra.authority_host, tenant_id=partner_tenant_id
    )
    return PartnerCenterCredentials(store, exchange, **options), partner_tenant_id  # type: ignore[arg-type]


def refresh_grants(stack: StandInStack) -> int:
    return int(stack.entra.counters["token_requests"].get("refresh_token", 0))


def test_concurrent_callers_share_one_token_request(standins: StandInStack) -> None:
    credentials, _ = make_credentials(standins)

    with ThreadPoolExecutor(max_workers=16) as pool:
        tokens = set(pool.map(lambda _: credentials.access_token(), range(64)))

    assert len(tokens) == 1
    assert refresh_grants(standins) == 1
    assert standins.key_vault.counters["secret_reads"][REFRESH_TOKEN_SECRET] == 1


def test_the_access_token_is_kept_until_shortly_before_it_expires(standins: StandInStack) -> None:
    clock = FakeClock()
    credentials, _ = make_credentials(standins, clock=clock)
    first = credentials.access_token()

    clock.now += 3600 - 301
    kept = credentials.access_token()
    clock.now += 2
    renewed = credentials.access_token()

    assert kept == first
    assert renewed != first
    assert refresh_grants(standins) == 2
    assert standins.key_vault.counters["secret_reads"][REFRESH_TOKEN_SECRET] == 1


def test_a_rotated_refresh_token_is_written_back_when_the_stored_one_is_old(
    standins: StandInStack,
) -> None:
    credentials, _ = make_credentials(standins, write_back_interval=timedelta(0))
    original = standins.key_vault.get_secret_value(REFRESH_TOKEN_SECRET)

    credentials.access_token()

    versions = standins.key_vault.versions(REFRESH_TOKEN_SECRET)
    assert len(versions) == 2
    assert standins.key_vault.get_secret_value(REFRESH_TOKEN_SECRET) != original


def test_a_fresh_refresh_token_is_not_written_back_more_than_once_a_day(
    standins: StandInStack,
) -> None:
    credentials, _ = make_credentials(standins)

    credentials.access_token()
    credentials.access_token(force_refresh=True)
    credentials.access_token(force_refresh=True)

    assert len(standins.key_vault.versions(REFRESH_TOKEN_SECRET)) == 1
    assert refresh_grants(standins) == 3


def test_threads_waiting_on_a_failed_refresh_share_its_failure(standins: StandInStack) -> None:
    credentials, partner_tenant_id = make_credentials(standins)
    standins.entra.faults.add(
        Fault.status(503), match=f"POST /{partner_tenant_id}/oauth2/v2.0/token", times=None
    )

    # The failing exchange is slowed down and every thread starts at once, so all eight are
    # waiting on the lock before the one refresh fails; without this a thread the pool starts
    # late would rightly send a fresh exchange and the count would depend on scheduling.
    real_exchange = credentials._exchange  # type: ignore[attr-defined]

    def slow_exchange(**arguments: str) -> object:
        time.sleep(0.5)
        return real_exchange(**arguments)

    credentials._exchange = slow_exchange  # type: ignore[attr-defined]
    everyone = threading.Barrier(8)

    def ask(_: int) -> str:
        everyone.wait()
        try:
            return credentials.access_token()
        except ProvisioningError as error:
            assert error.is_transient
            return "failed"

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(8)))

    assert answers == ["failed"] * 8
    assert standins.entra.counters["calls"]["POST /{tenant}/oauth2/v2.0/token"] <= 2


def test_a_tenant_entra_does_not_know_needs_a_person(standins: StandInStack) -> None:
    credentials, _ = make_credentials(standins)
    credentials._exchange = MsalTokenExchange(  # type: ignore[attr-defined]
        authority_host=standins.entra.authority_host, tenant_id="not-a-tenant"
    )

    with pytest.raises(ProvisioningError) as raised:
        credentials.access_token()

    assert not raised.value.is_transient
    assert raised.value.failure.category == "credentials"
