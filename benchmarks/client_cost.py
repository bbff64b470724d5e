"""CPU per SDK call: the table and Key Vault clients as built, against plain requests; prints
numbers only.

    .venv/bin/python -m benchmarks.client_cost              # 5 rounds of 100 calls per kind

The ledger's writes are a conditional replace (``update_entity``, ``If-Match`` the ETag) and
an insert (``create_entity``); the initial password is a Key Vault ``set_secret``. Each runs
on Azurite (tables) or the Key Vault stand-in (HTTPS, challenge authentication):

- through the SDK client with azure-core's default pipeline (thirteen policies for tables,
  as built before issue 17; retries off);
- through the client the function builds (``shared/adapters/sdk_pipeline.py``: the unused
  policies left out);
- for tables, as the same HTTP request built by hand (Shared Key signing, the same JSON) over
  one ``requests.Session`` (``EnvironmentOnceSession``, as the function's) and over one
  ``http.client`` connection.

It prints the CPU time of this thread per call (network waits do not count), the median of the
rounds; the variants take turns, so a busy machine weighs on each alike
(docs/cost-per-hire.md, "Where the CPU goes").
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import hmac
import http.client
import json
import os
import pstats
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from urllib.parse import quote, urlsplit

import urllib3
from azure.core import MatchConditions
from azure.data.tables import TableClient, UpdateMode
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from devtools.azurite import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME, AzuriteQueue, start_azurite_queue
from devtools.standins.stack import StandInStack
from shared.adapters.httpenv import EnvironmentOnceSession, azure_transport
from shared.adapters.ledger import open_table_ledger
from shared.adapters.sdk_pipeline import secret_client

TABLE = "clientcost"


def _entity(number: int) -> dict[str, object]:
    # About the size of a hire record: a dozen short properties.
    return {
        "PartitionKey": f"hire-{number:06d}",
        "RowKey": "",
        "state": "creating",
        "customerTenantId": str(uuid.uuid4()),
        "userPrincipalName": f"user{number}@contoso.onmicrosoft.com",
        "attempts": 1,
        "createCalls": 1,
        "claimOwner": str(uuid.uuid4()),
        "claimExpiresAt": "2026-12-06T03:00:00Z",
        "passwordSecretId": f"https://vault/secrets/hire-{number}/{uuid.uuid4().hex}",
        "updatedAt": "2026-12-06T03:00:00Z",
        "generation": 0,
    }


class SignedTables:
    """The same two requests as the SDK's, signed with Shared Key, over one HTTP client:
    ``requests`` (the function's ``EnvironmentOnceSession``), ``urllib3`` (what requests runs
    on: the difference is what an azure-core transport without requests could save) or one
    ``http.client`` connection."""

    def __init__(self, endpoint: str, *, over: str = "requests") -> None:
        self._endpoint = endpoint.rstrip("/")
        self._over = over
        # The function's session: trust_env off, the environment read once (httpenv.py).
        self._session = EnvironmentOnceSession()
        self._pool = urllib3.PoolManager(retries=False)
        parts = urlsplit(self._endpoint)
        self._path = parts.path
        self._raw = http.client.HTTPConnection(parts.hostname or "", parts.port)
        self._key = base64.b64decode(DEV_ACCOUNT_KEY)

    def _send(self, method: str, resource: str, body: str, headers: dict[str, str]) -> str:
        if self._over == "requests":
            response = self._session.request(
                method, f"{self._endpoint}/{resource}", data=body, headers=headers
            )
            response.raise_for_status()
            return response.headers["ETag"]
        if self._over == "urllib3":
            answer = self._pool.request(
                method, f"{self._endpoint}/{resource}", body=body, headers=headers
            )
            if answer.status >= 400:
                raise RuntimeError(f"{method} {resource}: {answer.status}")
            return answer.headers.get("ETag") or ""
        self._raw.request(method, f"{self._path}/{resource}", body=body, headers=headers)
        raw = self._raw.getresponse()
        raw.read()
        if raw.status >= 400:
            raise RuntimeError(f"{method} {resource}: {raw.status}")
        return raw.getheader("ETag") or ""

    def _headers(self, method: str, resource: str, content_type: str) -> dict[str, str]:
        date = formatdate(usegmt=True)
        # Azurite's path-style URL: the account appears twice in the canonical resource.
        canonical = f"/{DEV_ACCOUNT_NAME}/{DEV_ACCOUNT_NAME}/{resource}"
        to_sign = f"{method}\n\n{content_type}\n{date}\n{canonical}"
        signature = base64.b64encode(
            hmac.new(self._key, to_sign.encode("utf-8"), hashlib.sha256).digest()
        ).decode()
        return {
            "Authorization": f"SharedKey {DEV_ACCOUNT_NAME}:{signature}",
            "x-ms-date": date,
            "Date": date,
            "x-ms-version": "2019-02-02",
            "Accept": "application/json;odata=minimalmetadata",
            "DataServiceVersion": "3.0",
            "Content-Type": content_type,
        }

    def insert(self, entity: dict[str, object]) -> str:
        content_type = "application/json;odata=nometadata"
        headers = {**self._headers("POST", TABLE, content_type), "Prefer": "return-no-content"}
        return self._send("POST", TABLE, json.dumps(entity), headers)

    def replace(self, entity: dict[str, object], etag: str) -> str:
        key = f"{TABLE}(PartitionKey='{quote(str(entity['PartitionKey']))}',RowKey='')"
        content_type = "application/json"
        headers = {**self._headers("PUT", key, content_type), "If-Match": etag}
        return self._send("PUT", key, json.dumps(entity), headers)


class Variant:
    """One way of making one kind of call: ``one(number)`` makes a call for a fresh number."""

    def __init__(self, one: Callable[[int], None]) -> None:
        self._one = one
        self._next = 0
        self.rounds: list[float] = []

    def warm(self, calls: int = 5) -> None:  # connections, tokens and caches
        for _ in range(calls):
            self._one(self._take())

    def round(self, calls: int) -> None:
        numbers = [self._take() for _ in range(calls)]
        started = time.thread_time()
        for number in numbers:
            self._one(number)
        self.rounds.append((time.thread_time() - started) / calls * 1000)

    def _take(self) -> int:
        self._next += 1
        return self._next


def _compare(
    variants: dict[str, Variant], calls: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """Per variant: the median CPU per call, and the Python function calls per call (counted
    by cProfile over a few calls: a figure the machine's load does not move)."""
    for variant in variants.values():
        variant.warm()
    for _ in range(rounds):
        for variant in variants.values():  # in turns: the machine's load falls on each alike
            variant.round(calls)
    figures: dict[str, tuple[float, float]] = {}
    for name, variant in variants.items():
        profiler = cProfile.Profile()
        profiler.enable()
        variant.round(20)
        profiler.disable()
        counted = pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]
        figures[name] = (statistics.median(variant.rounds[:rounds]), counted / 20)
    return figures


def _table_variants(azurite: AzuriteQueue) -> dict[str, Variant]:
    endpoint = f"http://{azurite.host}:{azurite.table_port}/{DEV_ACCOUNT_NAME}"
    # As the ledger was built before issue 17: azure-core's default pipeline, retries off.
    default = TableClient.from_connection_string(
        azurite.connection_string,
        TABLE,
        retry_total=0,
        transport=azure_transport(connection_timeout=5, read_timeout=10),
    )
    default.create_table()
    # As the ledger is built now (open_table_ledger): the unused policies left out.
    lean = open_table_ledger(TABLE, connection_string=azurite.connection_string)._client
    signed_clients = {
        over: SignedTables(endpoint, over=over) for over in ("requests", "urllib3", "http.client")
    }
    variants: dict[str, Variant] = {}
    for label, client in (
        ("azure-data-tables, default", default),
        ("azure-data-tables, lean", lean),
    ):
        etags: dict[int, str] = {}
        prefix = len(variants) * 100_000_000

        def insert(number: int, client: TableClient = client, etags: dict[int, str] = etags,
                   prefix: int = prefix) -> None:
            etags[number] = str(client.create_entity(_entity(prefix + number))["etag"])

        def replace(number: int, client: TableClient = client, etags: dict[int, str] = etags,
                    prefix: int = prefix) -> None:
            if number not in etags:
                insert(number)
            client.update_entity(
                {**_entity(prefix + number), "state": "created"},
                mode=UpdateMode.REPLACE,
                etag=etags.pop(number),
                match_condition=MatchConditions.IfNotModified,
            )

        variants[f"insert, {label}"] = Variant(insert)
        variants[f"replace, {label}"] = Variant(replace)
    for index, (over, signed) in enumerate(signed_clients.items()):
        label, prefix = f"signed {over}", (7 + index) * 100_000_000
        signed_etags: dict[int, str] = {}

        def signed_insert(number: int, signed: SignedTables = signed,
                          etags: dict[int, str] = signed_etags, prefix: int = prefix) -> None:
            etags[number] = signed.insert(_entity(prefix + number))

        def signed_replace(number: int, signed: SignedTables = signed,
                           etags: dict[int, str] = signed_etags, prefix: int = prefix) -> None:
            if number not in etags:
                signed_insert(number)
            signed.replace({**_entity(prefix + number), "state": "created"}, etags.pop(number))

        variants[f"insert, {label}"] = Variant(signed_insert)
        variants[f"replace, {label}"] = Variant(signed_replace)
    return variants


def _key_vault_variants(stack: StandInStack) -> dict[str, Variant]:
    settings = stack.function_settings(str(uuid.uuid4()))
    credential = ClientSecretCredential(
        settings["AZURE_TENANT_ID"],
        settings["AZURE_CLIENT_ID"],
        settings["AZURE_CLIENT_SECRET"],
        authority=settings["ENTRA_AUTHORITY_HOST"],
        disable_instance_discovery=True,
    )
    vault_url = stack.key_vault.vault_url
    # As the vault was built before issue 17: azure-core's default pipeline, retries off.
    default = SecretClient(
        vault_url,
        credential,
        verify_challenge_resource=False,
        transport=azure_transport(connection_timeout=5, read_timeout=20),
        retry_total=0,
    )
    lean = secret_client(vault_url, credential, verify_challenge_resource=False)
    expires_on = datetime.now(UTC) + timedelta(days=7)
    variants: dict[str, Variant] = {}
    for label, client in (("default", default), ("lean", lean)):

        def store(number: int, client: SecretClient = client, label: str = label) -> None:
            # The password vault's write: value, expiry, content type and two tags.
            client.set_secret(
                f"initial-password-{label}-{number}",
                f"Pw-{uuid.uuid4().hex[:16]}!",
                expires_on=expires_on,
                content_type="text/plain; purpose=initial-password",
                tags={"eventId": f"hr-{number}", "purpose": "initial password"},
            )

        variants[f"set_secret, azure-keyvault-secrets, {label}"] = Variant(store)
    return variants


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=100, help="calls per round and variant")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    # The stand-ins' certificate is trusted as the function trusts it (REQUESTS_CA_BUNDLE).
    with start_azurite_queue() as azurite, StandInStack.start() as stack:
        os.environ["REQUESTS_CA_BUNDLE"] = str(stack.ca_bundle_file)
        variants = {**_table_variants(azurite), **_key_vault_variants(stack)}
        figures = _compare(variants, args.calls, args.rounds)
    print(
        f"CPU of this thread per call (median of {args.rounds} rounds of {args.calls} calls; "
        "Azurite, Key Vault stand-in) and Python function calls per call"
    )
    for name, (cpu, python_calls) in figures.items():
        print(f"  {name:48} {cpu:6.2f} ms {python_calls:7.0f} calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
