"""``ringmaster list`` as people and CI run it, on real releases in the Temporal dev server.

Visibility is eventually consistent, so each listing is awaited until it shows what the releases
did; every listing is narrowed by names unique to the test, so other tests' releases never count.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from ringmaster.cli import _query
from tests.cli.test_release_cli import FAST, GATED, Cli
from tests.support.waiting import assert_eventually
from tests.workflows.support import ended, plan, running_worker, submit_to_lane, unique_service
from workflows import search
from workflows.models import ReleaseInput
from workflows.release import ReleaseWorkflow

FIELDS = {
    "release",
    "service",
    "version",
    "workflowId",
    "runId",
    "phase",
    "ring",
    "submitter",
    "submittedBy",
    "image",
    "clusters",
    "status",
    "startedAt",
    "endedAt",
    "durationSeconds",
}


def _release(svc: str, rings: list[dict[str, Any]], submitter: str) -> ReleaseInput:
    return ReleaseInput(
        service=svc,
        version="v1",
        image=f"r/{svc}:v1",
        plan_text=plan(svc, rings, metrics=False),
        submitted_by=submitter,
    )


async def _listed(cli: Cli, *args: str) -> list[str]:
    code, found = await cli.json("list", *args)
    assert code == 0, found
    return [r["release"] for r in found]  # type: ignore[index]


class TestListFilters:
    async def test_each_filter_lists_exactly_the_releases_it_names(self, client, tmp_path):
        """A succeeded, an aborted and a waiting release of three services: service, phase, ring,
        cluster, submitter (quotes included), since and limit each select exactly the right ones,
        newest first, from visibility alone; the JSON has its documented fields."""
        tag = uuid.uuid4().hex[:8]
        alice, obrien = f"alice-{tag}", f"o'brien-{tag}"
        async with running_worker(client, tmp_path) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            done, stopped, waiting = unique_service("done"), unique_service("stopped"), unique_service("wait")

            ok = await submit_to_lane(client, h.task_queue, _release(done, FAST, alice))
            await ended(client.get_workflow_handle(ok.workflow_id))
            for svc, who in ((stopped, alice), (waiting, obrien)):
                result = await submit_to_lane(client, h.task_queue, _release(svc, GATED, who))
                await assert_eventually(
                    lambda wid=result.workflow_id: client.get_workflow_handle(wid).query(
                        ReleaseWorkflow.status
                    ),
                    lambda s: s.phase == "awaiting-approval",
                )
            assert (await cli.json("abort", f"{stopped}:v1", "--reason", "enough"))[0] == 0
            final = await ended(client.get_workflow_handle(f"release:{stopped}:v1"))
            assert final.phase == "aborted"

            async def expect(expected: list[str], *args: str) -> None:
                await assert_eventually(
                    lambda: _listed(cli, *args), lambda got: got == expected, what=" ".join(args)
                )

            await expect([f"{done}:v1"], "--service", done)
            await expect([f"{stopped}:v1", f"{done}:v1"], "--submitter", alice)
            await expect([f"{waiting}:v1"], "--submitter", obrien)
            await expect([f"{stopped}:v1"], "--submitter", alice, "--limit", "1")
            await expect([f"{stopped}:v1"], "--submitter", alice, "--phase", "aborted")
            await expect(
                [f"{stopped}:v1", f"{done}:v1"],
                "--submitter",
                alice,
                "--phase",
                "aborted",
                "--phase",
                "succeeded",
            )
            await expect([], "--service", stopped, "--phase", "succeeded")
            await expect([f"{waiting}:v1"], "--service", waiting, "--ring", "beta")
            await expect([], "--service", waiting, "--ring", "internal")
            await expect([f"{done}:v1"], "--service", done, "--cluster", "euw1-internal")
            await expect([], "--service", done, "--cluster", "euc1-beta")
            await expect([f"{done}:v1"], "--service", done, "--since", "1h")
            future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            await expect([], "--service", done, "--since", future)

            code, rows = await cli.json("list", "--submitter", alice, "--service", done)
            assert code == 0 and len(rows) == 1
            [row] = rows
            assert set(row) == FIELDS
            assert row["workflowId"] == f"release:{done}:v1" and row["runId"] == ok.run_id
            assert (row["service"], row["version"], row["phase"], row["status"]) == (
                done,
                "v1",
                "succeeded",
                "Completed",
            )
            assert (row["submitter"], row["submittedBy"], row["image"]) == (alice, alice, f"r/{done}:v1")
            assert row["clusters"] == ["euw1-internal"] and row["ring"] == "internal"
            assert row["endedAt"] and row["durationSeconds"] > 0
            started = datetime.fromisoformat(row["startedAt"])
            assert timedelta(0) < datetime.now(UTC) - started < timedelta(minutes=10)

            code, out, _ = await cli.run("list", "--service", waiting)
            assert code == 0
            header, line, blank, ui = out.rstrip("\n").split("\n")
            assert header.split() == [
                "RELEASE",
                "PHASE",
                "RING",
                "SUBMITTER",
                "STARTED",
                "DURATION",
                "STATUS",
            ]
            cells = line.split()
            assert cells[:4] == [f"{waiting}:v1", "awaiting-approval", "beta", obrien]
            assert cells[5:] == ["-", "Running"] and cells[4][-1] in "sm"
            assert line.index("Running") == header.index("STATUS"), "columns line up"
            assert blank == ""
            namespace = client.namespace
            assert ui.startswith(f"ui  http://localhost:8233/namespaces/{namespace}/workflows?query=")
            assert "RingmasterService%20%3D%20" in ui

            assert (await cli.json("abort", f"{waiting}:v1", "--reason", "done testing"))[0] == 0
            await ended(client.get_workflow_handle(f"release:{waiting}:v1"))

    async def test_nothing_matching_is_not_an_error(self, client, tmp_path):
        """An empty listing exits 0: JSON [] and a line saying so."""
        cli = Cli(client, "unused", tmp_path)
        assert await cli.json("list", "--service", unique_service("none")) == (0, [])
        code, out, _ = await cli.run("list", "--service", unique_service("none"))
        assert code == 0 and out.startswith("no releases match")


@workflow.defn(name="ClusterRolloutWorkflow")
class FakeClusterWorkflow:
    """Stands in for a cluster workflow: it only carries its search attributes."""

    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn(name="ReleaseWorkflow")
class FakeReleaseWorkflow:
    """Stands in for a release whose bounded cluster list may leave out a cluster it deployed to."""

    @workflow.run
    async def run(self, service: str, version: str, cluster: str) -> None:
        await workflow.execute_child_workflow(
            FakeClusterWorkflow.run,
            id=f"{workflow.info().workflow_id}:broad:{cluster}",
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search.SERVICE, service),
                    SearchAttributePair(search.VERSION, version),
                    SearchAttributePair(search.CLUSTER, cluster),
                ]
            ),
        )


class TestListByCluster:
    async def test_a_cluster_left_out_of_the_release_list_is_found_through_its_cluster_workflow(
        self, client, tmp_path
    ):
        """--cluster finds a release by its own list or by its cluster workflows, each release once,
        and never one that reached neither."""
        svc = unique_service("wide")
        queue = f"tq-{uuid.uuid4().hex}"
        # version: (the release's own list, the cluster its cluster workflow deployed to)
        releases = {
            "v1": ([], "use1-prod"),  # left out of the bounded list: only its cluster workflow says so
            "v2": (["use1-prod"], "use1-prod"),  # both say so: listed once
            "v3": (["euw1-internal"], "euw1-internal"),  # neither
            "v4": (["use1-prod"], "euw1-internal"),  # its list only
        }
        async with Worker(
            client,
            task_queue=queue,
            workflows=[FakeReleaseWorkflow, FakeClusterWorkflow],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            for version, (listed, reached) in releases.items():
                await client.execute_workflow(
                    FakeReleaseWorkflow.run,
                    args=[svc, version, reached],
                    id=f"release:{svc}:{version}",
                    task_queue=queue,
                    search_attributes=TypedSearchAttributes(
                        [
                            SearchAttributePair(search.SERVICE, svc),
                            SearchAttributePair(search.VERSION, version),
                            SearchAttributePair(search.PHASE, "succeeded"),
                            SearchAttributePair(search.CLUSTERS, listed),
                        ]
                    ),
                )
        cli = Cli(client, queue, tmp_path)
        expected = [f"{svc}:v4", f"{svc}:v2", f"{svc}:v1"]
        await assert_eventually(
            lambda: _listed(cli, "--service", svc, "--cluster", "use1-prod"), lambda got: got == expected
        )
        code, out, _ = await cli.run("list", "--service", svc, "--cluster", "use1-prod")
        assert code == 0 and "RunId%20IN%20" in out.splitlines()[-1]


class TestListInput:
    async def test_bad_input_exits_2_naming_the_flag_and_what_it_allows(self, client, tmp_path):
        """Unknown phase, bad --since, --limit out of range, a control character: exit 2 before any
        query, in text on stderr and as JSON."""
        cli = Cli(client, "unused", tmp_path)
        code, out, err = await cli.run("list", "--phase", "runing")
        assert code == 2 and out == ""
        assert err.startswith("error: --phase: 'runing' is not a phase; allowed: ")
        assert all(p in err for p in _query.PHASES)
        cases = [
            (("--since", "yesterday"), "--since: 'yesterday' is neither a duration"),
            (("--limit", "0"), "--limit: 0 is out of range; allowed: 1 to 1000"),
            (("--service", "api\nx"), "--service: 'api\\nx' contains the control character"),
            (("--submitter", ""), "--submitter: must not be empty"),
        ]
        for args, message in cases:
            code, answer = await cli.json("list", *args)
            assert code == 2 and answer["error"].startswith(message), (args, answer)  # type: ignore[call-overload]
