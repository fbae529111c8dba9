"""Issuers' key sets: fetched over HTTP from a real issuer, cached per URL, fetched again when rotated."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from activities import jwks
from activities.jwks import HttpJwks, Jwk, JwksUnavailable
from sandbox.processes import free_port
from tests.support.identity import Issuer, running_issuer

URL = "https://issuer.example.com/jwks"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    """A real issuer publishing one key."""
    yield from running_issuer(tmp_path_factory.mktemp("issuer"))


class Counting:
    """A key set served from memory, counting fetches, on a clock the test moves."""

    def __init__(self, *kids: str) -> None:
        self.kids = list(kids)
        self.fetches = 0
        self.time = 0.0

    def fetch(self, url: str) -> list[Jwk]:
        assert url == URL
        self.fetches += 1
        return [{"kid": kid, "kty": "RSA"} for kid in self.kids]

    def jwks(self) -> HttpJwks:
        return HttpJwks(fetcher=self.fetch, clock=lambda: self.time)


class TestHttpJwks:
    async def test_fetches_a_real_issuers_keys(self, issuer: Issuer) -> None:
        """The issuer's key set is read over HTTP; its only key is found by kid, or with no kid."""
        found = await HttpJwks().key(issuer.jwks_url, "")
        assert found is not None and found["kty"] == "RSA"
        assert await HttpJwks().key(issuer.jwks_url, str(found["kid"])) == found
        assert await HttpJwks().key(issuer.jwks_url, "unknown") is None

    async def test_a_key_set_is_cached_for_its_ttl(self) -> None:
        """Within the TTL a known key costs no fetch; after it, the set is fetched again."""
        served = Counting("a")
        keys = served.jwks()
        assert await keys.key(URL, "a") is not None
        served.time = jwks.TTL.total_seconds() - 1
        assert await keys.key(URL, "a") is not None
        assert served.fetches == 1
        served.time = jwks.TTL.total_seconds()
        assert await keys.key(URL, "a") is not None
        assert served.fetches == 2

    async def test_an_unknown_kid_fetches_again_once_but_not_in_a_burst(self) -> None:
        """A rotated key is found by one more fetch; made-up kids do not fetch again within a while."""
        served = Counting("a")
        keys = served.jwks()
        assert await keys.key(URL, "a") is not None
        assert await keys.key(URL, "b") is None  # just fetched: no second fetch
        assert served.fetches == 1
        served.kids.append("b")
        served.time = jwks.REFETCH_AFTER.total_seconds()
        assert await keys.key(URL, "b") is not None
        assert served.fetches == 2

    async def test_an_unreachable_issuer_is_unavailable(self) -> None:
        """Nothing listening at the URL raises JwksUnavailable (the verification retries)."""
        with pytest.raises(JwksUnavailable, match="cannot be reached"):
            await HttpJwks().key(f"http://127.0.0.1:{free_port()}/jwks", "a")

    async def test_an_answer_that_is_no_key_set_is_unavailable(self, issuer: Issuer) -> None:
        """A page that is not a key set (here: a 404) raises JwksUnavailable."""
        with pytest.raises(JwksUnavailable, match="HTTP 404"):
            await HttpJwks().key(issuer.url + "/nothing", "a")

    @pytest.mark.parametrize("url", ["http://issuer.example.com/jwks", "file:///etc/passwd"])
    async def test_only_tls_or_this_machine(self, url: str) -> None:
        """Keys are never fetched over plain http from another host, or from a file."""
        with pytest.raises(ValueError, match="https only"):
            await HttpJwks(fetcher=lambda _: [], ttl=timedelta(0)).key(url, "a")
