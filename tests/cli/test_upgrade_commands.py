"""Upgrading the worker while releases run: ``ringmaster replay``, ``patches`` and ``deployment``.

On a real dev server, through the CLI as CI and operators run it: replay of a release waiting for
approval against this code (0) and against a deliberately nondeterministic change (6, naming the
release and the event); which patches the open runs still need; and Worker Versioning with two
builds of the worker side by side: a release stays on the build that started it, a new one starts
at the current version's next task, one pinned to the old build stays there, and the old version
is drained once that release ends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from ringmaster import patches, replay
from ringmaster.converter import data_converter
from tests.cli.test_release_cli import Cli
from tests.conftest import DEV_SERVER
from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    canary,
    cluster_state,
    ended,
    plan,
    running_worker,
    unique_service,
    worker_settings,
)
from workflows import _patches, search
from workflows.models import ApproveRequest
from workflows.release import ReleaseWorkflow, cluster_workflow_id

INTERNAL = "euw1-internal"
PAUSED = [{"name": "internal", "clusters": [INTERNAL], "strategy": canary(("w", 20), ("p", None))}]
"""One cluster, whose canary waits at 20% for an approval: a release that stays open."""


async def _waiting(handle: Any) -> None:
    await assert_eventually(
        lambda: cluster_state(handle, INTERNAL),
        lambda c: c is not None and c.state == "awaiting-approval",
        timeout=60,
        what="the canary to wait for approval",
    )


async def _approve(handle: Any) -> None:
    approval = ApproveRequest(ring="internal", cluster=INTERNAL, by="bob")
    await handle.execute_update(ReleaseWorkflow.approve, approval)


class TestReplay:
    async def test_a_waiting_release_replays_and_a_changed_workflow_is_named(self, client, tmp_path):
        """0 while the code is the worker's; 6 with the release's id, run and the event it trips on
        when the release workflow gained an unpatched timer; 2 for a query the server refuses."""
        async with running_worker(client, tmp_path) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            svc = unique_service("replay")
            handle = await h.start(plan(svc, PAUSED, metrics=False), service=svc)
            await _waiting(handle)
            only = f"WorkflowId STARTS_WITH 'release:{svc}:'"

            code, same = await cli.json("replay", "--query", only)
            assert code == 0, same
            replayed = {(r["type"], r["ok"]) for r in same["results"]}
            assert replayed == {("ReleaseWorkflow", True), ("ClusterRolloutWorkflow", True)}, same

            code, changed = await cli.json("replay", "--query", only, module="tests.support.changed_release")
            assert code == 6, changed
            [failed] = [r for r in changed["results"] if not r["ok"]]
            assert (failed["workflowId"], failed["runId"]) == (handle.id, handle.result_run_id)
            assert failed["release"] == handle.id
            # Its first workflow task recorded the baseline's patch marker; the change issues a timer.
            assert (failed["eventId"], failed["eventType"]) == (5, "MARKER_RECORDED"), failed
            assert "Nondeterminism" in failed["error"] or "nondetermin" in failed["error"].lower(), failed
            code, out, _ = await cli.run("replay", "--query", only, module="tests.support.changed_release")
            assert code == 6
            assert f"NONDETERMINISTIC ReleaseWorkflow {handle.id} run {handle.result_run_id}" in out

            code, _, err = await cli.run("replay", "--query", "NoSuchAttribute = 'x'")
            assert code == 2, err
            await _approve(handle)
            assert (await ended(handle)).phase == "succeeded"


@asynccontextmanager
async def _open_release(client: Client, tmp_path: Path, build: str) -> AsyncIterator[tuple[Cli, str, str]]:
    """A release started by a worker of ``build``, waiting for approval: the CLI, its id and a query
    for its workflows; approved and ended on exit."""
    async with running_worker(client, tmp_path, settings=worker_settings(build_id=build)) as h:
        svc = unique_service("patches")
        handle = await h.start(plan(svc, PAUSED, metrics=False), service=svc)
        await _waiting(handle)
        yield Cli(client, h.task_queue, tmp_path), handle.id, f"WorkflowId STARTS_WITH 'release:{svc}:'"
        await _approve(handle)
        await ended(handle)


@workflow.defn(name="ThreeSteps")
class ThreeSteps:
    """Three timers, each in a workflow task of its own."""

    @workflow.run
    async def run(self) -> None:
        """Sleep three times."""
        for _ in range(3):
            await workflow.sleep(timedelta(milliseconds=10))


@workflow.defn(name="ThreeSteps")
class ThreeStepsChanged:
    """The same until its third task, which writes the memo instead of starting a timer."""

    @workflow.run
    async def run(self) -> None:
        """Sleep twice, then change the memo."""
        for _ in range(2):
            await workflow.sleep(timedelta(milliseconds=10))
        workflow.upsert_memo({"changed": True})


class TestFailingEvent:
    async def test_a_change_in_a_later_task_is_named_by_that_tasks_first_command(self, client):
        """The replayer's message names no event; bisecting the task boundaries finds the third task,
        whose first command event (the third timer) is the one named."""
        queue = f"tq-{uuid.uuid4().hex}"
        runner = UnsandboxedWorkflowRunner()
        async with Worker(client, task_queue=queue, workflows=[ThreeSteps], workflow_runner=runner):
            handle = await client.start_workflow(ThreeSteps.run, id=f"three-{queue}", task_queue=queue)
            await handle.result()
        history = await handle.fetch_history()
        timers = [e.event_id for e in history.events if e.HasField("timer_started_event_attributes")]
        changed = Replayer(workflows=[ThreeStepsChanged], workflow_runner=runner)
        result = await changed.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is not None
        named = await replay.failing_event(changed, history, str(result.replay_failure))
        assert named == (timers[2], "TIMER_STARTED")


def _run(build: str, markers: set[str]) -> patches.Run:
    return patches.Run("release:api:v2", "r1", "ReleaseWorkflow", build, markers)


class TestPatchRule:
    """The rule ``ringmaster patches`` applies to one open run (``docs/design.md``, "Retiring a patch")."""

    @pytest.mark.parametrize(
        ("build", "markers", "needed"),
        [
            ("0.0.9-abc", set(), True),  # older than the patch, never met it
            ("", set(), True),  # a build that did not say: the careful side
            ("0.1.0-abc", set(), False),  # started with the patch: it records the marker on the way
            ("0.2.0-abc", set(), False),
            ("0.0.9-abc", {"rollback-first"}, False),  # met it: replays True by its marker
            ("0.0.9-abc", {_patches.BASELINE}, False),  # the baseline stands for every covered id
            ("not-a-version", set(), True),
        ],
    )
    def test_a_run_needs_a_patch_it_never_met_when_its_build_is_older_or_unknown(
        self, build: str, markers: set[str], needed: bool
    ) -> None:
        """``rollback-first`` (covered by the baseline, since 0.1.0)."""
        assert _run(build, markers).needs("rollback-first") is needed

    def test_the_baseline_does_not_stand_for_a_patch_it_does_not_cover(self) -> None:
        """``accountable`` came after the baseline: its marker alone says a run met it."""
        assert _run("0.0.9-abc", {_patches.BASELINE}).needs("accountable")
        assert not _run("0.0.9-abc", {_patches.BASELINE, "accountable"}).needs("accountable")

    def test_versions_compare_by_their_numbers(self) -> None:
        """0.10 is after 0.9, and 0.2 is 0.2.0."""
        assert patches.version_of("0.10.0") > patches.version_of("0.9.3")  # type: ignore[operator]
        assert patches.version_of("0.2") == patches.version_of("0.2.0")
        assert patches.version_of("unknown") is None


class TestPatches:
    async def test_a_run_of_this_build_needs_no_patch_and_check_says_so(self, client, tmp_path):
        """An open release started by a build of this version records the baseline: no patch is
        needed by it (its build is stamped and is not older than any patch); ``--check`` exits 0
        for a retirable patch and 2 for an unknown one."""
        async with _open_release(client, tmp_path, "0.1.0-feedface") as (cli, _, only):
            code, found = await cli.json("patches", "--query", only, "--check", "rollback-first")
            assert code == 0, found
            assert found["openRuns"] == 2
            assert {p["patch"] for p in found["patches"]} == set(_patches.SINCE)
            assert not [p for p in found["patches"] if p["needed"]], found
            code, _, err = await cli.run("patches", "--check", "no-such-patch")
            assert code == 2
            assert "unknown patch no-such-patch" in err

    async def test_a_run_of_an_older_build_needs_the_patches_it_never_recorded(self, client, tmp_path):
        """A release started by a build older than the patches (0.0.9) needs each patch it recorded
        no marker of: ``--check`` exits 7 naming it and its build."""
        async with _open_release(client, tmp_path, "0.0.9-0ld") as (cli, release, only):
            code, found = await cli.json("patches", "--query", only, "--check", "accountable")
            # The run met the baseline (so every covered patch), but not ``accountable`` (this plan
            # has no webhooks or archive): a build older than it may need its old branch.
            assert code == 7, found
            by_id = {p["patch"]: p for p in found["patches"]}
            assert by_id["accountable"]["needed"], by_id["accountable"]
            assert {r["workflowId"] for r in by_id["accountable"]["runs"]} >= {release}
            assert {r["buildId"] for r in by_id["accountable"]["runs"]} == {"0.0.9-0ld"}
            assert not by_id["rollback-first"]["needed"], "covered by the baseline marker it recorded"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def versioned_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of its own whose drainage check runs every second (Temporal's default is minutes)."""
    quick = '"1s"'
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(DEV_SERVER),
        search_attributes=search.ALL,
        data_converter=data_converter,
        dev_server_log_level="error",
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"matching.wv.VersionDrainageStatusVisibilityGracePeriod={quick}",
            "--dynamic-config-value",
            f"matching.wv.VersionDrainageStatusRefreshInterval={quick}",
        ],
    )
    yield env
    await env.shutdown()


async def _builds(client: Client, workflow_id: str) -> list[str]:
    """The build of each workflow task the run completed, in order."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [
        e.workflow_task_completed_event_attributes.deployment_version.build_id
        for e in history.events
        if e.HasField("workflow_task_completed_event_attributes")
    ]


async def _pin(client: Client, workflow_id: str, deployment: str, build: str) -> None:
    """Pin a run to a build as an operator does, with the ``temporal`` CLI."""
    done = await asyncio.create_subprocess_exec(
        str(DEV_SERVER),
        "workflow",
        "update-options",
        "--address",
        client.service_client.config.target_host,
        "--namespace",
        client.namespace,
        "--workflow-id",
        workflow_id,
        "--versioning-override-behavior",
        "pinned",
        "--versioning-override-deployment-name",
        deployment,
        "--versioning-override-build-id",
        build,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await done.communicate()
    assert done.returncode == 0, out.decode()


@pytest.mark.slow
class TestWorkerVersioning:
    async def test_runs_move_to_the_current_build_but_a_pinned_one_stays_until_it_ends(
        self, versioned_env, tmp_path
    ):
        """Two builds poll one task queue. Releases started while build 1 is current run there; once
        build 2 is made current (``deployment current``), an auto-upgrade release moves to it at its
        next task, and one an operator pinned to build 1 stays there until it ends;
        ``deployment drained`` says 7 for build 1 while the pinned release is open (naming it) and 0
        once it ended."""
        client = versioned_env.client
        deployment = f"rm-{uuid.uuid4().hex[:8]}"
        queue = f"tq-{uuid.uuid4().hex}"
        old, new = "0.1.0-aaaa", "0.2.0-bbbb"

        def settings(build: str) -> Any:
            return worker_settings(
                task_queue=queue, worker_versioning=True, deployment_name=deployment, build_id=build
            )

        cli = Cli(client, queue, tmp_path)
        cli.env["RINGMASTER_DEPLOYMENT_NAME"] = deployment

        async def make_current(build: str) -> dict[str, Any]:
            async def attempt() -> tuple[int, dict[str, Any]]:
                return await cli.json("deployment", "current", build)

            # Temporal refuses a version none of whose workers has polled yet: retried until one has.
            _, done = await assert_eventually(attempt, lambda r: r[0] == 0, timeout=60, every=1)
            return done

        # Both workers share the fake clusters (one file), as two builds share the real ones.
        async with running_worker(client, tmp_path, settings=settings(old)) as first:
            assert (await make_current(old))["previousBuildId"] is None
            svc_pinned, svc_moving = unique_service("pinned"), unique_service("moving")
            pinned = await first.start(plan(svc_pinned, PAUSED, metrics=False), service=svc_pinned)
            moving = await first.start(plan(svc_moving, PAUSED, metrics=False), service=svc_moving)
            await _waiting(pinned)
            await _waiting(moving)
            for workflow_id in (pinned.id, cluster_workflow_id(svc_pinned, "v2", "internal", INTERNAL)):
                await _pin(client, workflow_id, deployment, old)

            async with running_worker(client, tmp_path, settings=settings(new)):
                assert (await make_current(new))["previousBuildId"] == old
                code, busy = await cli.json("deployment", "drained", old)
                assert code == 7, busy
                assert pinned.id in {r["workflowId"] for r in busy["openRuns"]}, busy
                assert moving.id not in {r["workflowId"] for r in busy["openRuns"]}, busy

                await _approve(moving)
                assert (await ended(moving)).phase == "succeeded"
                await _approve(pinned)
                assert (await ended(pinned)).phase == "succeeded"
                assert set(await _builds(client, pinned.id)) == {old}, "the pinned release stayed"
                moved = await _builds(client, moving.id)
                assert moved[0] == old and moved[-1] == new, moved

                async def drained() -> tuple[int, dict[str, Any]]:
                    return await cli.json("deployment", "drained", old)

                _, done = await assert_eventually(drained, lambda r: r[0] == 0, timeout=60, every=1)
                assert done["drained"] and done["openPinned"] == 0, done
