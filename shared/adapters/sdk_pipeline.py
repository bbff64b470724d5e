"""The Azure SDK clients with only the pipeline policies a call of this function needs.

Every call of an azure-core client runs each policy of its pipeline, wanted or not: the
default pipelines hold thirteen. Issue 17 measured them (docs/cost-per-hire.md, "Where the CPU
goes"); the table and Key Vault clients built here keep the real SDK clients and their
authentication and drop the policies nothing here uses:

- ``UserAgentPolicy``: the same ``User-Agent`` value (product, SDK, Python, platform) is put on
  the transport's session once instead of being recomputed per call;
- ``ProxyPolicy``: proxies and ``NO_PROXY`` are ``EnvironmentOnceSession``'s (httpenv.py);
- ``RedirectPolicy`` and ``SensitiveHeaderCleanupPolicy``: Table Storage and Key Vault answer,
  they do not redirect (a 3xx is then an error the adapter classifies, not a hop that could
  carry a bearer token elsewhere);
- ``CustomHookPolicy``: no raw request or response hooks are passed;
- ``NetworkTraceLoggingPolicy`` and ``HttpLoggingPolicy``: request and answer logging, quieted
  anyway (shared/logs.py), and a channel for URLs and headers that the logs do not need;
- ``DistributedTracingPolicy``: the function's spans come from ``telemetry.traced`` with an
  allow-list of attributes; the Azure Monitor distro's Azure SDK instrumentation is off for the
  same reason, so this policy made no span (and now ``AZURE_TRACING_ENABLED`` cannot add
  spans carrying URLs either);
- Key Vault's ``RetryPolicy``: its retries are off (``retry_total=0``) because the decision's
  ``RetryPolicy`` is the one that retries.

Kept: the request id (``x-ms-client-request-id``, what Azure support asks for), the storage
headers (``x-ms-date``, ``x-ms-version`` comes with each generated request), the credential
policy (Shared Key, SAS or bearer token for a managed identity), Key Vault's challenge
authentication, the answer's decoding, and for tables the location and retry policies with
retries off: paged queries read the location mode they record.
"""

from __future__ import annotations

from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.pipeline.policies import (
    ContentDecodePolicy,
    CustomHookPolicy,
    DistributedTracingPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    NetworkTraceLoggingPolicy,
    ProxyPolicy,
    RedirectPolicy,
    RequestIdPolicy,
    SensitiveHeaderCleanupPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient
from azure.data.tables import __version__ as TABLES_VERSION
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets import __version__ as SECRETS_VERSION

# Key Vault's challenge authentication is the SDK's own policy; its package exports it from
# a private module (pinned version; tests/unit/test_sdk_pipeline.py holds the pipeline to it).
from azure.keyvault.secrets._shared import ChallengeAuthPolicy

from shared.adapters.httpenv import azure_transport

PRODUCT = "hire-provisioning/0.1"

UNUSED_POLICIES: tuple[type, ...] = (
    UserAgentPolicy,
    ProxyPolicy,
    RedirectPolicy,
    SensitiveHeaderCleanupPolicy,
    CustomHookPolicy,
    NetworkTraceLoggingPolicy,
    HttpLoggingPolicy,
    DistributedTracingPolicy,
)


def without_unused(policies: list[Any]) -> list[Any]:
    """``policies`` less the ones listed in ``UNUSED_POLICIES`` (and empty slots)."""
    return [policy for policy in policies if policy and not isinstance(policy, UNUSED_POLICIES)]


def user_agent(sdk_moniker: str) -> str:
    """The ``User-Agent`` azure-core's policy would send, with the product in front."""
    return str(UserAgentPolicy(user_agent=PRODUCT, sdk_moniker=sdk_moniker).user_agent)


def sdk_transport(sdk_moniker: str, **options: Any) -> RequestsTransport:
    """``azure_transport`` whose session sends the SDK's user agent on every request."""
    return azure_transport(user_agent=user_agent(sdk_moniker), **options)


class LeanTableClient(TableClient):
    """azure-data-tables' ``TableClient`` with the unused policies left out of its pipeline.

    The client builds its policy list in ``_configure_policies`` (its credential policy among
    them, chosen from the credential); this keeps that list and removes the unused ones.
    """

    def _configure_policies(self, **kwargs: Any) -> list[Any]:
        return without_unused(super()._configure_policies(**kwargs))


def table_transport(**options: Any) -> RequestsTransport:
    return sdk_transport(f"data-tables/{TABLES_VERSION}", **options)


def secret_client(
    vault_url: str,
    credential: TokenCredential,
    *,
    transport: RequestsTransport | None = None,
    verify_challenge_resource: bool = True,
) -> SecretClient:
    """A ``SecretClient`` whose pipeline is the request id, headers, the answer's decoding and
    Key Vault's challenge authentication (in the order the SDK's own pipeline has them)."""
    return SecretClient(
        vault_url,
        credential,
        verify_challenge_resource=verify_challenge_resource,
        transport=transport or secret_transport(connection_timeout=5, read_timeout=20),
        policies=[
            RequestIdPolicy(),
            HeadersPolicy(),
            ContentDecodePolicy(),
            ChallengeAuthPolicy(credential, verify_challenge_resource=verify_challenge_resource),
        ],
    )


def secret_transport(**options: Any) -> RequestsTransport:
    return sdk_transport(f"keyvault-secrets/{SECRETS_VERSION}", **options)


__all__ = [
    "PRODUCT",
    "UNUSED_POLICIES",
    "LeanTableClient",
    "secret_client",
    "secret_transport",
    "table_transport",
    "user_agent",
    "without_unused",
]
