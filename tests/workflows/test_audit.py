"""The audit record of releases on the Temporal dev server: built from history, archived once at the
end of each run, and read back from the archive when the history is gone.

Clusters are the file-backed fakes (``tests/support/fakes.py``) and the gate metrics scripted, so a
release takes seconds; the record is checked for what an auditor asks: which rules and gates decided,
on which data, who did what, and where each cluster was left.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities import _history, archiving, build
from activities import audit as audits
from activities.archive import DirectoryArchive
from activities.audit import AuditRecord
from policies import residency
from tests.cli.test_release_cli import Cli
from tests.support import receiver
from tests.support.fakes import SEED_VERSION
from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    ScriptedMetrics,
    cluster_state,
    ended,
    plan,
    running_worker,
    small_rings,
    unique_service,
    worker_settings,
)
from workflows.models import AbortRequest, ApproveRequest, HoldRequest, ReleaseStatus, ResumeRequest
from workflows.release import ReleaseWorkflow

pytestmark = pytest.mark.timeout(120)


def _archived(archive: Path, status: ReleaseStatus, run_id: str) -> AuditRecord:
    key = archiving.key(status.service, status.version, run_id)
    assert status.archived == f"{DirectoryArchive(archive).where}/{key}"
    return AuditRecord.model_validate_json((archive / key).read_bytes())


async def _from_history(client: Client, workflow_id: str) -> AuditRecord:
    histories = await _history.read_release(client, workflow_id)
    return audits.build(histories, histories.release.result)


def _same_story(a: AuditRecord, b: AuditRecord) -> None:
    """The archived record and the one built from history tell the same story."""
    for part in (
        "release",
        "phase",
        "reason",
        "submitter",
        "rings",
        "residency",
        "gates",
        "actions",
        "clusters",
    ):
        assert getattr(a, part) == getattr(b, part), part
    assert [e.text for e in a.timeline] == [e.text for e in b.timeline]


class TestPromoted:
    async def test_every_decision_gate_and_cluster_is_in_the_record_from_history_and_archive(
        self, client: Client, tmp_path: Path
    ) -> None:
        """A release through three rings: static and live residency decisions of every cluster with
        the rule set's digest and the worker build, every gate with its PromQL and measurements, each
        cluster's image before and after; the archive holds the same record as history."""
        archive = tmp_path / "archive"
        settings = worker_settings(archive_url=str(archive))
        async with running_worker(client, tmp_path, settings=settings) as h:
            svc = unique_service("audit")
            handle = await h.submit(plan(svc, small_rings()), service=svc)
            status = await ended(handle)
            run_id = (await handle.describe()).run_id
        assert status.phase == "succeeded", status.reason
        stored = _archived(archive, status, run_id)
        history = await _from_history(client, handle.id)
        _same_story(stored, history)

        clusters = ["euw1-internal", "euc1-beta", "use1-prod"]
        assert [r.name for r in stored.rings] == ["internal", "beta", "broad"]
        assert [w for r in stored.rings for w in r.waves] == [[c] for c in clusters]
        for cluster in clusters:
            decided = [d for d in stored.residency if d.cluster == cluster]
            assert {d.stage for d in decided} == {"static", "live"}, cluster
            assert all(
                d.verdict == "allow" and d.ruleset_digest == residency.policy_digest() for d in decided
            )
            assert all(d.worker == build.describe() for d in decided)
        gated = {g.cluster for g in stored.gates}
        assert gated == set(clusters)
        for gate in stored.gates:
            assert gate.verdict.status == "passed" and gate.checks, gate
            rendered = {q.metric: q.promql for q in gate.queries}
            assert rendered == {
                "success-rate": f'sum(rate(ok{{cluster="{gate.cluster}"}}[1s]))',
                "p99": f'max(p99{{cluster="{gate.cluster}"}})',
            }
        ends = {c.cluster: c for c in stored.clusters}
        for cluster in clusters:
            assert ends[cluster].state == "promoted"
            assert ends[cluster].image_before == f"registry.eu.example.com/api:{SEED_VERSION}"
            assert ends[cluster].image_after == f"r/{svc}:v2"
        texts = [e.text for e in stored.timeline]
        assert texts[0] == f"{svc}:v2 submitted by alice" and texts[-1].startswith("release succeeded")
        assert sum("cluster workflow" in t and t.endswith("ended promoted") for t in texts) == 3


class TestRolledBack:
    async def test_the_failed_gate_and_the_restored_image_are_recorded(
        self, client: Client, tmp_path: Path
    ) -> None:
        """A gate failing in the second ring: its metric, value and bound, the measurements that failed
        it and the rollback of both clusters to the image each ran before."""
        archive = tmp_path / "archive"
        settings = worker_settings(archive_url=str(archive))
        metrics = ScriptedMetrics(failing={"euc1-beta"})
        async with running_worker(client, tmp_path, settings=settings, metrics=metrics) as h:
            svc = unique_service("audit")
            handle = await h.submit(plan(svc, small_rings()), service=svc)
            status = await ended(handle)
            run_id = (await handle.describe()).run_id
        assert status.phase == "rolled-back", status.reason
        stored = _archived(archive, status, run_id)
        _same_story(stored, await _from_history(client, handle.id))
        failed = [g for g in stored.gates if g.verdict.status == "failed"]
        assert [g.cluster for g in failed] == ["euc1-beta"]
        assert failed[0].verdict.metric == "success-rate" and failed[0].verdict.bound == ">= 99"
        assert any(m.value == 90.0 for c in failed[0].checks for m in c.measurements)
        ends = {c.cluster: c for c in stored.clusters}
        before = f"registry.eu.example.com/api:{SEED_VERSION}"
        assert (ends["euw1-internal"].state, ends["euw1-internal"].image_after) == ("rolled-back", before)
        assert (ends["euc1-beta"].state, ends["euc1-beta"].image_after) == ("rolled-back", before)
        assert ends["use1-prod"].state == "pending" and ends["use1-prod"].image_after == ""
        assert any(e.what == "rollback" and e.cluster == "euw1-internal" for e in stored.timeline)


class TestAbortedAndArchiveOnly:
    @pytest.mark.timeout(240)
    async def test_operator_actions_are_recorded_and_audit_reads_the_archive_once_history_is_gone(
        self, client: Client, tmp_path: Path
    ) -> None:
        """A hold by alice and an abort by bob are in the record with their method and reason; with
        the release's histories deleted, ``ringmaster audit`` reads the archive and says so."""
        archive = tmp_path / "archive"
        settings = worker_settings(archive_url=str(archive))
        async with running_worker(client, tmp_path, settings=settings) as h:
            svc = unique_service("audit")
            handle = await h.submit(plan(svc, small_rings(pause="1h")), service=svc)

            await assert_eventually(
                lambda: cluster_state(handle, "euw1-internal"),
                lambda c: c is not None and "pause" in c.step,
                timeout=30,
                what="the canary paused",
            )
            await handle.execute_update(
                ReleaseWorkflow.hold, HoldRequest(reason="looking at errors", by="alice")
            )
            await handle.execute_update(
                ReleaseWorkflow.abort, AbortRequest(reason="customer reports", by="bob")
            )
            record = await ended(handle)
            run_id = (await handle.describe()).run_id
            cli = Cli(client, h.task_queue, tmp_path)
            env = {**cli.env, "RINGMASTER_ARCHIVE_URL": str(archive)}
            code, out, _ = await cli.run("audit", "--output", "json", f"{svc}:v2", env=env)
            assert code == 0, out
            from_history = json.loads(out)
            assert from_history["source"].startswith(f"history (workflow {handle.id}, run {run_id}")

            stored = _archived(archive, record, run_id)
            kinds = [(a.kind, a.by, a.method, a.reason) for a in stored.actions if a.recorded_by == "release"]
            assert ("hold", "alice", "trusted", "looking at errors") in kinds
            assert ("abort", "bob", "trusted", "customer reports") in kinds
            assert record.phase == "aborted" and stored.phase == "aborted"

            histories = await _history.read_release(client, handle.id)
            for child in histories.children.values():
                await _delete(client, child.workflow_id, child.run_id)
            await _delete(client, handle.id, run_id)
            # The dev server deletes through its task queues: about 20 s after the request.
            await assert_eventually(
                lambda: _gone(client, handle.id), timeout=90, what="the release's history deleted"
            )
            code, out, _ = await cli.run("audit", "--output", "json", f"{svc}:v2", env=env)
            assert code == 0, out
            from_archive: dict[str, Any] = json.loads(out)
            key = archiving.key(svc, "v2", run_id)
            assert from_archive["source"] == f"archive ({DirectoryArchive(archive).where}/{key})"
            assert from_archive["record"] == json.loads(stored.model_dump_json())

            code, out, _ = await cli.run("audit", f"{svc}:v2", env=env)
            assert code == 0 and out.startswith(f"# Audit: {svc}:v2\n\nSource: archive (")
            assert "| abort" in out and "customer reports" in out

            code, out, _ = await cli.run("audit", "--output", "json", f"{svc}:v2", env=cli.env)
            assert code == 2 and "no archive to read" in json.loads(out)["error"]


async def _delete(client: Client, workflow_id: str, run_id: str) -> None:
    """Delete a run's history, as Temporal's retention does."""
    await client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        )
    )


async def _gone(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return True
    return False


class TestArchiveOnce:
    async def test_a_second_archiving_of_the_same_run_leaves_the_first_record_as_it_was(
        self, client: Client, tmp_path: Path
    ) -> None:
        """The archive activity run again for an archived run reports it archived and rewrites nothing."""
        archive = tmp_path / "archive"
        settings = worker_settings(archive_url=str(archive))
        async with running_worker(client, tmp_path, settings=settings) as h:
            svc = unique_service("audit")
            handle = await h.submit(plan(svc, small_rings(), metrics=False), service=svc)
            status = await ended(handle)
            run_id = (await handle.describe()).run_id
            key = archiving.key(svc, "v2", run_id)
            first = (archive / key).read_bytes()
            activities = archiving.ArchiveActivities(client, DirectoryArchive(archive))
            again = await ActivityEnvironment().run(
                activities.archive_release,
                archiving.ArchiveInput(workflow_id=handle.id, run_id=run_id, service=svc, version="v2"),
            )
        assert status.phase == "succeeded"
        assert (again.key, again.written) == (key, False)
        assert (archive / key).read_bytes() == first


SECRET_PATH = "/hooks/T0KEN-5ECRET-PATH"

GATED = [
    {"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}},
    {
        "name": "beta",
        "clusters": ["euc1-beta"],
        "approval": {"required": True},
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "2s"}}]}},
    },
]


class TestNotifications:
    async def test_people_hear_of_approvals_holds_and_the_end_and_every_delivery_is_audited(
        self, client: Client, tmp_path: Path
    ) -> None:
        """An approval awaited, a hold and the rollback reach every webhook that wants them (JSON and
        Slack); a receiver answering 500 then 200 gets each on its second attempt, one that is down is
        given up on; every delivery is in the audit record, and no webhook URL is."""
        async with receiver.running() as ok, receiver.running([500], then=200) as flaky:
            down = receiver.Receiver()
            await down.start()
            await down.stop()  # a closed port: connection refused
            webhooks = [
                {"name": "oncall", "url": ok.url(SECRET_PATH)},
                {"name": "chat", "url": flaky.url(SECRET_PATH), "format": "slack", "events": ["rolled-back"]},
                {"name": "pager", "url": down.url(SECRET_PATH), "give_up_after_seconds": 1.5},
            ]
            archive = tmp_path / "archive"
            settings = worker_settings(archive_url=str(archive), webhooks=webhooks)
            metrics = ScriptedMetrics(failing={"euc1-beta"})
            async with running_worker(client, tmp_path, settings=settings, metrics=metrics) as h:
                svc = unique_service("notify")
                handle = await h.submit(plan(svc, GATED), service=svc)

                def kinds() -> list[str]:
                    return [r.json()["kind"] for r in ok.requests]

                await assert_eventually(lambda: _async(kinds()), lambda k: k == ["awaiting-approval"])
                await handle.execute_update(
                    ReleaseWorkflow.hold, HoldRequest(reason="checking dashboards", by="alice")
                )
                await assert_eventually(lambda: _async(kinds()), lambda k: k[-1:] == ["holding"])
                await handle.execute_update(ReleaseWorkflow.resume, ResumeRequest(by="alice"))
                await assert_eventually(lambda: _async(kinds()), lambda k: len(k) == 3)
                await handle.execute_update(ReleaseWorkflow.approve, ApproveRequest(ring="beta", by="carol"))
                status = await ended(handle)
                run_id = (await handle.describe()).run_id

        assert status.phase == "rolled-back", status.reason
        assert kinds() == ["awaiting-approval", "holding", "awaiting-approval", "rolled-back"]
        first, held, _, rolled = (r.json() for r in ok.requests)
        assert first["reason"] == "approval of ring beta" and first["release"] == f"{svc}:v2"
        assert "checking dashboards" in held["reason"]
        assert rolled["gate"] == {
            "metric": "success-rate",
            "status": "failed",
            "value": 90.0,
            "bound": ">= 99",
            "cluster": "euc1-beta",
        }
        assert "success-rate = 90, outside >= 99 in euc1-beta" in rolled["text"]
        # Slack's text escapes &, < and > (its mrkdwn), and says the same.
        assert html.unescape(flaky.requests[0].json()["text"]) == rolled["text"]
        assert "&gt;= 99" in flaky.requests[0].json()["text"]
        assert len(flaky.requests) == 2 and "blocks" in flaky.requests[-1].json()

        stored = _archived(archive, status, run_id)
        by_hook: dict[str, list[dict[str, Any]]] = {}
        for d in stored.deliveries:
            by_hook.setdefault(d["webhook"], []).append(d)
        assert [(d["kind"], d["outcome"], d["attempts"]) for d in by_hook["oncall"]] == [
            ("awaiting-approval", "delivered", 1),
            ("holding", "delivered", 1),
            ("awaiting-approval", "delivered", 1),
            ("rolled-back", "delivered", 1),
        ]
        assert [(d["kind"], d["outcome"], d["attempts"]) for d in by_hook["chat"]] == [
            ("rolled-back", "delivered", 2)
        ]
        assert {d["outcome"] for d in by_hook["pager"]} == {"gave-up"}
        assert all(d["error"] == "connection refused" for d in by_hook["pager"])
        text = (archive / archiving.key(svc, "v2", run_id)).read_text()
        assert "T0KEN-5ECRET" not in text


async def _async(value: Any) -> Any:
    return value
