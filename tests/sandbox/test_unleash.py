"""The sandbox's feature flags: one real Unleash per jurisdiction on a real PostgreSQL, as clients use them.

One stack for the module (``python -m sandbox up --no-temporal``, Prometheus off: only the clusters,
PostgreSQL and the two Unleash servers); the tests run in file order and the last class takes it down.
Every call goes to the real servers with the tokens ``DIR/unleash.json`` hands out.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policies import hosts, loading
from sandbox import stack, unleash, unleashclient
from sandbox.processes import Processes, ProcessRecord, is_alive
from tests.sandbox.support import flag_stack, sandbox_cli
from tests.support import unleash_sdk
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "deploy" / "examples" / "fleet.yaml"
EU_CLUSTERS = ["euw1-internal", "euc1-beta", "euw1-prod", "euc1-prod"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example fleet's clusters with PostgreSQL and an Unleash per jurisdiction, started by the CLI."""
    with flag_stack(tmp_path_factory.mktemp("unleash"), FLEET) as where:
        yield where


@pytest.fixture(scope="module")
def servers(directory: Path) -> dict[str, unleash.Server]:
    """What ``DIR/unleash.json`` tells clients, by jurisdiction."""
    return unleash.read(directory)


def flag(server: unleash.Server) -> dict[str, Any]:
    """The demo flag as the Admin API shows it."""
    found = server.admin().call("GET", f"/api/admin/projects/{server.project}/features/{server.flag}")
    assert isinstance(found, dict)
    return found


def served(server: unleash.Server) -> dict[str, dict[str, Any]]:
    """The flags the client API serves to the client token, by name."""
    return {f["name"]: f for f in server.client().call("GET", "/api/client/features")["features"]}


def production(found: dict[str, Any], server: unleash.Server) -> dict[str, Any]:
    """The flag's entry for the server's environment."""
    return next(e for e in found["environments"] if e["name"] == server.environment)


def roll_out_to(server: unleash.Server, clusters: list[str]) -> None:
    """Give the demo flag a 100% flexibleRollout for ``clusters`` in production and switch it on there,
    unless it has one already (tests may run alone or after one another)."""
    admin, base = server.admin(), f"/api/admin/projects/{server.project}/features/{server.flag}"
    if not production(flag(server), server)["strategies"]:
        strategy = {
            "name": "flexibleRollout",
            "constraints": [{"contextName": server.context_field, "operator": "IN", "values": clusters}],
            "parameters": {"rollout": "100", "stickiness": "default", "groupId": server.flag},
        }
        admin.call("POST", f"{base}/environments/{server.environment}/strategies", strategy)
    admin.call("POST", f"{base}/environments/{server.environment}/on")


def listening(url: str) -> bool:
    """Whether something accepts connections at ``http://host:port``."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, int(port))) == 0


class TestUp:
    def test_starts_postgres_and_one_unleash_per_jurisdiction(self, directory: Path) -> None:
        """up runs PostgreSQL and unleash-eu and unleash-us as sandbox processes, after the emulator."""
        assert list(Processes(directory).running()) == ["apiserver", "postgres", "unleash-eu", "unleash-us"]

    def test_each_jurisdiction_has_its_own_address_placed_in_the_fleet(
        self, directory: Path, servers: dict[str, unleash.Server]
    ) -> None:
        """EU serves on 127.0.0.2 and US on 127.0.0.3, and the sandbox fleet's hosts table says so."""
        assert {j: hosts.host_of(s.url) for j, s in servers.items()} == {"EU": "127.0.0.2", "US": "127.0.0.3"}
        fleet = loading.load_fleet(directory / "fleet.yaml")
        placed = {rule.match: rule.jurisdiction for rule in fleet.hosts}
        assert placed["127.0.0.2"] == "EU"
        assert placed["127.0.0.3"] == "US"
        # Each region naming a flag server names its jurisdiction's sandbox Unleash, and the one
        # environment there that every region of the jurisdiction shares.
        named = {
            r.name: (r.flags.url, r.flags.project, r.flags.environment)
            for r in fleet.regions
            if r.flags is not None
        }
        assert named and named == {
            r.name: (
                f"{servers[r.jurisdiction].url}/api",
                servers[r.jurisdiction].project,
                servers[r.jurisdiction].environment,
            )
            for r in fleet.regions
            if r.flags is not None
        }

    def test_unleash_json_is_what_the_sandbox_reports_and_only_its_owner_reads_it(
        self, directory: Path, servers: dict[str, unleash.Server]
    ) -> None:
        """DIR/unleash.json (mode 0600: it holds tokens) names each server's URL, tokens, project and
        environment, as a second up reports them."""
        assert (directory / unleash.FILE).stat().st_mode & 0o777 == 0o600
        again = stack.up(directory, FLEET)
        assert again.already_running
        assert again.unleash == servers
        eu = servers["EU"]
        assert (eu.project, eu.environment, eu.flag) == ("default", "production", "checkout-v2")
        assert eu.admin_token.startswith("*:*.")
        assert eu.client_token.startswith("default:production.")
        assert servers["US"].admin_token != eu.admin_token

    def test_the_worker_is_given_each_admin_token_by_the_host_the_fleet_names(
        self, directory: Path, servers: dict[str, unleash.Server]
    ) -> None:
        """The worker's RINGMASTER_UNLEASH_ADMIN_TOKENS maps each flag server host of the sandbox fleet to
        its jurisdiction's admin token (so flag releases work in the sandbox)."""
        tokens = json.loads(unleash.worker_env(servers.values())["RINGMASTER_UNLEASH_ADMIN_TOKENS"])
        fleet = loading.load_fleet(directory / "fleet.yaml")
        wanted = {r.flags.host: servers[r.jurisdiction].admin_token for r in fleet.regions if r.flags}
        assert tokens == wanted
        assert unleash.worker_env([]) == {}

    def test_status_shows_postgres_and_each_unleash_answering(self, directory: Path) -> None:
        """status lists PostgreSQL and both servers running, each Unleash with a GOOD health."""
        shown = sandbox_cli("status", "--dir", str(directory))
        assert shown.returncode == 0, shown.stderr
        for name in ("postgres", "unleash-eu", "unleash-us"):
            assert f"{name}: running" in shown.stdout
        assert shown.stdout.count("health: GOOD") == 2


class TestSeededState:
    def test_the_admin_api_shows_project_environment_context_field_and_demo_flag(
        self, servers: dict[str, unleash.Server]
    ) -> None:
        """With the admin token: project default, production enabled, context field cluster whose legal
        values are the jurisdiction's clusters, and checkout-v2 (release) disabled in production."""
        eu = servers["EU"]
        admin = eu.admin()
        assert "default" in {p["id"] for p in admin.call("GET", "/api/admin/projects")["projects"]}
        assert admin.call("GET", "/api/admin/environments/production")["enabled"] is True
        context = admin.call("GET", "/api/admin/context/cluster")
        assert [v["value"] for v in context["legalValues"]] == EU_CLUSTERS
        found = flag(eu)
        assert (found["name"], found["type"], found["project"]) == ("checkout-v2", "release", "default")
        assert production(found, eu)["enabled"] is False

    def test_the_client_api_serves_the_demo_flag_to_the_client_token(
        self, servers: dict[str, unleash.Server]
    ) -> None:
        """With the client token, /api/client/features serves checkout-v2, disabled, in both jurisdictions."""
        for server in servers.values():
            assert served(server)["checkout-v2"]["enabled"] is False

    def test_the_client_token_cannot_use_the_admin_api(self, servers: dict[str, unleash.Server]) -> None:
        """A client token reads flags; changing them takes the admin token."""
        eu = servers["EU"]
        with pytest.raises(unleashclient.UnleashRequestError) as refused:
            eu.client().call(
                "POST", f"/api/admin/projects/default/features/{eu.flag}/environments/production/on"
            )
        assert refused.value.status in (401, 403)


class TestAdminWrites:
    def test_a_cluster_rollout_written_by_the_admin_reaches_clients_of_that_jurisdiction_only(
        self, servers: dict[str, unleash.Server]
    ) -> None:
        """A flexibleRollout with cluster IN [euw1-prod] added to checkout-v2 in production is served to
        the EU client token, and the US server (its own database) still serves the flag untouched."""
        eu, us = servers["EU"], servers["US"]
        roll_out_to(eu, ["euw1-prod"])

        def rolled_out() -> bool:
            demo = served(eu)["checkout-v2"]
            assert demo["enabled"] is True
            constraints = [c for strategy in demo["strategies"] for c in strategy["constraints"]]
            assert [(c["contextName"], c["operator"], c["values"]) for c in constraints] == [
                ("cluster", "IN", ["euw1-prod"])
            ]
            return True

        eventually(rolled_out, timeout=10, every=0.2, what="the rollout served to the EU client")
        assert served(us)["checkout-v2"]["enabled"] is False
        assert production(flag(us), us)["strategies"] == []

    def test_the_python_sdk_evaluates_the_demo_flag_by_cluster(
        self, servers: dict[str, unleash.Server], tmp_path: Path
    ) -> None:
        """The official SDK (UnleashClient), given the EU URL and client token, turns checkout-v2 on for
        a request in euw1-prod and off in euc1-prod; it polls every refresh_interval seconds (15 by
        default, 1 here)."""
        eu = servers["EU"]
        roll_out_to(eu, ["euw1-prod"])
        with unleash_sdk.sdk(eu, tmp_path) as client:
            inside = {"userId": "u-1", "properties": {"cluster": "euw1-prod"}}
            outside = {"userId": "u-1", "properties": {"cluster": "euc1-prod"}}
            eventually(
                lambda: client.is_enabled("checkout-v2", inside), timeout=15, every=0.2, what="SDK sees it"
            )
            assert client.is_enabled("checkout-v2", outside) is False
            assert client.is_enabled("checkout-v2", {"userId": "u-1"}) is False


class TestRestart:
    def test_a_restarted_server_keeps_address_tokens_and_flags_and_seeds_nothing_twice(
        self, directory: Path, servers: dict[str, unleash.Server]
    ) -> None:
        """Unleash of EU stopped and started again serves the same URL with the same tokens, the flag as
        the admin left it, and one context field and one demo flag (seeding again duplicated nothing)."""
        eu = servers["EU"]
        roll_out_to(eu, ["euw1-prod"])
        before = flag(eu)
        old = Processes(directory).load().processes["unleash-eu"]
        again = unleash.restart_server(Processes(directory), "EU")
        assert not is_alive(old)
        assert again.info == {"url": eu.url}
        assert production(flag(eu), eu)["strategies"] == production(before, eu)["strategies"]
        admin = eu.admin()
        assert [c["name"] for c in admin.call("GET", "/api/admin/context")].count("cluster") == 1
        named = [f["name"] for f in admin.call("GET", "/api/admin/projects/default/features")["features"]]
        assert named.count("checkout-v2") == 1
        assert served(eu)["checkout-v2"]["enabled"] is True


class TestBadInstall:
    def test_missing_postgres_is_named_with_the_fix_before_anything_starts(self, tmp_path: Path) -> None:
        """up with no PostgreSQL where the settings point exits 3 naming it and `make install`, with no
        traceback and no process started."""
        (tmp_path / "sandbox.yaml").write_text(
            f"prometheus: {{enabled: false}}\nunleash: {{postgresBin: {tmp_path / 'nowhere'}}}\n",
            encoding="utf-8",
        )
        done = sandbox_cli("up", "--no-temporal", "--dir", str(tmp_path), "--fleet", str(FLEET))
        assert done.returncode == 3
        assert "PostgreSQL (initdb, postgres, psql) is not installed" in done.stderr
        assert "make install" in done.stderr
        assert "Traceback" not in done.stderr
        assert Processes(tmp_path).running() == {}

    def test_missing_unleash_server_is_named_with_the_fix(self, tmp_path: Path) -> None:
        """A package folder whose node_modules lacks the pinned unleash-server is refused, naming the version
        and `make install`."""
        for name in ("package.json", "package-lock.json"):
            shutil.copy(unleash.PACKAGE_DIR / name, tmp_path / name)
        with pytest.raises(unleash.UnleashError) as refused:
            unleash.check_install(tmp_path)
        assert f"unleash-server {unleash.pinned_version()} is not installed" in str(refused.value)
        assert "make install" in str(refused.value)


class TestDown:
    def test_down_leaves_no_process_port_or_data(self, directory: Path) -> None:
        """down stops PostgreSQL (every backend too) and both servers, frees their ports, and removes the
        database cluster and DIR/unleash.json."""
        before: dict[str, ProcessRecord] = Processes(directory).load().processes
        servers = unleash.read(directory)
        addresses = [s.url for s in servers.values()] + [f"http://{before['postgres'].info['address']}"]
        assert all(listening(a) for a in addresses)
        stopped = sandbox_cli("down", "--dir", str(directory))
        assert stopped.returncode == 0, stopped.stderr
        assert not any(is_alive(record) for record in before.values())
        eventually(lambda: not any(listening(a) for a in addresses), timeout=10, what="ports released")
        assert not (directory / "postgres-data").exists()
        assert not (directory / unleash.FILE).exists()
        groups = {record.pgid for record in before.values()}
        assert [pid for pid, group in process_groups().items() if group in groups] == []


def process_groups() -> dict[int, int]:
    """The process group of every live (non-zombie) process."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and fields[0] != "Z":
            found[int(entry.name)] = int(fields[2])
    return found
