"""HTTP sessions that read the environment once per process instead of on every request.

With ``trust_env`` on, requests scans every environment variable for proxies and CA bundles on
each request: a fifth of a hire's CPU, measured (--profile). These sessions honour
the same settings, read once when the session is made: ``REQUESTS_CA_BUNDLE`` (else
``CURL_CA_BUNDLE``) for verification, and the proxy variables (``HTTPS_PROXY``, ``HTTP_PROXY``,
``ALL_PROXY``, ``NO_PROXY``), decided once per host. Used by the Partner Center client and,
through azure-core's requests transport, by the Key Vault and Table Storage clients.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import requests
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

# Up to 24 invocations run at once on an instance (host.json batchSize + newBatchThreshold);
# requests' default of 10 connections per host would open and drop connections under load.
POOL_SIZE = 32


class EnvironmentOnceSession(requests.Session):
    """A ``requests.Session`` with ``trust_env`` off and the environment's settings kept."""

    def __init__(self, *, user_agent: str | None = None) -> None:
        super().__init__()
        self.trust_env = False
        self._bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self.verify = self._bundle or True
        found = urllib.request.getproxies()
        self._no_proxy = found.pop("no", None)
        self._proxies = found
        self._by_host: dict[tuple[str, str], dict[str, str]] = {}
        self._lock = threading.Lock()
        if user_agent:
            self.headers["User-Agent"] = user_agent
        # requests' own default: no retries, failures raised as requests' exceptions.
        self.use_adapter(HTTPAdapter(pool_maxsize=POOL_SIZE))

    def use_adapter(self, adapter: HTTPAdapter) -> None:
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def proxies_for(self, url: str) -> dict[str, str]:
        """The proxy for ``url`` as requests would choose it from the environment."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        with self._lock:
            if key not in self._by_host:
                self._by_host[key] = self._choose(url, parts.scheme)
            return self._by_host[key]

    def _choose(self, url: str, scheme: str) -> dict[str, str]:
        if not self._proxies or requests.utils.should_bypass_proxies(url, self._no_proxy):
            return {}
        proxy = self._proxies.get(scheme) or self._proxies.get("all")
        return {scheme: proxy} if proxy else {}

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        text = url.decode() if isinstance(url, bytes) else url
        if not kwargs.get("proxies"):
            kwargs["proxies"] = self.proxies_for(text)
        if kwargs.get("verify") is True:
            # What trust_env would do: azure-core passes verify=True unless told otherwise.
            kwargs["verify"] = self.verify
        return super().request(method, url, *args, **kwargs)


def azure_transport(*, user_agent: str | None = None, **options: Any) -> RequestsTransport:
    """azure-core's requests transport over an ``EnvironmentOnceSession`` it owns.

    ``options`` are the transport's (``connection_timeout``, ``read_timeout``); ``user_agent``
    goes on the session (for pipelines without azure-core's ``UserAgentPolicy``).
    """
    session = EnvironmentOnceSession(user_agent=user_agent)
    # As azure-core mounts on a session of its own: urllib3 neither retries nor wraps errors
    # (azure-core's transport classifies them; its retry policy, here off, would retry).
    session.use_adapter(
        HTTPAdapter(
            pool_maxsize=POOL_SIZE,
            max_retries=Retry(total=False, redirect=False, raise_on_status=False),
        )
    )
    return RequestsTransport(session=session, session_owner=True, **options)
