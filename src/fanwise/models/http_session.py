"""The aiohttp session an HTTP model shares across its calls, and how its failures are named.

Made on the first call, inside the running event loop, and shared by every call after it;
``aclose()`` releases it and the next call opens a fresh one. No client timeout: the engine
bounds each attempt. The proxy comes from ``HTTPS_PROXY``/``NO_PROXY`` (as the official SDKs
honour them), read once: aiohttp's ``trust_env=True`` reads it and ``~/.netrc`` in a thread on
every request, 0.61 ms of CPU per call instead of 0.27 ms (5,000 calls at concurrency 1,000,
docs/benchmarks.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from fanwise.models.bodies import error_message
from fanwise.outcome import CallError, CallTimeout, InvalidResponse, NetworkError


class SharedSession:
    """One lazily opened aiohttp session, with the given headers, for posts to ``url``'s host."""

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)
        self._proxy, self._proxy_auth = env_proxy(url)
        self._http: aiohttp.ClientSession | None = None

    @property
    def current(self) -> aiohttp.ClientSession | None:
        """The open session, if a call has opened one since the last ``aclose``."""
        return self._http

    def get(self) -> aiohttp.ClientSession:
        """The open session, opened now if there is none."""
        if self._http is None or self._http.closed:
            # limit=0: the engine's concurrency is the cap; aiohttp's default of 100 connections
            # would queue calls behind it at --concurrency 1000.
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),  # the APIs set none that matter
            )
        return self._http

    def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """The request, as an async context manager that releases the connection on exit."""
        return self.get().post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        )

    async def aclose(self) -> None:
        """Release the connections; the next call opens a fresh session."""
        if self._http is not None:
            await self._http.close()
            self._http = None


@contextmanager
def transport_errors() -> Iterator[None]:
    """Name what escapes a call: an unreadable body is ``invalid_response``, aiohttp's own
    (connect) timeout a ``timeout``, any other aiohttp failure ``network``; fanwise's own
    errors pass as they are."""
    try:
        yield
    except CallError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidResponse(error_message(exc)) from exc  # the SDKs' words for it, too
    except TimeoutError as exc:  # the engine's timeouts are outside the call
        raise CallTimeout(error_message(exc)) from exc
    except aiohttp.ClientError as exc:
        raise NetworkError(error_message(exc)) from exc


def env_proxy(url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy (and its credentials) the environment names for ``url``, if any."""
    try:
        return get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None


__all__ = ["SharedSession", "env_proxy", "transport_errors"]
