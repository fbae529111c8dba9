"""The traffic simulator evaluates feature flags for real: the Unleash SDK against the sandbox's Unleash.

One stack for the module, started by the CLI as ``make sandbox`` starts it (``up --no-temporal``): the
example fleet's clusters, PostgreSQL and an Unleash per jurisdiction, the traffic simulator given
``DIR/unleash.json``, and Prometheus. The simulator's ``api`` in every cluster evaluates two flags of
the module (created in both Unleash servers, off): a rollout is written as ringmaster's steps write
it (:func:`policies.flags.rollout_strategy`, constrained to one cluster) through the Admin API, and
the tests read the simulator's exposition, and Prometheus for the example plan's gate queries.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from policies import flags, gates
from sandbox import prometheus as sandbox_prometheus
from sandbox import unleash
from sandbox.processes import Processes
from tests.sandbox.support import flag_stack
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "deploy" / "examples" / "fleet.yaml"
HALF, BAD = "t-search", "t-search-bad"
ROLLED, SAME_SERVER, OTHER_SERVER = "euw1-prod", "euc1-prod", "use1-prod"
BAD_CLUSTER = "euw1-internal"
SETTINGS = f"""\
controller: {{tickSeconds: 0.05, podReadySeconds: 0.1}}
prometheus: {{scrapeIntervalSeconds: 1}}
traffic:
  requestsPerSecond: 2000
  tickSeconds: 0.05
  features: [{{flag: {HALF}, services: [api]}}, {{flag: {BAD}, services: [api]}}]
"""
"""2000 requests a second into every cluster's api, split between the two flags: 50 a tick for each,
of which 20 users are evaluated (``flagEvaluations``) and the rest drawn from their share."""
REQUESTS = re.compile(
    r'^http_requests_total\{cluster="([^"]+)",.*,feature="([^"]*)",feature_on="(\w+)",code="(\d+)"\} (\d+)$'
)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The stack, with both flags created (off, no strategy) in both jurisdictions' Unleash."""
    with flag_stack(tmp_path_factory.mktemp("traffic-flags"), FLEET, SETTINGS) as where:
        for server in unleash.read(where).values():
            for name in (HALF, BAD):
                server.admin().create(f"/api/admin/projects/{server.project}/features", {"name": name})
        yield where


@pytest.fixture(scope="module")
def eu(directory: Path) -> unleash.Server:
    """The EU Unleash, serving euw1-* and euc1-* from one environment."""
    return unleash.read(directory)["EU"]


@pytest.fixture(scope="module")
def traffic(directory: Path) -> str:
    """The simulator's base URL."""
    return str(Processes(directory).running()[sandbox_prometheus.TRAFFIC].info["url"])


def roll_out(server: unleash.Server, flag: str, cluster: str, rollout: int, traffic: str) -> None:
    """What a ringmaster step writes: ``rollout``% of ``cluster``'s users, sticky by user; flag on.
    Returns once the simulator served a request with the flag on there (its SDK fetched the change)."""
    place = server.flag_server()
    body = flags.request_body(flags.rollout_strategy(place, flag, cluster, rollout))
    admin = server.admin()
    admin.call("POST", place.admin_path(flag), body)
    admin.call("POST", f"{place.admin_path(flag).removesuffix('/strategies')}/on")
    eventually(
        lambda: counts(traffic).get((cluster, flag, "true", "200"), 0) > 0,
        timeout=15,
        what=f"the SDK sees {flag} on in {cluster}",
    )


Counts = dict[tuple[str, str, str, str], int]
"""Requests so far by (cluster, feature, feature_on, code)."""


def counts(url: str) -> Counts:
    """Every cluster's requests so far, from the simulator's expositions."""
    found: Counts = defaultdict(int)
    for cluster in (ROLLED, SAME_SERVER, OTHER_SERVER, BAD_CLUSTER):
        with urllib.request.urlopen(f"{url}/clusters/{cluster}/metrics", timeout=5) as response:  # noqa: S310 - loopback
            for line in response.read().decode().splitlines():
                match = REQUESTS.match(line)
                if match is not None:
                    where, feature, on, code, n = match.groups()
                    found[where, feature, on, code] += int(n)
    return found


def since(url: str, before: Counts, cluster: str, feature: str, at_least: int) -> dict[tuple[str, str], int]:
    """Requests of ``feature`` in ``cluster`` by (feature_on, code) from ``before`` on, once there are
    ``at_least`` of them."""

    def now() -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = defaultdict(int)
        for (where, name, on, code), n in counts(url).items():
            if where == cluster and name == feature:
                out[on, code] += n - before.get((where, name, on, code), 0)
        return out

    return eventually(now, lambda d: sum(d.values()) >= at_least, timeout=30, what=f"{feature} in {cluster}")


def served_version(url: str, cluster: str) -> str:
    """The version api serves in ``cluster`` (the seeded one), from the simulator's ``/served``."""
    with urllib.request.urlopen(f"{url}/served", timeout=5) as response:  # noqa: S310 - loopback
        return next(iter(json.loads(response.read())[cluster]["versions"]))


def on_share(found: dict[tuple[str, str], int]) -> float:
    """Share of requests that had the flag on."""
    return sum(n for (on, _), n in found.items() if on == "true") / sum(found.values())


class TestRollout:
    def test_half_the_requests_of_the_rolled_out_cluster_have_the_flag_on_and_none_elsewhere(
        self, eu: unleash.Server, traffic: str
    ) -> None:
        """A 50% rollout constrained to euw1-prod reaches its SDK within the refresh interval; then about
        half of euw1-prod's requests carry feature_on="true", and none in euc1-prod (same Unleash and
        environment, other cluster) nor in use1-prod (the US Unleash, where the flag stays off)."""
        roll_out(eu, HALF, ROLLED, 50, traffic)
        before = counts(traffic)
        rolled = since(traffic, before, ROLLED, HALF, at_least=6000)
        assert 0.4 < on_share(rolled) < 0.6
        for cluster in (SAME_SERVER, OTHER_SERVER):
            assert on_share(since(traffic, before, cluster, HALF, at_least=2000)) == 0

    def test_a_bad_flag_fails_about_8_percent_of_its_on_requests_only(
        self, eu: unleash.Server, traffic: str
    ) -> None:
        """With BAD fully on in euw1-internal, about 8% of its flag-on requests answer 500 (the default
        feature profile of ``*-bad``), while its flag-off requests elsewhere fail at the version's 0.1%."""
        roll_out(eu, BAD, BAD_CLUSTER, 100, traffic)
        before = counts(traffic)
        bad = since(traffic, before, BAD_CLUSTER, BAD, at_least=10_000)
        on = {code: n for (side, code), n in bad.items() if side == "true"}
        assert on_share(bad) > 0.99
        assert 0.06 < on.get("500", 0) / sum(on.values()) < 0.10
        elsewhere = since(traffic, before, SAME_SERVER, BAD, at_least=10_000)
        assert elsewhere.get(("false", "500"), 0) / sum(elsewhere.values()) < 0.01


class TestGateQueries:
    def test_the_example_flag_plans_queries_see_both_sides_in_prometheus(
        self, directory: Path, traffic: str
    ) -> None:
        """The example flag plan's feature-success-rate query, rendered for the flag-on side and its
        flag-off baseline in euw1-prod (where HALF is at 50%), each answers one series from the EU
        Prometheus; the whole-version success rate (no feature label) answers too."""
        plan = yaml.safe_load((ROOT / "deploy" / "examples" / "flag-plan.yaml").read_text(encoding="utf-8"))
        metrics = {m["name"]: m["query"] for m in plan["analysis"]["metrics"]}
        prometheus = str(Processes(directory).running()["prometheus-eu"].info["url"])
        version = served_version(traffic, ROLLED)

        def rendered(name: str, feature_on: bool | None) -> str:
            return gates.render_query(
                metrics[name],
                service="api",
                namespace="api",
                cluster=ROLLED,
                region="eu-west-1",
                version=version,
                interval="30s",
                feature=HALF if feature_on is not None else None,
                feature_on=feature_on,
            )

        queries = [rendered("feature-success-rate", side) for side in (True, False)]
        queries.append(rendered("request-success-rate", None))
        for query in queries:
            answered = eventually(
                lambda q=query: sandbox_prometheus.query(prometheus, q),
                bool,
                timeout=30,
                what=query,
            )
            assert len(answered) == 1


class TestSecrets:
    def test_no_token_reaches_the_simulators_command_line_or_log(
        self, directory: Path, eu: unleash.Server
    ) -> None:
        """The simulator is given the path of DIR/unleash.json: neither the admin nor the client token
        is on its command line (state.json) or in its log."""
        record = Processes(directory).load().processes[sandbox_prometheus.TRAFFIC]
        log = (directory / record.log).read_text(encoding="utf-8")
        for server in unleash.read(directory).values():
            for token in (server.admin_token, server.client_token):
                assert token not in " ".join(record.argv)
                assert token not in log
        assert "--unleash" in record.argv
