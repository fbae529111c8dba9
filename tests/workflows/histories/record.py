"""Record the histories the replay test checks: ``python -m tests.workflows.histories.record SET``.

Runs the main paths (promote, hold and resume, abort, rollback, approval through the lane; since
v4 a cluster unreachable for a while and a cancel mid-step; since v5 a reset run aborted; v6 has
every signal to another workflow sent from a task of its own, the ``shielded-signals`` patch; v7
has every request verified by the identity activity, the ``verified-identity`` patch, here by a
worker that takes identity on the client's word, which runs the same workflow code; v8 has every
control a release forwards to a cluster workflow sealed and verified again there, the
``sealed-orders`` patch; v9 has controls
verified and applied one at a time in arrival order, the ``controls-in-order`` patch, every release
reading and watching the freeze registry and every submission asking it, the ``freeze-holds`` and
``freeze-refuses-submissions`` patches, and a path of its own: a release held mid-canary by a freeze
and let go by the unfreeze, with the registry's history; v10 has two paths of their own: an ended
release undone by ``UndoWorkflow``, and a release under ``rollback: {mode: freeze}`` held by a
failed gate and resumed after the fix, and every ending stops earlier runs' cluster workflows where
it never reached, the ``stop-earlier-children`` patch, and awaits its prepare through a shield, the
``prepared-before-cancel`` patch, recorded where a cancel meets a prepare; v11 has cluster
workflows reporting only their milestones, the ``milestone-reports`` patch, a wave's cluster
workflows started together, ``wave-starts-together``, and analysis stretches that end themselves at
a known end (a timed pause, a bake), ``timed-stretches``; v12 has every run started with the
``baseline-2026-12`` patch, one marker standing for every patch before it (``workflows/_patches.py``),
and releases and cluster workflows that did not promote closing failed with their record as the
failure's detail, ``failed-outcomes``, and a hold reporting what holds it, ``hold-kinds-reported``)
on a
fresh dev server with an in-process worker and saves every workflow's history as JSON beside this
file, in the folder ``SET`` (e.g. ``v2``).
Never re-record an existing set: each set stands for the releases that were running when it was
recorded, and code changes must keep replaying all of them (use ``workflow.patched``). Record a new
set when the workflows gain new patches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from ringmaster.cli import status as view
from ringmaster.converter import data_converter
from tests.support import receiver, retries
from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    ScriptedMetrics,
    canary,
    plan,
    running_worker,
    small_rings,
    worker_settings,
)
from tests.workflows.test_lane import submit
from tests.workflows.test_safety import _reset, _task_after_prepare
from workflows import search
from workflows.freezes import FreezeRegistryWorkflow, registry_id
from workflows.models import (
    AbortRequest,
    ApproveRequest,
    FreezeRegistryState,
    FreezeRequest,
    HoldRequest,
    ResumeRequest,
    UnfreezeRequest,
)
from workflows.release import ReleaseWorkflow, cluster_workflow_id, release_id
from workflows.undo import UndoInput, UndoWorkflow, undo_id

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent


async def _closed(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until the workflow has closed, however: since v12 a release that did not succeed fails."""
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()


async def _live(handle: WorkflowHandle[Any, Any]) -> Any:
    """The release as ``ringmaster status`` shows it: running clusters read from their own workflows."""
    return await view.live_clusters(handle._client, await handle.query(ReleaseWorkflow.status))


async def _until(predicate, handle) -> None:  # type: ignore[no-untyped-def]
    await assert_eventually(
        lambda: _live(handle),
        predicate,
        timeout=30,
        every=0.1,
        what="the release state",
    )


async def _approvable(predicate, handle) -> None:  # type: ignore[no-untyped-def]
    """Wait on the release's own record: what ``approve --cluster`` acts on, which hears of a pause by
    the cluster's milestone report (the cluster's own status may say so a moment earlier)."""
    await assert_eventually(
        lambda: handle.query(ReleaseWorkflow.status), predicate, timeout=30, every=0.1, what="the record"
    )


OUT = HERE


async def _pending(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The activity types ``handle`` is running (none while the workflow does not exist yet)."""
    try:
        described = await handle.describe()
    except RPCError:
        return []
    return [a.activity_type.name for a in described.raw_description.pending_activities]


async def _save(client: Client, name: str, service: str, *extra: str) -> None:
    ids = [w.id async for w in client.list_workflows(f"RingmasterService = '{service}'")]
    ids.append(f"lane:{service}")
    ids.extend(extra)
    histories = []
    for wid in sorted(set(ids)):
        try:
            history = await client.get_workflow_handle(wid).fetch_history()
        except Exception:  # noqa: S112 - a path without a lane has no lane history
            continue
        histories.append({"workflowId": wid, "history": json.loads(history.to_json())})
    (OUT / f"{name}.json").write_text(json.dumps(histories, separators=(",", ":")))
    print(f"{name}: {len(histories)} histories")  # noqa: T201


async def main() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=search.ALL,
        data_converter=data_converter,
    )
    client = env.client
    with tempfile.TemporaryDirectory() as tmp:
        metrics = ScriptedMetrics(failing={"use1-prod"})
        # Since v13: the main paths notify a webhook and archive their audit record (``accountable``).
        hook = receiver.Receiver()
        await hook.start()
        accountable = worker_settings(
            archive_url=str(Path(tmp) / "archive"), webhooks=[{"name": "oncall", "url": hook.url("/hook")}]
        )
        async with running_worker(client, Path(tmp), metrics=metrics, settings=accountable) as h:
            promote = small_rings()[:2]
            handle = await h.start(plan("promote", promote), service="promote")
            await _closed(handle)
            await _save(client, "promote", "promote")

            handle = await h.start(plan("rollback", small_rings()), service="rollback")
            await _closed(handle)
            await _save(client, "rollback", "rollback")

            rings = [
                {
                    "name": "internal",
                    "clusters": ["euw1-internal"],
                    "strategy": canary(("w", 20), ("p", "3s")),
                }
            ]
            handle = await h.start(plan("hold", rings), service="hold")
            await _until(lambda s: s.clusters and s.clusters[0].state == "analyzing", handle)
            await handle.execute_update(ReleaseWorkflow.hold, HoldRequest(reason="incident", by="bob"))
            await handle.signal("resume-signal", ResumeRequest(by="alice"))
            await _closed(handle)
            await _save(client, "hold-resume", "hold")

            rings = [
                {
                    "name": "internal",
                    "clusters": ["euw1-internal"],
                    "strategy": canary(("w", 20), ("p", "1m")),
                }
            ]
            handle = await h.start(plan("abort", rings), service="abort")
            await _until(lambda s: s.clusters and s.clusters[0].state == "analyzing", handle)
            await handle.execute_update(
                ReleaseWorkflow.abort, AbortRequest(reason="bad dashboards", by="bob")
            )
            await _closed(handle)
            await _save(client, "abort", "abort")

            gated = [
                {"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}},
                {
                    "name": "beta",
                    "clusters": ["euc1-beta"],
                    "approval": {"required": True, "fourEyes": True},
                    "strategy": canary(("w", 50), ("p", None)),
                },
            ]
            result = await submit(h, "approval", "v2", gated)
            handle = client.get_workflow_handle(result.workflow_id)
            await _until(lambda s: s.phase == "awaiting-approval", handle)
            await handle.execute_update(ReleaseWorkflow.approve, ApproveRequest(ring="beta", by="bob"))
            await _approvable(
                lambda s: (
                    s.phase == "awaiting-approval"
                    and s.ring == "beta"
                    and any(c.state == "awaiting-approval" for c in s.clusters)
                ),
                handle,
            )
            await handle.execute_update(
                ReleaseWorkflow.approve, ApproveRequest(ring="beta", cluster="euc1-beta", by="bob")
            )
            await _closed(handle)
            await _save(client, "approval", "approval")

            # Since v4: a cluster API down past a step's retries holds the cluster as unreachable,
            # and the release goes on by itself once it answers again.
            with pytest.MonkeyPatch.context() as mp:
                retries.shrink(mp)
                rings = [
                    {
                        "name": "internal",
                        "clusters": ["euw1-internal"],
                        "strategy": canary(("w", 20), ("p", None)),
                    }
                ]
                handle = await h.start(plan("unreachable", rings), service="unreachable")
                await _approvable(lambda s: s.clusters and s.clusters[0].state == "awaiting-approval", handle)
                h.clusters.configure("euw1-internal", unreachable=True)
                await handle.execute_update(
                    ReleaseWorkflow.approve,
                    ApproveRequest(ring="internal", cluster="euw1-internal", by="bob"),
                )
                await _until(lambda s: s.phase == "holding", handle)
                h.clusters.configure("euw1-internal", unreachable=False)
                await _closed(handle)
                await _save(client, "unreachable", "unreachable")

            # Since v4: a cluster workflow cancelled while a step is writing to the cluster waits for the step
            # to end before the rollback starts.
            h.clusters.configure("euw1-internal", apply_delay=3)
            handle = await h.start(plan("cancel", rings), service="cancel")
            child = client.get_workflow_handle(
                cluster_workflow_id("cancel", "v2", "internal", "euw1-internal")
            )
            await assert_eventually(
                lambda: _pending(child),
                lambda pending: "apply_step" in pending,
                what="the first step to be writing to the cluster",
            )
            await child.cancel()
            await _closed(handle)
            await _save(client, "cancel", "cancel")

            # Since v5: a reset run, aborted back in ring one, restores the cluster the old run
            # promoted and it never reached; every promotion is checked once more.
            rings = [
                {
                    "name": "internal",
                    "clusters": ["euw1-internal"],
                    "strategy": canary(("w", 20), ("p", None)),
                },
                {"name": "beta", "clusters": ["euc1-beta"], "strategy": {"rolling": {}}},
                # Not use1-prod, whose gate fails at once: the reset must find this cluster waiting.
                {"name": "prod", "clusters": ["euw1-prod"], "strategy": canary(("w", 20), ("p", None))},
            ]
            handle = await h.start(plan("reset", rings), service="reset")
            await _approvable(lambda s: s.clusters and s.clusters[0].state == "awaiting-approval", handle)
            await handle.execute_update(
                ReleaseWorkflow.approve, ApproveRequest(ring="internal", cluster="euw1-internal", by="bob")
            )
            await _approvable(lambda s: s.clusters[2].state == "awaiting-approval", handle)
            run = await _reset(client, handle, await _task_after_prepare(handle))
            new = client.get_workflow_handle(handle.id, run_id=run)
            await _approvable(
                lambda s: s.clusters[0].state == "awaiting-approval" and s.phase != "holding", new
            )
            await new.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="incident", by="bob"))
            await _closed(new)
            await _save(client, "reset", "reset")

            # Since v9: a freeze holds a release mid-canary; the unfreeze lets it go on.
            rings = [
                {
                    "name": "internal",
                    "clusters": ["euw1-internal"],
                    "strategy": canary(("w", 20), ("p", "3s"), ("w", 50)),
                }
            ]
            handle = await h.start(plan("freeze", rings, metrics=False), service="freeze")
            await _until(lambda s: s.clusters and s.clusters[0].weight == 20, handle)
            registry = registry_id(h.task_queue)
            start = WithStartWorkflowOperation(
                FreezeRegistryWorkflow.run,
                FreezeRegistryState(),
                id=registry,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                task_queue=h.task_queue,
            )
            await client.execute_update_with_start_workflow(
                FreezeRegistryWorkflow.freeze,
                FreezeRequest(scope="service", target="freeze", reason="incident", by="sre"),
                start_workflow_operation=start,
            )
            await _until(lambda s: s.phase == "holding", handle)
            await client.get_workflow_handle(registry).execute_update(
                FreezeRegistryWorkflow.unfreeze, UnfreezeRequest(scope="service", target="freeze", by="sre")
            )
            await _closed(handle)
            await _save(client, "freeze", "freeze", registry)

            # Since v10: an ended release undone.
            handle = await h.start(plan("undo", promote), service="undo")
            await _closed(handle)
            await client.execute_workflow(
                UndoWorkflow.run,
                UndoInput(release_workflow_id=release_id("undo", "v2"), by="bob", reason="bad after an hour"),
                id=undo_id("undo", "v2"),
                task_queue=h.task_queue,
            )
            await _save(client, "undo", "undo", undo_id("undo", "v2"))

            # Since v10: a release that may not roll back, held by a failed gate, resumed after the fix.
            rings = [
                {"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}},
                {"name": "broad", "clusters": ["use1-prod"], "strategy": canary(("w", 25), ("p", "2s"))},
            ]
            handle = await h.start(plan("frozen", rings, mode="freeze"), service="frozen")
            await _until(lambda s: s.phase == "holding" and "rollback.mode: freeze" in s.hold_reason, handle)
            metrics.failing.clear()
            await handle.execute_update(ReleaseWorkflow.resume, ResumeRequest(by="bob"))
            await _closed(handle)
            await _save(client, "frozen", "frozen")

        # Since v10: a reset run cancelled in its first workflow task (no worker polls in between)
        # still aborts with its schedule and stops the old run's child parked mid-canary.
        settings = worker_settings()
        rings = [
            {"name": "internal", "clusters": ["euw1-internal"], "strategy": canary(("w", 20), ("p", None))}
        ]
        async with running_worker(client, Path(tmp), settings=settings) as h:
            handle = await h.start(plan("first-task", rings), service="first-task")
            await _approvable(lambda s: s.clusters and s.clusters[0].state == "awaiting-approval", handle)
        run = await _reset(client, handle, await _task_after_prepare(handle))
        new = client.get_workflow_handle(handle.id, run_id=run)
        await new.cancel()
        async with running_worker(client, Path(tmp), settings=settings):
            await _closed(new)
        await _save(client, "reset-cancel", "first-task")
        await hook.stop()
    await env.shutdown()


if __name__ == "__main__":
    OUT = HERE / sys.argv[1]
    if OUT.exists():
        sys.exit(f"{OUT} exists: saved sets are never re-recorded")
    OUT.mkdir()
    asyncio.run(main())
