"""HTTP sessions that read the environment once per process instead of on every request.

With ``trust_env`` on, requests scans every environment variable for proxies and CA bundles on
each request: a fifth of a hire's CPU, measured (--profile). These sessions honour
the same settings, read once when the session is made: ``REQUESTS_CA_BUNDLE`` (else
``CURL_CA_BUNDLE``) for verification, and the proxy variables (``HTTPS_PROXY``, ``HTTP_PROXY``,
``ALL_PROXY``, ``NO_PROXY``), decided once per host. Used by the Partner Center and Graph
clients and, through azure-core's requests transport, by the Key Vault and Table Storage clients.

A plain request (no cookies, files, params, auth or hooks: every request this app makes) also
skips the parts of ``Session.request`` that have nothing to do for it: merging the session's
cookie jar, params, auth and hooks into a new request, re-parsing a URL the caller already built,
and keeping the answer's cookies. It goes straight to the same ``HTTPAdapter.send``, so the
connection pool, TLS verification, proxies, timeouts and requests' own exceptions (which the
adapters read as "not sent" or "maybe applied") are requests' as before. Measured: about a
fifth of a hire's function CPU (docs/cost-per-hire.md, "A shorter path through requests").
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
from requests.structures import CaseInsensitiveDict
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
        if args or not self._is_plain(text, kwargs):
            return super().request(method, url, *args, **kwargs)
        verb = method.decode() if isinstance(method, bytes) else method
        return self._send_plain(verb, text, **kwargs)

    def _is_plain(self, url: str, options: dict[str, Any]) -> bool:
        """Nothing of the session or the call for ``Session.request`` to merge or parse."""
        return (
            url.startswith(("https://", "http://"))
            and url.isascii()
            and not any(options.get(name) for name in _MERGED_OPTIONS)
            and set(options) <= _PLAIN_OPTIONS
            and not (self.auth or self.params or self.cookies or self.cert)
            and not any(self.hooks.values())
        )

    def _send_plain(
        self,
        method: str,
        url: str,
        *,
        data: Any = None,
        json: Any = None,
        headers: Any = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        proxies: dict[str, str] | None = None,
        stream: bool | None = None,
        verify: Any = None,
        **_unset: Any,
    ) -> requests.Response:
        prepared = requests.PreparedRequest()
        prepared.method = method.upper()
        prepared.url = url
        merged: CaseInsensitiveDict[str | bytes] = CaseInsensitiveDict(self.headers)
        for name, value in (headers or {}).items():
            # requests' rule: a header given as None removes the session's default.
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        prepared.headers = merged  # type: ignore[assignment]  # requests' stubs say str only
        prepared.prepare_body(data, None, json)
        options: dict[str, Any] = {
            "stream": bool(stream),
            "timeout": timeout,
            "verify": self.verify if verify is None else verify,
            "cert": None,
            "proxies": proxies or {},
        }
        response = self.get_adapter(url).send(prepared, **options)
        if allow_redirects and response.is_redirect:
            # As Session.send: the redirects (rare here) take requests' own path, which
            # carries the request's cookie jar from hop to hop (an empty one here).
            prepared.prepare_cookies(None)
            history = [response, *self.resolve_redirects(response, prepared, **options)]
            response = history.pop()
            response.history = history
        if not stream:
            response.content  # noqa: B018 - read now, as Session.send does: frees the connection
        return response


# What Session.request would merge with the session's own (and so leaves the plain path), and
# every option the plain path takes; azure-core passes cert=None and files=None.
_MERGED_OPTIONS = ("params", "cookies", "files", "auth", "hooks", "cert")
_PLAIN_OPTIONS = frozenset(
    {"data", "json", "headers", "timeout", "allow_redirects", "proxies", "stream", "verify"}
) | frozenset(_MERGED_OPTIONS)


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
