"""The flag activities against the sandbox's real Unleash: what each step writes, whose strategy it is,
how a restore gives back the snapshot, and how failures are classified.

One stack for the module (``python -m sandbox up --no-temporal``, Prometheus off): PostgreSQL and an
Unleash per jurisdiction, with the tokens ``DIR/unleash.json`` hands out. Each test works on a flag of
its own, created through the Admin API (ringmaster never creates flags), in the sandbox's
``production`` environment; what a test checks is read back through the Admin API, and what users
get through the official Python SDK.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import _unleash, errors, reachability, telemetry
from activities import flags as flag_activities
from activities._unleash import FlagError, UnleashAdmin
from activities.flags import (
    FlagActivities,
    FlagRestoreInput,
    FlagSnapshotInput,
    FlagStepInput,
    FlagStepResult,
    FlagWrite,
)
from activities.models import ReleaseRef
from policies import flags, loading
from policies.flags import FlagServer, FlagSnapshot, UnleashStrategy
from ringmaster.settings import Settings
from sandbox import unleash
from sandbox.processes import Processes
from tests.sandbox.support import flag_stack
from tests.support import metrics, unleash_sdk
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "deploy" / "examples" / "fleet.yaml"
RELEASE = ReleaseRef(service="shop", version="v2", image="registry.example.com/shop:v2", ring="internal")
INTERNAL, PROD, OTHER = "euw1-internal", "euw1-prod", "euc1-prod"
pytestmark = pytest.mark.slow

_names = itertools.count()


def _quiet(_: str) -> None:
    """The heartbeat of a call made outside an activity."""


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """PostgreSQL and an Unleash per jurisdiction (with the example fleet's clusters), started by the CLI."""
    with flag_stack(tmp_path_factory.mktemp("flags"), FLEET) as where:
        yield where


@pytest.fixture(scope="module")
def eu(directory: Path) -> unleash.Server:
    """The EU Unleash, as ``DIR/unleash.json`` describes it."""
    return unleash.read(directory)["EU"]


@pytest.fixture(scope="module")
def server(eu: unleash.Server) -> FlagServer:
    """The EU Unleash as a region of the fleet names it (the sandbox serves ``production`` only)."""
    return eu.flag_server()


@pytest.fixture(scope="module")
def admin(eu: unleash.Server, server: FlagServer) -> Iterator[UnleashAdmin]:
    """The Admin API client with the worker's token for the EU host."""
    client = UnleashAdmin({server.host: SecretStr(eu.admin_token)}, timeout=5.0)
    yield client
    client.close()


class Flag:
    """A fresh flag of one test, with what ringmaster does to it and what the Admin API shows."""

    def __init__(self, eu: unleash.Server, server: FlagServer, admin: UnleashAdmin) -> None:
        self.eu, self.server, self.admin = eu, server, admin
        self.name = f"t{next(_names)}-checkout"
        self.api = eu.admin()
        self.api.call(
            "POST", f"/api/admin/projects/{eu.project}/features", {"name": self.name, "type": "release"}
        )
        self.base = server.admin_path(self.name)

    def step(
        self, rollout: int, last: FlagStepResult | FlagWrite | None = None, cluster: str = INTERNAL
    ) -> FlagStepResult:
        """One setRollout step in ``cluster``, after ``last``."""
        written = last.written if isinstance(last, FlagStepResult) else last
        inp = FlagStepInput(
            release=RELEASE,
            cluster=cluster,
            flag=self.name,
            server=self.server,
            rollout=rollout,
            last_written=written,
        )
        return flag_activities.set_rollout(self.admin, inp, _quiet)

    def snapshot(self, cluster: str = INTERNAL) -> FlagSnapshot:
        """The cluster's snapshot, as the workflow takes it before the first step."""
        return flag_activities.snapshot(self.admin, cluster, self.name, self.server, _quiet)

    def restore(
        self, snapshot: FlagSnapshot, last: FlagStepResult | None
    ) -> flag_activities.FlagRestoreResult:
        """The rollback of the cluster's flag to ``snapshot``."""
        inp = FlagRestoreInput(
            release=RELEASE,
            server=self.server,
            snapshot=snapshot,
            last_written=last.written if last else None,
        )
        return flag_activities.restore(self.admin, inp, _quiet)

    def strategies(self) -> list[dict[str, Any]]:
        """The flag's strategies in the environment, as the Admin API answers."""
        found = self.api.call("GET", self.base)
        assert isinstance(found, list)
        return found

    def enabled(self) -> bool:
        """Whether the flag is on in the environment."""
        return bool(self.api.call("GET", self.base.removesuffix("/strategies"))["enabled"])

    def add(self, body: dict[str, Any]) -> str:
        """A strategy written by a person (or an earlier release); its id."""
        return str(self.api.call("POST", self.base, body)["id"])

    def edit(self, strategy_id: str, **changes: Any) -> None:
        """A person's edit of a strategy through the Admin API."""
        current = self.api.call("GET", f"{self.base}/{strategy_id}")
        body = {k: current[k] for k in ("name", "title", "disabled", "parameters", "constraints", "segments")}
        self.api.call("PUT", f"{self.base}/{strategy_id}", body | changes)

    def switch(self, on: bool) -> None:
        """A person's flip of the environment toggle."""
        self.api.call("POST", self.base.removesuffix("/strategies") + ("/on" if on else "/off"))

    def events(self) -> int:
        """How many changes Unleash has recorded for the flag."""
        return len(self.api.call("GET", f"/api/admin/events/{self.name}")["events"])

    def state(self) -> tuple[bool, list[UnleashStrategy]]:
        """The environment toggle and every strategy, comparable with a snapshot."""
        return self.enabled(), [UnleashStrategy.model_validate(s) for s in self.strategies()]


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    """The threads the activities run their requests on, as the worker's cluster pool."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="flags-test") as threads:
        yield threads


@pytest.fixture
def flag(eu: unleash.Server, server: FlagServer, admin: UnleashAdmin) -> Flag:
    """A fresh flag: off in production, no strategy."""
    return Flag(eu, server, admin)


def rollout_body(flag: Flag, cluster: str, rollout: int) -> dict[str, object]:
    """Exactly what the contract says a step writes."""
    return flags.request_body(flags.rollout_strategy(flag.server, flag.name, cluster, rollout, "userId"))


def conflict(call: Callable[[], object]) -> FlagError:
    """The ownership conflict ``call`` fails with."""
    with pytest.raises(FlagError) as failed:
        call()
    assert failed.value.kind == "ownership-conflict", str(failed.value)
    return failed.value


class TestSteps:
    def test_the_first_step_creates_the_strategy_exactly_as_the_contract_writes_it(self, flag: Flag) -> None:
        """The first step POSTs one flexibleRollout titled ringmaster:<cluster>, constrained to the cluster,
        returns its id, and switches the environment on (there was nothing else there)."""
        result = flag.step(5)
        [found] = flag.strategies()
        assert result.action == "created"
        assert result.strategy_id == found["id"]
        assert result.environment_turned_on
        assert {
            k: found[k] for k in ("name", "title", "disabled", "parameters", "constraints", "segments")
        } == (rollout_body(flag, INTERNAL, 5))
        assert found["constraints"] == [
            {
                "contextName": "cluster",
                "operator": "IN",
                "values": [INTERNAL],
                "inverted": False,
                "caseInsensitive": False,
            }
        ]
        assert found["parameters"] == {"rollout": "5", "stickiness": "userId", "groupId": flag.name}
        assert flag.enabled()

    def test_later_steps_update_the_same_strategy_in_place(self, flag: Flag) -> None:
        """Each later step PUTs the same strategy by its id: one strategy, its rollout the step's."""
        first = flag.step(5)
        second = flag.step(50, first)
        last = flag.step(100, second)
        [found] = flag.strategies()
        assert (second.action, last.action) == ("updated", "updated")
        assert found["id"] == first.strategy_id == second.strategy_id == last.strategy_id
        assert found["parameters"]["rollout"] == "100"
        assert last.written.strategy.parameters["rollout"] == "100"

    def test_a_repeated_step_writes_nothing_new(self, flag: Flag) -> None:
        """The same step again (a retried activity, even one whose first attempt wrote but never answered)
        changes nothing: no event in Unleash's log, the same strategy."""
        first = flag.step(5)
        second = flag.step(50, first)
        before, strategies = flag.events(), flag.strategies()
        again = flag.step(50, first)
        assert again.action == "unchanged"
        assert again.written == second.written
        assert flag.step(50, second).action == "unchanged"
        assert (flag.events(), flag.strategies()) == (before, strategies)

    def test_an_internal_step_reaches_only_its_cluster_as_the_sdk_sees_it(
        self, flag: Flag, tmp_path: Path
    ) -> None:
        """At 100% in euw1-internal the official SDK turns the flag on for every user there, and for no
        request from euw1-prod or without a cluster."""
        flag.step(100)
        with unleash_sdk.sdk(flag.eu, tmp_path) as client:
            users = [f"user-{i}" for i in range(20)]

            def inside() -> bool:
                return all(
                    client.is_enabled(flag.name, {"userId": u, "properties": {"cluster": INTERNAL}})
                    for u in users
                )

            eventually(inside, timeout=15, every=0.2, what="the SDK sees the internal rollout")
            for user in users:
                assert not client.is_enabled(flag.name, {"userId": user, "properties": {"cluster": PROD}})
                assert not client.is_enabled(flag.name, {"userId": user})


class TestOwnership:
    def test_an_earlier_releases_strategy_is_adopted_and_never_lowered(self, flag: Flag) -> None:
        """A ringmaster:<cluster> strategy already at 50% is recorded in the snapshot; a 10% step leaves it
        (skipped), 100% updates it in place, and the restore puts 50% back."""
        earlier = flag.add(rollout_body(flag, INTERNAL, 50))
        flag.switch(on=True)
        snapshot = flag.snapshot()
        assert snapshot.strategy is not None and snapshot.strategy.id == earlier
        low = flag.step(10)
        assert (low.action, low.rollout, low.adopted, low.strategy_id) == ("skipped", 50, True, earlier)
        assert flag.strategies()[0]["parameters"]["rollout"] == "50"
        assert flag.step(20, low).action == "skipped"
        full = flag.step(100, low)
        assert (full.action, full.strategy_id) == ("updated", earlier)
        restored = flag.restore(snapshot, full)
        assert restored.action == "restored"
        assert flag.state() == (True, [snapshot.strategy])

    def test_another_strategy_reaching_the_cluster_stops_the_first_write(self, flag: Flag) -> None:
        """Before the first write, a person's strategy with no cluster constraint (it reaches every cluster)
        is an ownership conflict naming it, and nothing is written."""
        theirs = flag.add(
            {"name": "flexibleRollout", "parameters": {"rollout": "10", "stickiness": "default"}}
        )
        flag.switch(on=True)
        before = flag.strategies()
        failed = conflict(lambda: flag.step(5))
        assert theirs in str(failed)
        assert flag.strategies() == before

    def test_a_strategy_for_other_clusters_does_not_stop_it(self, flag: Flag) -> None:
        """A person's strategy constrained to another cluster cannot reach this one: the step goes ahead."""
        body = {
            "name": "default",
            "constraints": [{"contextName": "cluster", "operator": "IN", "values": [OTHER]}],
        }
        flag.add(body)
        flag.switch(on=True)
        assert flag.step(5).action == "created"

    def test_an_off_switch_with_other_strategies_enabled_is_a_kill_switch(self, flag: Flag) -> None:
        """The flag off in the environment while another strategy is enabled there is a person's kill
        switch: the step fails rather than switch it on."""
        flag.add(
            {
                "name": "default",
                "constraints": [{"contextName": "cluster", "operator": "IN", "values": [OTHER]}],
            }
        )
        flag.switch(on=False)
        conflict(lambda: flag.step(5))
        assert not flag.enabled()

    def test_switching_the_flag_off_after_a_step_stops_the_next(self, flag: Flag) -> None:
        """A person who switches the environment off after ringmaster's step has pulled the kill switch."""
        first = flag.step(5)
        flag.switch(on=False)
        failed = conflict(lambda: flag.step(50, first))
        assert "kill switch" in str(failed)
        assert not flag.enabled()

    @pytest.mark.parametrize(
        ("edit", "named"),
        [
            ({"parameters": {"rollout": "80", "stickiness": "userId"}}, "its parameters"),
            (
                {"constraints": [{"contextName": "cluster", "operator": "IN", "values": [INTERNAL, PROD]}]},
                "its constraints",
            ),
            ({"disabled": True}, "whether it is disabled"),
        ],
    )
    def test_a_persons_edit_stops_the_next_step_and_the_restore(
        self, flag: Flag, edit: dict[str, Any], named: str
    ) -> None:
        """After a person changed ringmaster's strategy (its rollout, its constraint, or disabled it),
        neither the next step nor the restore writes it: both are ownership conflicts naming the change."""
        snapshot = flag.snapshot()
        first = flag.step(5)
        flag.edit(first.strategy_id, **edit)
        before = flag.strategies()
        assert named in str(conflict(lambda: flag.step(50, first)))
        assert named in str(conflict(lambda: flag.restore(snapshot, first)))
        assert flag.strategies() == before

    def test_a_deleted_strategy_is_a_conflict_for_the_next_step(self, flag: Flag) -> None:
        """A person who deleted ringmaster's strategy has taken the flag over: the next step stops."""
        first = flag.step(5)
        flag.api.call("DELETE", f"{flag.base}/{first.strategy_id}")
        assert "deleted" in str(conflict(lambda: flag.step(50, first)))
        assert flag.strategies() == []


class TestRestore:
    def test_restore_after_each_step_gives_back_the_snapshot(self, flag: Flag) -> None:
        """From the first step, a later step, or the promotion, the restore leaves the flag exactly as the
        snapshot found it (no strategy, off), and a repeated restore changes nothing."""
        snapshot = flag.snapshot()
        assert (snapshot.environment_enabled, snapshot.strategy) == (False, None)
        last: FlagStepResult | None = None
        for rollout in (5, 50, 100):
            last = flag.step(rollout, last)
            restored = flag.restore(snapshot, last)
            assert (restored.action, restored.environment_enabled) == ("deleted", False)
            assert flag.state() == (False, [])
            last = None  # the next run starts from the snapshot again
        before = flag.events()
        assert flag.restore(snapshot, None).action == "unchanged"
        assert flag.events() == before

    def test_restore_before_any_step_and_after_a_lost_first_write(self, flag: Flag) -> None:
        """With no write known, the restore deletes a ringmaster:<cluster> strategy the snapshot did not
        have (a first step whose answer was lost), and does nothing when there is none."""
        snapshot = flag.snapshot()
        assert flag.restore(snapshot, None).action == "unchanged"
        flag.step(5)
        assert flag.restore(snapshot, None).action == "deleted"
        assert flag.state() == (False, [])

    def test_restore_leaves_another_clusters_strategy_and_keeps_the_flag_on_for_it(self, flag: Flag) -> None:
        """Rolling back euw1-internal deletes its strategy only: euw1-prod's (promoted in the same
        environment) stays as it is, and so does the environment, on."""
        prod = flag.step(100, cluster=PROD)
        snapshot = flag.snapshot()
        assert snapshot.environment_enabled
        internal = flag.step(50, flag.step(5))
        restored = flag.restore(snapshot, internal)
        assert (restored.action, restored.environment_turned_off, restored.environment_enabled) == (
            "deleted",
            False,
            True,
        )
        [left] = flag.strategies()
        assert left["id"] == prod.strategy_id
        assert UnleashStrategy.model_validate(left) == prod.written.strategy

    def test_an_off_snapshot_with_another_promotion_keeps_the_flag_on(self, flag: Flag) -> None:
        """Snapshot off, then euw1-prod promoted in the same environment: the restore of euw1-internal
        leaves the environment on (turning it off would switch euw1-prod's users off)."""
        snapshot = flag.snapshot()
        internal = flag.step(5)
        flag.step(100, cluster=PROD)
        restored = flag.restore(snapshot, internal)
        assert (restored.action, restored.environment_enabled) == ("deleted", True)
        assert [s["title"] for s in flag.strategies()] == [flags.owner_title(PROD)]


class TestFailures:
    async def test_a_bad_token_is_permanent_and_never_quoted(
        self, flag: Flag, pool: ThreadPoolExecutor
    ) -> None:
        """401 is a non-retryable FlagRequestRefused naming the flag, the cluster and the host; neither
        the bad token nor the worker's appears in it."""
        bad = "*:*.not-the-admin-token-0123456789"
        activities = FlagActivities.with_tokens({flag.server.host: SecretStr(bad)}, pool, timeout=5.0)
        inp = FlagStepInput(release=RELEASE, cluster=INTERNAL, flag=flag.name, server=flag.server, rollout=5)
        with pytest.raises(ApplicationError) as failed:
            await ActivityEnvironment().run(activities.set_flag_rollout, inp)
        error = failed.value
        assert (error.type, error.non_retryable) == (errors.FLAG_REQUEST_REFUSED, True)
        assert "401" in error.message
        for named in (flag.name, INTERNAL, flag.server.host):
            assert named in error.message
        assert bad not in error.message
        assert flag.eu.admin_token not in error.message

    async def test_a_missing_flag_or_token_is_permanent(
        self, flag: Flag, server: FlagServer, pool: ThreadPoolExecutor
    ) -> None:
        """A flag Unleash does not have (404) and a host the worker holds no token for both fail at once."""
        activities = FlagActivities.with_tokens({server.host: SecretStr(flag.eu.admin_token)}, pool)
        missing = FlagSnapshotInput(release=RELEASE, cluster=INTERNAL, flag="no-such-flag", server=server)
        with pytest.raises(ApplicationError) as failed:
            await ActivityEnvironment().run(activities.snapshot_flag, missing)
        assert (failed.value.type, failed.value.non_retryable) == (errors.FLAG_REQUEST_REFUSED, True)
        assert "404" in failed.value.message
        untokened = FlagActivities.with_tokens({}, pool)
        inp = FlagSnapshotInput(release=RELEASE, cluster=INTERNAL, flag=flag.name, server=server)
        with pytest.raises(ApplicationError) as failed:
            await ActivityEnvironment().run(untokened.snapshot_flag, inp)
        assert failed.value.type == errors.FLAG_REQUEST_REFUSED
        assert "RINGMASTER_UNLEASH_ADMIN_TOKENS" in failed.value.message
        assert flag.eu.admin_token not in failed.value.message

    async def test_a_stopped_server_is_transient(
        self, flag: Flag, directory: Path, pool: ThreadPoolExecutor
    ) -> None:
        """With Unleash stopped, a step fails with the retryable FlagServerUnreachable (no token in it),
        and once it is back the same step succeeds."""
        activities = FlagActivities.with_tokens(
            {flag.server.host: SecretStr(flag.eu.admin_token)}, pool, timeout=2.0
        )
        inp = FlagStepInput(release=RELEASE, cluster=INTERNAL, flag=flag.name, server=flag.server, rollout=5)
        processes = Processes(directory)
        processes.stop(unleash.process_name("EU"))
        try:
            with pytest.raises(ApplicationError) as failed:
                await ActivityEnvironment().run(activities.set_flag_rollout, inp)
            assert (failed.value.type, failed.value.non_retryable) == (errors.FLAG_SERVER_UNREACHABLE, False)
            assert "connection refused" in failed.value.message
            assert flag.eu.admin_token not in failed.value.message
        finally:
            unleash.restart_server(processes, "EU")
        result = await ActivityEnvironment().run(activities.set_flag_rollout, inp)
        assert result.action == "created"


class _Interleaving:
    """The real Admin API client, recording which cluster each request is about; the first request
    about ``slow`` waits (up to a second) for a request about any other cluster to arrive."""

    def __init__(self, real: UnleashAdmin, slow: str) -> None:
        self.real, self.slow = real, slow
        self.order: list[str] = []
        self.other_arrived = threading.Event()
        self._held = False

    def call(self, server: FlagServer, method: str, path: str, body: object = None, *, about: Any) -> Any:
        self.order.append(about.cluster)
        if about.cluster != self.slow:
            self.other_arrived.set()
        elif not self._held:
            self._held = True
            self.other_arrived.wait(timeout=1.0)
        return self.real.call(server, method, path, body, about=about)


class TestOneEnvironmentAtATime:
    async def test_a_restore_and_another_clusters_step_in_one_environment_never_interleave(
        self, flag: Flag, admin: UnleashAdmin, pool: ThreadPoolExecutor
    ) -> None:
        """A restore that may switch the environment off and another cluster's first step (which relies
        on the toggle it read) run one after the other, so neither reads a state the other is changing:
        both succeed, and the other cluster ends with its strategy and the flag on."""
        snapshot = flag.snapshot(INTERNAL)
        internal = flag.step(30)
        recording = _Interleaving(admin, slow=INTERNAL)
        activities = FlagActivities(recording, pool)
        restore = FlagRestoreInput(
            release=RELEASE, server=flag.server, snapshot=snapshot, last_written=internal.written
        )
        step = FlagStepInput(release=RELEASE, cluster=PROD, flag=flag.name, server=flag.server, rollout=5)
        env = ActivityEnvironment()
        restored_task = asyncio.create_task(env.run(activities.restore_flag, restore))
        await asyncio.to_thread(
            lambda: eventually(
                lambda: INTERNAL in recording.order, timeout=10, what="the restore's first call"
            )
        )
        stepped = await env.run(activities.set_flag_rollout, step)
        restored = await restored_task
        first_prod = recording.order.index(PROD)
        assert set(recording.order[:first_prod]) == {INTERNAL}
        assert INTERNAL not in recording.order[first_prod:], recording.order
        assert restored.action == "deleted" and stepped.action == "created"
        assert flag.enabled()
        assert [s["title"] for s in flag.strategies()] == [flags.owner_title(PROD)]


class TestTokens:
    def test_the_worker_reads_admin_tokens_by_host_and_never_shows_them(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """RINGMASTER_UNLEASH_ADMIN_TOKENS is JSON by host (or host:port, which wins); the settings' text
        never shows a token."""
        secret = "*:*.a-token-nobody-may-read"
        tokens = {"unleash.eu.example.com": secret, "unleash.eu.example.com:8443": "*:*.the-8443-one"}
        monkeypatch.setenv("RINGMASTER_UNLEASH_ADMIN_TOKENS", json.dumps(tokens))
        settings = Settings(_env_file=None)
        assert secret not in repr(settings) and secret not in str(settings.model_dump())
        by_host = FlagServer(url="https://unleash.eu.example.com/api", environment="eu-west-1")
        by_port = FlagServer(url="https://unleash.eu.example.com:8443/api", environment="eu-west-1")
        elsewhere = FlagServer(url="https://unleash.us.example.com/api", environment="us-east-1")
        found = settings.unleash_admin_tokens
        assert _unleash.token_for(found, by_host) == SecretStr(secret)
        assert _unleash.token_for(found, by_port) == SecretStr("*:*.the-8443-one")
        assert _unleash.token_for(found, elsewhere) is None


class TestTelemetry:
    async def test_flag_writes_are_counted_by_server_operation_and_result(
        self, flag: Flag, pool: ThreadPoolExecutor
    ) -> None:
        """``ringmaster_flag_changes`` counts a created step, a repeated one and a refused one, by the
        flag server's host (never the flag or the release)."""
        good = FlagActivities.with_tokens({flag.server.host: SecretStr(flag.eu.admin_token)}, pool)
        bad = FlagActivities.with_tokens({flag.server.host: SecretStr("*:*.not-the-token")}, pool)
        inp = FlagStepInput(release=RELEASE, cluster=INTERNAL, flag=flag.name, server=flag.server, rollout=5)
        with metrics.recorded() as seen:
            first = await ActivityEnvironment().run(good.set_flag_rollout, inp)
            await ActivityEnvironment().run(
                good.set_flag_rollout, inp.model_copy(update={"last_written": first.written})
            )
            with pytest.raises(ApplicationError):
                await ActivityEnvironment().run(bad.set_flag_rollout, inp)
            counted = seen.updates(telemetry.FLAG_CHANGES)
        host = flag.server.host
        assert counted == [
            (1, {"server": host, "operation": "set-rollout", "result": "created"}),
            (1, {"server": host, "operation": "set-rollout", "result": "unchanged"}),
            (1, {"server": host, "operation": "set-rollout", "result": "failed"}),
        ]

    def test_the_flag_servers_are_probed_for_reachability(self, directory: Path) -> None:
        """Each region's flag server answers its ``/health`` probe (the sandbox's fleet names them)."""
        fleet = loading.load_fleet(directory / "fleet.yaml")
        probes = [p for p in reachability.probes(fleet, None, prometheus_headers=None) if p.kind == "flags"]
        assert probes, "the sandbox's fleet names flag servers"
        for probe in probes:
            probe.check(5.0)
