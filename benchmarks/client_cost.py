"""CPU per table call: azure-data-tables against a plain signed request; prints numbers only.

    .venv/bin/python -m benchmarks.client_cost              # 300 calls of each kind

The ledger's writes are a conditional replace (``update_entity``, ``If-Match`` the ETag) and
an insert (``create_entity``). This runs both on Azurite, once through the pinned
azure-data-tables ``TableClient`` (azure-core's pipeline) and once as the same HTTP request
built by hand (Shared Key signing, the same JSON) over one ``requests.Session`` and over one
``http.client`` connection, and prints
the CPU time of this thread per call (network waits do not count). The difference is what a
thinner table client could save per call (docs/cost-per-hire.md, "Where the CPU goes").
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import time
import uuid
from collections.abc import Callable, Sequence
from email.utils import formatdate
from urllib.parse import quote, urlsplit

import requests
from azure.core import MatchConditions
from azure.data.tables import TableClient, UpdateMode

from devtools.azurite import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME, start_azurite_queue

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
    """The same two requests as the SDK's, signed with Shared Key, over one
    ``requests.Session`` or (``raw``) one ``http.client`` connection."""

    def __init__(self, endpoint: str, *, raw: bool = False) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._session = requests.Session()
        parts = urlsplit(self._endpoint)
        self._path = parts.path
        self._raw = http.client.HTTPConnection(parts.hostname or "", parts.port) if raw else None
        self._key = base64.b64decode(DEV_ACCOUNT_KEY)

    def _send(self, method: str, resource: str, body: str, headers: dict[str, str]) -> str:
        if self._raw is None:
            response = self._session.request(
                method, f"{self._endpoint}/{resource}", data=body, headers=headers
            )
            response.raise_for_status()
            return response.headers["ETag"]
        self._raw.request(method, f"{self._path}/{resource}", body=body, headers=headers)
        answer = self._raw.getresponse()
        answer.read()
        if answer.status >= 400:
            raise RuntimeError(f"{method} {resource}: {answer.status}")
        return answer.getheader("ETag") or ""

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


def _cpu_per_call(calls: int, one: Callable[[int], None]) -> float:
    for number in range(5):  # connections and caches warm
        one(10_000_000 + number)
    started = time.thread_time()
    for number in range(calls):
        one(number)
    return (time.thread_time() - started) / calls * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    with start_azurite_queue() as azurite:
        endpoint = f"http://{azurite.host}:{azurite.table_port}/{DEV_ACCOUNT_NAME}"
        sdk = TableClient.from_connection_string(azurite.connection_string, TABLE)
        sdk.create_table()
        plain = SignedTables(endpoint)
        raw = SignedTables(endpoint, raw=True)
        etags: dict[str, str] = {}

        def sdk_insert(number: int) -> None:
            metadata = sdk.create_entity(_entity(number))
            etags[f"s{number}"] = str(metadata["etag"])

        def sdk_replace(number: int) -> None:
            sdk.update_entity(
                {**_entity(number), "state": "created"},
                mode=UpdateMode.REPLACE,
                etag=etags[f"s{number}"],
                match_condition=MatchConditions.IfNotModified,
            )

        def plain_insert(number: int) -> None:
            etags[f"p{number}"] = plain.insert(_entity(number + 50_000_000))

        def plain_replace(number: int) -> None:
            plain.replace({**_entity(number + 50_000_000), "state": "created"}, etags[f"p{number}"])

        def raw_insert(number: int) -> None:
            etags[f"r{number}"] = raw.insert(_entity(number + 90_000_000))

        def raw_replace(number: int) -> None:
            raw.replace({**_entity(number + 90_000_000), "state": "created"}, etags[f"r{number}"])

        figures = {
            "insert, azure-data-tables": _cpu_per_call(args.calls, sdk_insert),
            "replace, azure-data-tables": _cpu_per_call(args.calls, sdk_replace),
            "insert, signed requests": _cpu_per_call(args.calls, plain_insert),
            "replace, signed requests": _cpu_per_call(args.calls, plain_replace),
            "insert, signed http.client": _cpu_per_call(args.calls, raw_insert),
            "replace, signed http.client": _cpu_per_call(args.calls, raw_replace),
        }
    print(f"CPU of this thread per table call ({args.calls} calls each, Azurite)")
    for name, value in figures.items():
        print(f"  {name:30} {value:6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
