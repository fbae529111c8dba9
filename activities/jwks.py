"""OIDC issuers' signing keys (JWKS), fetched over HTTPS and kept for a few minutes.

:class:`activities.identity.IdentityActivities` asks a :class:`Jwks` for the key a token names
(``kid``). :class:`HttpJwks` fetches the issuer's key set, keeps it :data:`TTL` per URL, and fetches
again once when a token names a key the set does not have (the issuer rotated its keys), at most
every :data:`REFETCH_AFTER` so tokens with made-up key ids cannot make the worker hammer the issuer.
Only ``https`` URLs are fetched, and plain ``http`` to this machine (the sandbox's issuer), as
``policies.identity.jwks_url_problem`` says; redirects are not followed.

An issuer that cannot be reached, or answers something that is not a key set, raises
:class:`JwksUnavailable`: the verification retries, it is not a refusal of the person.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from policies import identity

TTL = timedelta(minutes=5)
"""How long a fetched key set is used before it is fetched again."""
REFETCH_AFTER = timedelta(seconds=30)
"""A key set at least this old is fetched again when a token names a key it lacks."""
TIMEOUT_SECONDS = 5.0
"""One fetch, connect to last byte."""
MAX_BYTES = 1024 * 1024
"""The largest key set read (GitHub's is about 2 KB)."""

Jwk = Mapping[str, Any]


class JwksUnavailable(Exception):
    """The issuer's key set could not be had now (unreachable, an error, not a key set): retry later."""


class Jwks(Protocol):
    """Where the worker gets an issuer's signing keys."""

    async def key(self, url: str, kid: str) -> Jwk | None:
        """The key ``kid`` of the key set at ``url`` (the only key when ``kid`` is empty and the set
        has one); None when the set has no such key. Raises JwksUnavailable, or ValueError for a URL
        the worker does not fetch from."""
        ...


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None  # a key set that moved is a configuration to fix, not a place to follow


_OPENER = urllib.request.build_opener(_NoRedirects)


def fetch(url: str) -> list[Jwk]:
    """The keys of the key set at ``url`` (blocking). Raises JwksUnavailable."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - checked by jwks_url_problem
    try:
        with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
            body = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as err:
        raise JwksUnavailable(f"{url} answered HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise JwksUnavailable(f"{url} cannot be reached: {reason}") from None
    if len(body) > MAX_BYTES:
        raise JwksUnavailable(f"{url} answered more than {MAX_BYTES} bytes: not a key set")
    try:
        document = json.loads(body)
    except ValueError:
        raise JwksUnavailable(f"{url} answered something that is not JSON") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise JwksUnavailable(f"{url} answered JSON without a list of keys")
    return [key for key in keys if isinstance(key, dict)]


@dataclass
class _Fetched:
    keys: list[Jwk]
    at: float


def _find(keys: list[Jwk], kid: str) -> Jwk | None:
    if not kid:
        return keys[0] if len(keys) == 1 else None
    return next((key for key in keys if key.get("kid") == kid), None)


class HttpJwks:
    """Key sets fetched over HTTP(S), cached per URL (see the module docstring).

    ``fetcher`` (blocking, run on a thread) and ``clock`` (seconds, monotonic) are for tests.
    """

    def __init__(
        self,
        *,
        ttl: timedelta = TTL,
        refetch_after: timedelta = REFETCH_AFTER,
        fetcher: Callable[[str], list[Jwk]] = fetch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl.total_seconds()
        self._refetch_after = refetch_after.total_seconds()
        self._fetcher = fetcher
        self._clock = clock
        self._cache: dict[str, _Fetched] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def key(self, url: str, kid: str) -> Jwk | None:
        """See :meth:`Jwks.key`."""
        problem = identity.jwks_url_problem(url)
        if problem:
            raise ValueError(problem)
        async with self._locks.setdefault(url, asyncio.Lock()):
            cached = self._cache.get(url)
            now = self._clock()
            if cached is None or now - cached.at >= self._ttl:
                cached = await self._refresh(url)
            found = _find(cached.keys, kid)
            if found is None and now - cached.at >= self._refetch_after:
                found = _find((await self._refresh(url)).keys, kid)
            return found

    async def _refresh(self, url: str) -> _Fetched:
        keys = await asyncio.to_thread(self._fetcher, url)
        fetched = _Fetched(keys, self._clock())
        self._cache[url] = fetched
        return fetched
