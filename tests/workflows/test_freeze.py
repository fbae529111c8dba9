"""Stop the line on a real worker: freezes hold releases, refuse submissions, and lift only by unfreeze."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy

from activities.freeze import TemporalFreezes
from activities.identity import IdentityActivities
from policies.authz import AuthorizationPolicy
from tests.support.identity import make_office
from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    Harness,
    ScriptedMetrics,
    canary,
    ended,
    plan,
    running_worker,
    submit_to_lane,
    unique_service,
    worker_settings,
)
from workflows import search
from workflows.freezes import FreezeRegistryWorkflow, registry_id
from workflows.models import (
    FreezeRegistryState,
    FreezeRequest,
    FreezeResult,
    HoldRequest,
    ReleaseInput,
    ReleaseStatus,
    ResumeRequest,
    UnfreezeRequest,
)
from workflows.release import ReleaseWorkflow

PAUSE = 3.0
"""Seconds a canary pauses at 20%: the freeze lands within it."""


def _ring(cluster: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "internal",
            "clusters": [cluster],
            "strategy": canary(("w", 20), ("p", f"{PAUSE:.0f}s"), ("w", 50), ("p", "1s")),
        }
    ]


async def _registry(h: Harness, update: Any, req: FreezeRequest | UnfreezeRequest) -> FreezeResult:
    """Send a freeze or unfreeze exactly as the CLI does: update-with-start of the registry."""
    result: FreezeResult = await h.client.execute_update_with_start_workflow(
        update,
        req,
        start_workflow_operation=WithStartWorkflowOperation(
            FreezeRegistryWorkflow.run,
            FreezeRegistryState(),
            id=registry_id(h.task_queue),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=h.task_queue,
        ),
    )
    return result


async def _status(handle: WorkflowHandle[Any, Any]) -> ReleaseStatus:
    return await handle.query(ReleaseWorkflow.status)


async def _frozen(handle: WorkflowHandle[Any, Any], reason: str) -> ReleaseStatus:
    return await assert_eventually(
        lambda: _status(handle), lambda s: s.held and reason in s.hold_reason and s.phase == "holding"
    )


def _input(svc: str, cluster: str) -> ReleaseInput:
    return ReleaseInput(
        service=svc,
        version="v2",
        image=f"registry.eu.example.com/{svc}:v2",
        plan_text=plan(svc, _ring(cluster), metrics=False),
        submitted_by="alice",
    )


@pytest.fixture
def settings() -> Any:
    return worker_settings(freeze_poll_seconds=0.3)


class TestStopTheLine:
    async def test_a_freeze_holds_two_services_mid_flight_until_unfrozen(
        self, client: Client, tmp_path: Any, settings: Any
    ) -> None:
        """Both canaries stay at 20% while frozen, a new submission names the freeze, resume lifts nothing,
        and unfreeze lets both finish."""
        async with running_worker(client, tmp_path, settings=settings) as h:
            first, second = unique_service("pay"), unique_service("cart")
            a = await h.start(plan(first, _ring("euw1-internal"), metrics=False), service=first)
            b = await h.start(plan(second, _ring("euc1-beta"), metrics=False), service=second)
            await assert_eventually(
                lambda: asyncio.sleep(0, h.clusters.read()),
                lambda c: c["euw1-internal"]["weight"] == 20 and c["euc1-beta"]["weight"] == 20,
            )
            result = await _registry(
                h, FreezeRegistryWorkflow.freeze, FreezeRequest(scope="all", reason="incident 42", by="sre")
            )
            assert "frozen (all): incident 42 (by sre" in result.message
            assert "(2 running releases told)" in result.message
            for handle in (a, b):
                status = await _frozen(handle, "incident 42")
                assert "by sre" in status.hold_reason
            # The UI shows it too: the phase search attribute and the current details.
            described = await a.describe()
            assert described.typed_search_attributes.get(search.PHASE) == "holding"
            metadata = await a.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
            assert "Held: frozen (all): incident 42 (by sre" in metadata.current_details

            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await submit_to_lane(h.client, h.task_queue, _input(unique_service("new"), "use1-prod"))
            assert "frozen (all): incident 42" in str(refused.value.cause)

            with pytest.raises(WorkflowUpdateFailedError) as resumed:
                await a.execute_update(ReleaseWorkflow.resume, ResumeRequest(by="bob"))
            assert "only ringmaster unfreeze lifts a freeze" in str(resumed.value.cause)
            await a.execute_update(ReleaseWorkflow.hold, HoldRequest(reason="looking", by="bob"))
            answer = await a.execute_update(ReleaseWorkflow.resume, ResumeRequest(by="bob"))
            assert "still frozen" in answer.message
            await _frozen(a, "incident 42")

            # An absence cannot be awaited: past the pause, a step would have happened by now.
            await asyncio.sleep(PAUSE + 1)
            clusters = h.clusters.read()
            assert clusters["euw1-internal"]["weight"] == 20, "the canary stays at its weight"
            assert clusters["euc1-beta"]["weight"] == 20

            await _registry(h, FreezeRegistryWorkflow.unfreeze, UnfreezeRequest(scope="all", by="sre"))
            for handle in (a, b):
                final = await ended(handle)
                assert final.phase == "succeeded", final.reason
                kinds = [(x.kind, x.by) for x in final.actions if x.kind in ("freeze", "unfreeze")]
                assert kinds == [("freeze", "sre"), ("unfreeze", "ringmaster")]
            assert h.versions()["euw1-internal"] == "v2"

    async def test_a_failing_gate_during_a_freeze_still_rolls_back(
        self, client: Client, tmp_path: Any, settings: Any
    ) -> None:
        """A freeze is a hold, not a shield: the gates keep judging and a failure rolls the cluster back."""
        metrics = ScriptedMetrics()
        async with running_worker(client, tmp_path, settings=settings, metrics=metrics) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, _ring("euw1-internal")), service=svc)
            await assert_eventually(
                lambda: asyncio.sleep(0, h.clusters.read()), lambda c: c["euw1-internal"]["weight"] == 20
            )
            await _registry(
                h,
                FreezeRegistryWorkflow.freeze,
                FreezeRequest(scope="service", target=svc, reason="db", by="sre"),
            )
            await _frozen(handle, "db")
            metrics.failing.add("euw1-internal")
            final = await ended(handle)
            assert final.phase == "rolled-back", final.reason
            assert h.versions()["euw1-internal"] == "v1"

    async def test_region_and_service_freezes_hold_only_their_scope(
        self, client: Client, tmp_path: Any, settings: Any
    ) -> None:
        """A region's freeze holds a release deploying there before its first step and leaves another
        region's release alone; a service's freeze refuses that service's submissions only."""
        async with running_worker(client, tmp_path, settings=settings) as h:
            await _registry(
                h,
                FreezeRegistryWorkflow.freeze,
                FreezeRequest(scope="region", target="eu-central-1", reason="dc move", by="sre"),
            )
            frozen_svc = unique_service("frozen")
            await _registry(
                h,
                FreezeRegistryWorkflow.freeze,
                FreezeRequest(scope="service", target=frozen_svc, reason="audit", by="sre"),
            )
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await submit_to_lane(h.client, h.task_queue, _input(frozen_svc, "euw1-internal"))
            assert f"frozen (service:{frozen_svc}): audit" in str(refused.value.cause)

            held_svc, free_svc = unique_service("eu"), unique_service("west")
            held = await submit_to_lane(h.client, h.task_queue, _input(held_svc, "euc1-beta"))
            free = await submit_to_lane(h.client, h.task_queue, _input(free_svc, "euw1-internal"))
            held_handle = h.client.get_workflow_handle_for(ReleaseWorkflow.run, held.workflow_id)
            await _frozen(held_handle, "frozen (region:eu-central-1): dc move")
            final = await ended(h.client.get_workflow_handle(free.workflow_id))
            assert final.phase == "succeeded"
            assert h.clusters.read()["euc1-beta"]["version"] == "v1", "nothing deployed in the frozen region"

            await _registry(
                h,
                FreezeRegistryWorkflow.unfreeze,
                UnfreezeRequest(scope="region", target="eu-central-1", by="sre"),
            )
            final = await ended(held_handle)
            assert final.phase == "succeeded"

    async def test_the_registry_refuses_a_second_freeze_of_one_scope_and_an_unfreeze_of_none(
        self, client: Client, tmp_path: Any, settings: Any
    ) -> None:
        """One freeze per scope, and unfreeze names what is frozen when it is asked to lift something else."""
        async with running_worker(client, tmp_path, settings=settings) as h:
            await _registry(
                h, FreezeRegistryWorkflow.freeze, FreezeRequest(scope="all", reason="x", by="sre")
            )
            with pytest.raises(WorkflowUpdateFailedError) as again:
                await _registry(
                    h, FreezeRegistryWorkflow.freeze, FreezeRequest(scope="all", reason="y", by="sre")
                )
            assert "already frozen (all): x" in str(again.value.cause)
            with pytest.raises(WorkflowUpdateFailedError) as none:
                await _registry(
                    h,
                    FreezeRegistryWorkflow.unfreeze,
                    UnfreezeRequest(scope="service", target="api", by="sre"),
                )
            assert "service:api is not frozen (frozen: all)" in str(none.value.cause)
            state = await h.client.get_workflow_handle(registry_id(h.task_queue)).query(
                FreezeRegistryWorkflow.state
            )
            assert [(e.kind, e.key, e.by) for e in state.log] == [("freeze", "all", "sre")]


FREEZERS = AuthorizationPolicy.model_validate(
    {"rules": [{"name": "alice-stops-the-line", "principals": ["alice@example.com"], "actions": ["freeze"]}]}
)


class TestWhoFreezes:
    """freeze and unfreeze are controls: verified, authorized and recorded like every other."""

    async def test_a_freeze_is_recorded_with_its_verified_principal_and_needs_its_permission(
        self, client: Client, tmp_path: Any
    ) -> None:
        """alice's signed freeze is recorded as alice (ssh); an unsigned one, one signed for another
        scope, and bob's unfreeze the policy does not allow change nothing."""
        office = make_office(tmp_path / "keys")
        acts = IdentityActivities(office.policy(), secrets.token_bytes(32), authorization=FREEZERS)
        async with running_worker(client, tmp_path, identity=acts) as h:
            wid = registry_id(h.task_queue)
            with pytest.raises(WorkflowUpdateFailedError) as unsigned:
                await _registry(
                    h, FreezeRegistryWorkflow.freeze, FreezeRequest(scope="all", reason="x", by="alice")
                )
            assert "freeze refused" in str(unsigned.value.cause)

            misdirected = office.alice.sign("freeze", wid, cluster="service:api", reason="x")
            with pytest.raises(WorkflowUpdateFailedError) as elsewhere:
                await _registry(
                    h,
                    FreezeRegistryWorkflow.freeze,
                    FreezeRequest(scope="all", reason="x", proof=misdirected),
                )
            assert "freeze refused" in str(elsewhere.value.cause)

            proof = office.alice.sign("freeze", wid, cluster="all", reason="INC-7")
            result = await _registry(
                h, FreezeRegistryWorkflow.freeze, FreezeRequest(scope="all", reason="INC-7", proof=proof)
            )
            assert [(f.by, f.method) for f in result.freezes] == [("alice@example.com", "ssh")]

            bobs = office.bob.sign("unfreeze", wid, cluster="all")
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await _registry(h, FreezeRegistryWorkflow.unfreeze, UnfreezeRequest(scope="all", proof=bobs))
            assert "not authorized" in str(refused.value.cause)
            state = await h.client.get_workflow_handle(wid).query(FreezeRegistryWorkflow.state)
            assert [f.key for f in state.freezes] == ["all"], "a refused unfreeze lifts nothing"
            assert [(e.kind, e.by) for e in state.log] == [("freeze", "alice@example.com")]


class TestCancelWhileReadingFreezes:
    async def test_a_cancel_while_the_release_reads_the_freezes_between_rings_rolls_back(
        self, client, tmp_path, monkeypatch
    ):
        """Cancelled through Temporal while it awaits the freeze read before a ring (outside any
        cluster), the release ends aborted with the earlier ring rolled back, never CANCELED with
        that ring left on the new version."""
        harness: list[Harness] = []
        reading, cancelled = asyncio.Event(), asyncio.Event()
        original = TemporalFreezes.freezes

        async def slow_once_ring_one_promoted(self: TemporalFreezes) -> list[Any]:
            if harness and harness[0].versions()["euw1-internal"] == "v2":
                reading.set()  # the read before ring 2: it lasts until the cancellation ends it
                await asyncio.wait_for(cancelled.wait(), timeout=60)
            return await original(self)

        monkeypatch.setattr(TemporalFreezes, "freezes", slow_once_ring_one_promoted)
        async with running_worker(client, tmp_path) as h:
            harness.append(h)
            svc = unique_service()
            rings = [
                {"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}},
                {"name": "broad", "clusters": ["use1-prod"], "strategy": {"rolling": {}}},
            ]
            handle = await h.start(plan(svc, rings, metrics=False), service=svc)
            await asyncio.wait_for(reading.wait(), timeout=60)
            await handle.cancel()
            try:
                result = await ended(handle)
            finally:
                cancelled.set()  # the activity never heartbeats: it learns nothing of the cancel
            assert result.phase == "aborted", result.reason
            assert h.versions()["euw1-internal"] == "v1"
            assert not h.clusters.read()["use1-prod"]["ops"], "the second ring never started"
