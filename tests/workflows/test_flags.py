"""Feature-flag releases on the dev server: the cluster workflow moves a ring's flag in the sandbox's
real Unleash through the real flag activities, over the file-backed fake clusters.

One flag stack for the module (PostgreSQL and an Unleash per jurisdiction); the worker's fleet is the
example fleet with its EU regions' flag server pointed at the sandbox's EU Unleash (which serves one
environment, so every EU cluster shares it: only the ``cluster`` constraint keeps a ring's rollout
in its own cluster). Each test works on a flag of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from activities._unleash import UnleashAdmin
from policies import flags
from policies.flags import FlagServer
from policies.fleet import Fleet
from ringmaster.cli import status
from ringmaster.settings import Settings
from sandbox import unleash
from sandbox.processes import Processes
from tests.activities.test_flags import Flag
from tests.sandbox.support import flag_stack
from tests.support import fleets, unleash_sdk
from tests.support.waiting import assert_eventually, eventually
from tests.workflows.support import (
    ScriptedMetrics,
    cluster_state,
    ended,
    plan,
    running_worker,
    unique_service,
    worker_settings,
)
from workflows.models import AbortRequest, ApproveRequest
from workflows.release import ReleaseWorkflow, release_id
from workflows.undo import UndoInput, UndoWorkflow, undo_id

ROOT = Path(__file__).resolve().parents[2]
INTERNAL, BETA, PROD = "euw1-internal", "euc1-beta", "euw1-prod"
pytestmark = pytest.mark.slow

FLAG_METRIC = {
    "name": "success-rate",
    "query": 'sum(rate(ok{cluster="{{cluster}}",feature="{{feature}}",'
    'feature_on="{{featureOn}}"}[{{interval}}]))',
    "thresholdRange": {"min": 99},
}


@dataclass(frozen=True)
class Unleash:
    """The sandbox's EU Unleash, as the worker's fleet names it, and the worker's settings for it."""

    eu: unleash.Server
    server: FlagServer
    fleet: Fleet

    def settings(self) -> Settings:
        """Worker settings with the admin token for the EU host."""
        return worker_settings(unleash_admin_tokens={self.server.host: SecretStr(self.eu.admin_token)})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The flag stack's directory (the stack is up for the module)."""
    with flag_stack(tmp_path_factory.mktemp("flags"), ROOT / "deploy" / "examples" / "fleet.yaml") as where:
        yield where


@pytest.fixture(scope="module")
def eu(stack: Path) -> unleash.Server:
    """The sandbox's EU Unleash."""
    return unleash.read(stack)["EU"]


@pytest.fixture(scope="module")
def server(eu: unleash.Server) -> FlagServer:
    """The EU Unleash as the worker's fleet names it."""
    return eu.flag_server()


@pytest.fixture(scope="module")
def fleet(server: FlagServer) -> Fleet:
    """The example fleet, its EU regions' flags on the sandbox's EU Unleash."""
    base = fleets.example_fleet()
    regions = [r.model_copy(update={"flags": server}) if r.jurisdiction == "EU" else r for r in base.regions]
    return base.model_copy(update={"regions": regions})


@pytest.fixture(scope="module")
def sandbox(eu: unleash.Server, server: FlagServer, fleet: Fleet) -> Unleash:
    """Everything a test's worker needs of the flag stack."""
    return Unleash(eu, server, fleet)


@pytest.fixture
def flag(eu: unleash.Server, server: FlagServer) -> Iterator[Flag]:
    """A fresh flag of the test, off in the environment, with no strategies."""
    admin = UnleashAdmin({server.host: SecretStr(eu.admin_token)}, timeout=5.0)
    yield Flag(eu, server, admin)
    admin.close()


def _plan(service: str, rings: list[dict[str, Any]]) -> str:
    doc = yaml.safe_load(plan(service, rings))
    doc["analysis"]["metrics"] = [FLAG_METRIC, *doc["analysis"]["metrics"][1:]]
    return yaml.safe_dump(doc, sort_keys=False)


def _flag_ring(name: str, cluster: str, flag: str, *steps: Any) -> dict[str, Any]:
    """A ring of one cluster moving ``flag`` alone: ``50`` sets the rollout, ``"1s"`` pauses, None waits."""
    out: list[dict[str, Any]] = []
    for step in steps:
        if isinstance(step, int):
            out.append({"setRollout": step})
        else:
            out.append({"pause": {} if step is None else {"duration": step}})
    return {
        "name": name,
        "clusters": [cluster],
        "strategy": {"featureFlag": {"flag": flag, "steps": out}},
        "bakeTime": "1s",
    }


def _owned(flag: Flag, cluster: str) -> dict[str, Any]:
    """ringmaster's strategy for ``cluster`` in Unleash."""
    mine = [s for s in flag.strategies() if s.get("title") == flags.owner_title(cluster)]
    assert len(mine) == 1, flag.strategies()
    return mine[0]


async def _awaiting(handle: Any, cluster: str) -> None:
    async def state() -> str:
        found = await cluster_state(handle, cluster)
        return found.state if found else ""

    await assert_eventually(state, lambda s: s == "awaiting-approval", timeout=60, what=f"{cluster} to wait")


class TestFlagPromotion:
    async def test_a_flag_release_goes_through_two_rings_and_each_cluster_ends_fully_on(
        self, client, tmp_path, sandbox, flag
    ):
        """Each ring's cluster gets its own strategy, stepped and then at 100%; while the internal ring
        waits at 50%, no user of another cluster has the feature (the SDK and the Admin API agree)."""
        async with running_worker(client, tmp_path, settings=sandbox.settings(), fleet=sandbox.fleet) as h:
            svc = unique_service("flag")
            rings = [
                _flag_ring("internal", INTERNAL, flag.name, 50, None),
                _flag_ring("beta", BETA, flag.name, 20, "1s"),
            ]
            handle = await h.start(_plan(svc, rings), service=svc)
            await _awaiting(handle, INTERNAL)
            assert [s["title"] for s in flag.strategies()] == [flags.owner_title(INTERNAL)]
            assert _owned(flag, INTERNAL)["parameters"]["rollout"] == "50"
            with unleash_sdk.sdk(sandbox.eu, tmp_path / "sdk") as sdk:
                users = [f"user-{i}" for i in range(40)]

                def some_inside() -> bool:
                    return any(
                        sdk.is_enabled(flag.name, {"userId": u, "properties": {"cluster": INTERNAL}})
                        for u in users
                    )

                eventually(some_inside, timeout=15, every=0.2, what="the SDK sees the internal rollout")
                for user in users:
                    for other in (BETA, PROD):
                        assert not sdk.is_enabled(
                            flag.name, {"userId": user, "properties": {"cluster": other}}
                        )
            await handle.execute_update(
                ReleaseWorkflow.approve, ApproveRequest(ring="internal", cluster=INTERNAL, by="bob")
            )
            result = await ended(handle)
            assert result.phase == "succeeded", result.reason
            assert _owned(flag, INTERNAL)["parameters"]["rollout"] == "100"
            assert _owned(flag, BETA)["parameters"]["rollout"] == "100"
            assert flag.enabled()
            assert h.versions()[INTERNAL] == "v2" and h.versions()[BETA] == "v2"
            assert result.flags_fully_on == [flag.name]
            assert [c.flag_rollout for c in result.clusters if c.name in (INTERNAL, BETA)] == [100, 100]
            assert "fully on in every ring" in status.status_text(result, [])


class TestFlagRollback:
    async def test_a_failing_flag_gate_restores_the_flag_exactly_and_then_the_code(
        self, client, tmp_path, sandbox, flag
    ):
        """A person's strategy for another cluster and the environment's toggle are as they were after
        a gate fails in the flag stage; ringmaster's strategy is gone and the code is back on v1."""
        theirs = flags.rollout_strategy(sandbox.server, flag.name, PROD, 40, "userId").model_copy(
            update={"title": "a person's own"}
        )
        flag.add(flags.request_body(theirs))
        flag.switch(on=True)
        before, changes = flag.state(), flag.events()
        metrics = ScriptedMetrics(failing={INTERNAL}, stage="flag")
        async with running_worker(
            client, tmp_path, settings=sandbox.settings(), fleet=sandbox.fleet, metrics=metrics
        ) as h:
            svc = unique_service("flagfail")
            handle = await h.start(
                _plan(svc, [_flag_ring("internal", INTERNAL, flag.name, 30, "30s", 60)]), service=svc
            )
            result = await ended(handle)
            assert result.phase == "rolled-back", result.reason
            assert flag.events() > changes  # the step wrote, and the restore undid it
            assert flag.state() == before
            assert h.versions()[INTERNAL] == "v1"

    async def test_a_release_rollback_restores_the_flag_of_a_promoted_ring_too(
        self, client, tmp_path, sandbox, flag
    ):
        """When the beta ring's flag gate fails, the release rolls back the internal ring it had promoted
        (flag at 100%) from the snapshot that cluster returned: its flag first, then its code."""
        before = flag.state()
        metrics = ScriptedMetrics(failing={BETA}, stage="flag")
        async with running_worker(
            client, tmp_path, settings=sandbox.settings(), fleet=sandbox.fleet, metrics=metrics
        ) as h:
            svc = unique_service("flagscope")
            rings = [
                _flag_ring("internal", INTERNAL, flag.name, 50),
                _flag_ring("beta", BETA, flag.name, 20, "30s", 60),
            ]
            handle = await h.start(_plan(svc, rings), service=svc)
            result = await ended(handle)
            assert result.phase == "rolled-back", result.reason
            assert flag.state() == before
            assert h.versions()[INTERNAL] == "v1" and h.versions()[BETA] == "v1"

    async def test_an_abort_mid_rollout_restores_the_flag(self, client, tmp_path, sandbox, flag):
        """An abort while the flag waits at 30% deletes ringmaster's strategy, switches the environment
        off again (it was off) and rolls the code back."""
        before = flag.state()
        async with running_worker(client, tmp_path, settings=sandbox.settings(), fleet=sandbox.fleet) as h:
            svc = unique_service("flagabort")
            handle = await h.start(
                _plan(svc, [_flag_ring("internal", INTERNAL, flag.name, 30, None)]), service=svc
            )
            await _awaiting(handle, INTERNAL)
            assert flag.enabled() and _owned(flag, INTERNAL)["parameters"]["rollout"] == "30"
            await handle.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="stop", by="bob"))
            result = await ended(handle)
            assert result.phase == "aborted", result.reason
            assert flag.state() == before
            assert h.versions()[INTERNAL] == "v1"


class TestFlagServerUnreachable:
    async def test_an_unreachable_unleash_holds_the_cluster_and_the_release_goes_on_by_itself(
        self, client, tmp_path, stack, sandbox, flag
    ):
        """With the EU Unleash down at the first flag step, the step retries, then the cluster holds as
        ``flag server unreachable`` (no gate fails, nothing rolls back); once Unleash is back the step
        runs again by itself and the release succeeds with the flag fully on."""
        processes = Processes(stack)
        async with running_worker(client, tmp_path, settings=sandbox.settings(), fleet=sandbox.fleet) as h:
            svc = unique_service("flagdown")
            processes.stop(unleash.process_name("EU"))
            try:
                handle = await h.start(
                    _plan(svc, [_flag_ring("internal", INTERNAL, flag.name, 40)]), service=svc
                )

                async def held() -> str:
                    found = await cluster_state(handle, INTERNAL)
                    return f"{found.state}: {found.step}" if found else ""

                await assert_eventually(
                    held,
                    lambda s: s.startswith("holding: flag server unreachable"),
                    timeout=120,
                    what="the cluster held while Unleash is down",
                )
            finally:
                unleash.restart_server(processes, "EU")
            result = await ended(handle)
        assert result.phase == "succeeded", result.reason
        assert _owned(flag, INTERNAL)["parameters"]["rollout"] == "100"
        assert not result.needs_attention


class TestFlagUndo:
    async def test_undoing_a_succeeded_flag_release_restores_each_flag_from_the_clusters_snapshot(
        self, client, tmp_path, sandbox, flag
    ):
        """``ringmaster rollback`` of a promoted flag release finds each cluster's flag as found in the
        snapshot ConfigMap entry (not in any workflow's state) and restores it, then the code."""
        before = flag.state()
        async with running_worker(client, tmp_path, settings=sandbox.settings(), fleet=sandbox.fleet) as h:
            svc = unique_service("flagundo")
            code_only = {"name": "beta", "clusters": [BETA], "strategy": {"rolling": {}}, "bakeTime": "1s"}
            rings = [_flag_ring("internal", INTERNAL, flag.name, 50), code_only]
            handle = await h.start(_plan(svc, rings), service=svc)
            released = await ended(handle)
            assert released.phase == "succeeded", released.reason
            assert released.flags_fully_on == [], "the beta ring's users do not have the flag"
            assert _owned(flag, INTERNAL)["parameters"]["rollout"] == "100"
            kept = h.clusters.read()[INTERNAL]["snapshots"]
            assert [s["flag"]["snapshot"]["flag"] for s in kept.values()] == [flag.name]
            result = await h.client.execute_workflow(
                UndoWorkflow.run,
                UndoInput(release_workflow_id=release_id(svc, "v2"), by="alice"),
                id=undo_id(svc, "v2"),
                task_queue=h.task_queue,
            )
            assert result.phase == "restored", result.problem
            assert flag.state() == before
            assert h.versions()[INTERNAL] == "v1" and h.versions()[BETA] == "v1"


class TestFlagOwnership:
    async def test_a_persons_edit_ends_the_cluster_with_an_ownership_conflict(
        self, client, tmp_path, sandbox, flag
    ):
        """A person who changes ringmaster's strategy mid-rollout keeps their edit: the next step and the
        restore both refuse to overwrite it, and the cluster needs attention."""
        async with running_worker(client, tmp_path, settings=sandbox.settings(), fleet=sandbox.fleet) as h:
            svc = unique_service("flagedit")
            rings = [_flag_ring("internal", INTERNAL, flag.name, 30, None, 60)]
            handle = await h.start(_plan(svc, rings), service=svc)
            await _awaiting(handle, INTERNAL)
            mine = _owned(flag, INTERNAL)
            flag.edit(str(mine["id"]), parameters={**mine["parameters"], "rollout": "80"})
            await handle.execute_update(
                ReleaseWorkflow.approve, ApproveRequest(ring="internal", cluster=INTERNAL, by="bob")
            )
            result = await ended(handle)
            assert result.phase == "failed", result.reason
            assert INTERNAL in result.needs_attention, result
            assert _owned(flag, INTERNAL)["parameters"]["rollout"] == "80"
            cluster = next(c for c in result.clusters if c.name == INTERNAL)
            assert "ringmaster" in cluster.message or "someone" in cluster.message, cluster
