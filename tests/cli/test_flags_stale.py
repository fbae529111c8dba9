"""``ringmaster flags stale`` against the sandbox's real Unleash: which flags it lists, since when, and
its exit codes when input is bad or a flag server cannot be reached.

One stack for the module (``python -m sandbox up --no-temporal``, Prometheus off): an Unleash per
jurisdiction, each serving every region of its jurisdiction from its ``production`` environment, and
``DIR/fleet.yaml`` naming them. Flags are created through the Admin API, as people do. The command
runs in-process on the ``flags`` group, with the admin tokens in ``RINGMASTER_UNLEASH_ADMIN_TOKENS``
as the worker has them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from policies import flags
from ringmaster.cli import flags as flags_cli
from ringmaster.exitcodes import ExitCode
from sandbox import unleash
from sandbox.processes import free_port
from tests.sandbox.support import flag_stack
from tests.support.cli import Run
from tests.support.fleets import EXAMPLE_FLEET, FLEET_DATA

TOKENS = "RINGMASTER_UNLEASH_ADMIN_TOKENS"
EU_CLUSTERS = ("euw1-internal", "euc1-beta", "euw1-prod", "euc1-prod")
_names = itertools.count()


def stale(*args: str) -> Run:
    """``ringmaster flags stale ARGS``, in-process."""
    result = CliRunner().invoke(flags_cli.app, ["stale", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(autouse=True)
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A working folder without ``.env``, and no admin tokens unless a test sets them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(TOKENS, raising=False)


class TestInput:
    def test_an_older_than_that_is_no_duration_exits_2_naming_the_option(self) -> None:
        """--older-than 3 weeks is refused before any server is read, naming the forms allowed."""
        run = stale("--older-than", "3w", "--fleet", str(EXAMPLE_FLEET))
        assert run.code == ExitCode.INVALID
        assert "--older-than: '3w' is not a duration; write 30s, 5m, 2h, 1d" in run.stderr
        assert "Traceback" not in run.stderr + run.stdout

    def test_an_invalid_fleet_exits_2_naming_the_file(self, tmp_path: Path) -> None:
        """A fleet with problems is reported as validate reports it, in JSON too."""
        broken = tmp_path / "fleet.yaml"
        broken.write_text("apiVersion: ringmaster.dev/v1\nkind: Fleet\nregions: 3\n", encoding="utf-8")
        run = stale("--fleet", str(broken), "--output", "json")
        assert run.code == ExitCode.INVALID
        assert str(broken) in run.json()["error"]

    def test_a_host_without_a_token_exits_2_naming_the_setting(self) -> None:
        """With no admin token for a server's host the command says which host and which setting."""
        run = stale("--fleet", str(EXAMPLE_FLEET))
        assert run.code == ExitCode.INVALID
        assert f"no admin token for unleash.eu.example.com ({TOKENS})" in run.stderr


class TestUnreachable:
    def test_an_unreachable_server_exits_3_naming_it_without_a_trace(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A flag server that does not answer is named (host and request), in text and in JSON, exit 3."""
        port = free_port("127.0.0.1")
        data = json.loads(json.dumps(FLEET_DATA))
        for region in data["regions"]:
            region["flags"]["url"] = f"http://127.0.0.1:{port}/api"
        fleet = tmp_path / "fleet.yaml"
        fleet.write_text(yaml.safe_dump(data), encoding="utf-8")
        monkeypatch.setenv(TOKENS, json.dumps({"127.0.0.1": "secret-admin-token"}))

        run = stale("--fleet", str(fleet))
        assert run.code == ExitCode.UNREACHABLE
        assert "error: 127.0.0.1: GET features of project default: " in run.stderr
        assert "Traceback" not in run.stderr + run.stdout
        assert "secret-admin-token" not in run.stderr + run.stdout
        document = stale("--fleet", str(fleet), "--output", "json")
        assert document.code == ExitCode.UNREACHABLE
        [error] = document.json()["errors"]
        assert (error["server"], error["kind"]) == ("127.0.0.1", "transient")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, unleash.Server]]]:
    """The sandbox fleet file and an Unleash per jurisdiction (PostgreSQL too), started by the CLI."""
    with flag_stack(tmp_path_factory.mktemp("stale"), EXAMPLE_FLEET) as where:
        yield where / "fleet.yaml", unleash.read(where)


@pytest.fixture
def eu(servers: tuple[Path, dict[str, unleash.Server]]) -> unleash.Server:
    """The EU Unleash (serving every EU region from ``production``)."""
    return servers[1]["EU"]


@pytest.fixture
def sandbox(servers: tuple[Path, dict[str, unleash.Server]], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sandbox fleet file, with the admin tokens of both servers in the settings."""
    fleet, found = servers
    tokens = {s.flag_server().host: s.admin_token for s in found.values()}
    monkeypatch.setenv(TOKENS, json.dumps(tokens))
    return fleet


class EuFlag:
    """A fresh flag on the EU Unleash, switched on in ``production`` with the strategies given."""

    def __init__(self, eu: unleash.Server, kind: str, strategies: list[dict[str, Any]]) -> None:
        self.name = f"s{next(_names)}-{kind}"
        self.api = eu.admin()
        features = f"/api/admin/projects/{eu.project}/features"
        self.api.call("POST", features, {"name": self.name, "type": "release"})
        self.base = f"{features}/{self.name}/environments/{eu.environment}"
        for body in strategies:
            self.api.call("POST", f"{self.base}/strategies", body)
        self.api.call("POST", f"{self.base}/on")


def _cluster(eu: unleash.Server, cluster: str, rollout: int) -> dict[str, Any]:
    """What a ringmaster step writes for ``cluster``."""
    return flags.request_body(flags.rollout_strategy(eu.flag_server(), "f", cluster, rollout))


def _rollout(rollout: int) -> dict[str, Any]:
    return {"name": "flexibleRollout", "parameters": {"rollout": str(rollout), "stickiness": "default"}}


@pytest.mark.slow
class TestStaleFlags:
    def test_lists_exactly_the_flags_fully_on_for_every_cluster(
        self, eu: unleash.Server, sandbox: Path
    ) -> None:
        """Fully on for everyone, and at 100 % in every EU cluster's own strategy, are listed with when
        they last changed; 50 % for everyone, 100 % in one cluster only, and a flag switched off are not;
        nothing is listed at --older-than 30d."""
        started = datetime.now(UTC).replace(microsecond=0)
        everyone = EuFlag(eu, "everyone", [{"name": "default", "parameters": {}}])
        clusters = EuFlag(eu, "clusters", [_cluster(eu, c, 100) for c in EU_CLUSTERS])
        EuFlag(eu, "half", [_rollout(50)])
        EuFlag(eu, "one-cluster", [_cluster(eu, "euw1-internal", 100)])
        EuFlag(
            eu,
            "most-clusters",
            [_cluster(eu, c, 100) for c in EU_CLUSTERS[:3]] + [_cluster(eu, "euc1-prod", 90)],
        )
        off = EuFlag(eu, "off", [_rollout(100)])
        off.api.call("POST", f"{off.base}/off")

        run = stale("--older-than", "0s", "--fleet", str(sandbox), "--output", "json")
        assert run.code == ExitCode.OK, run.stderr
        document = run.json()
        assert document["errors"] == []
        listed = {row["flag"]: row for row in document["flags"]}
        assert set(listed) == {everyone.name, clusters.name}
        row = listed[clusters.name]
        assert (row["project"], row["environments"]) == (eu.project, [eu.environment])
        since = datetime.fromisoformat(row["since"])
        assert started <= since <= datetime.now(UTC)
        assert row["ageSeconds"] >= 0

        text = stale("--older-than", "0s", "--fleet", str(sandbox))
        assert text.code == ExitCode.OK
        header, *lines = text.stdout.splitlines()
        assert header.split() == ["FLAG", "PROJECT", "SERVER", "ENVIRONMENTS", "FULLY", "ON", "SINCE", "AGE"]
        assert sorted(line.split()[0] for line in lines) == sorted([everyone.name, clusters.name])

        later = stale("--older-than", "30d", "--fleet", str(sandbox), "--output", "json")
        assert later.code == ExitCode.OK
        assert later.json()["flags"] == []
        empty = stale("--older-than", "30d", "--fleet", str(sandbox))
        assert empty.stdout.startswith(
            "no flag fully on everywhere for 30d or more (2 of 2 flag server(s) read)"
        )

    def test_a_change_restarts_the_clock(self, eu: unleash.Server, sandbox: Path) -> None:
        """A flag switched off and on again is fully on since the switch back, not since it was created;
        a change that decides nothing about who gets it (the order of its strategies) leaves it alone."""
        flag = EuFlag(eu, "flipped", [{"name": "default", "parameters": {}}, _rollout(100)])
        first = _since(sandbox, flag.name)
        ids = [strategy["id"] for strategy in flag.api.call("GET", f"{flag.base}/strategies")]
        order = [{"id": strategy_id, "sortOrder": n} for n, strategy_id in enumerate(reversed(ids))]
        flag.api.call("POST", f"{flag.base}/strategies/set-sort-order", order)
        assert _since(sandbox, flag.name) == first
        flag.api.call("POST", f"{flag.base}/off")
        flag.api.call("POST", f"{flag.base}/on")
        second = _since(sandbox, flag.name)
        assert second > first


def _since(fleet: Path, name: str) -> datetime:
    run = stale("--older-than", "0s", "--fleet", str(fleet), "--output", "json")
    assert run.code == ExitCode.OK, run.stderr
    [row] = [r for r in run.json()["flags"] if r["flag"] == name]
    return datetime.fromisoformat(row["since"])
