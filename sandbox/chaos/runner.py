"""Run one scenario on a chaos stack and judge it on the clusters.

The run goes as a team's would: the workload exists in the scenario's namespace of every cluster the
plan names; CI submits the release with ``ringmaster submit``; an operator approves whatever waits
for an approval (after the scenario's ``approve_after``) and does the scenario's controls at their
moments; the faults strike at theirs. Once the release and every one of its cluster workflows have
ended (or the bound has passed), the scenario's remaining faults are removed, the clusters are
read through the Kubernetes API, the emulator's change log is fetched, and
:mod:`sandbox.chaos.invariants` judges. ``ringmaster status`` is asked at the end and compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError

from activities import outcomes
from ringmaster.cli import status as view
from sandbox.chaos import clusters as kube
from sandbox.chaos import invariants, stalls
from sandbox.chaos.scenario import Event, Scenario, plan
from sandbox.chaos.stack import Stack
from workflows.models import (
    AbortRequest,
    ApproveRequest,
    ClusterRolloutResult,
    HoldRequest,
    ReleaseStatus,
    ResumeRequest,
)
from workflows.release import ReleaseWorkflow, cluster_workflow_id, release_id

T = TypeVar("T")
IMAGE = "registry.eu.example.com/api:{version}"
OPERATOR = "chaos-operator"
STRIKE_STATES = ("deploying", "analyzing", "awaiting-approval", "holding")
"""States in which an ownership conflict is injected: mid-rollout, where a later write must meet it.

Read as ``ringmaster status`` reads them: the release's record, with each running cluster as its own
workflow says (the release shows a cluster it started as ``deploying`` before that cluster has taken
its snapshot, and a conflict there is the state ringmaster found, which its rollback rightly
restores: seed 2581). A cluster workflow may still be a step behind the cluster: the conflict may
land after ringmaster's last request to the cluster, and the judge then leaves it out of what the
release answers for (seed 2042)."""


@dataclass
class Report:
    """What one scenario did and what the judging found."""

    seed: int
    kinds: list[str]
    phases: list[str] = field(default_factory=list)
    """The final phase of each release the scenario ran (two after a supersede)."""
    reasons: list[str] = field(default_factory=list)
    """Each release's own account of its end."""
    seconds: float = 0.0
    planned: float = 0.0
    """The plan's own length undisturbed (pauses, bakes, approvals and a few seconds a step)."""
    bound: float = 0.0
    done: list[str] = field(default_factory=list)
    """Events that took effect, in order (a control the release refused is not among them)."""
    skipped: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    """Cluster holds the operator resumed (a gate held a cluster for longer than ``approve_after``)."""
    trace: dict[str, list[str]] = field(default_factory=dict)
    """For a scenario that broke an invariant: each cluster's writes, one line each, to read why."""

    @property
    def ok(self) -> bool:
        return not self.violations

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> Report:
        """A report as :meth:`as_json` wrote it (older runs lack the newer fields)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in entry.items() if k in known})

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "kinds": self.kinds,
            "phases": self.phases,
            "reasons": self.reasons,
            "seconds": round(self.seconds, 1),
            "planned": round(self.planned, 1),
            "bound": round(self.bound, 1),
            "done": self.done,
            "skipped": self.skipped,
            "resumed": self.resumed,
            "violations": self.violations,
            "trace": self.trace,
        }


async def _retrying(what: Callable[[], Awaitable[T]], *, seconds: float = 60.0) -> T:
    """``what()``, tried again while Temporal is unreachable (it may be restarting)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await what()
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def _ended_cluster(handle: WorkflowHandle[Any, Any]) -> Callable[[], Awaitable[ClusterRolloutResult]]:
    """Reads a closed cluster workflow's result, or the one its outcome failure carries."""
    return lambda: outcomes.ended(handle, ClusterRolloutResult)


class Run:
    """One scenario in progress."""

    def __init__(self, stack: Stack, scenario: Scenario) -> None:
        self.stack = stack
        self.s = scenario
        self.report = Report(
            seed=scenario.seed,
            kinds=scenario.kinds(),
            bound=scenario.bound_seconds(),
            planned=scenario.planned_seconds(),
        )
        self.version = scenario.version
        self.releases: list[str] = [release_id(scenario.service, scenario.version)]
        self.fault_ids: dict[str, list[str]] = {}
        self.clusters = {name: kube.Cluster(stack.sandbox.kubeconfig, name) for name in scenario.clusters}
        self.jurisdiction = {
            c["name"]: ("EU" if c["region"].startswith("eu") else "US") for c in stack.admin.clusters()
        }
        self.ended = asyncio.Event()
        self.reset_at: float | None = None
        """When a reset took effect: the new run goes through its steps again from its snapshot."""
        self.held_until = 0.0
        self.started = time.monotonic()
        self.faulted_until: dict[str, float] = {}
        """Until when each cluster's API answers with a scenario's fault (monotonic seconds)."""

    # --- setup and submission -----------------------------------------------------------------

    def setup(self) -> None:
        """The workload in every cluster of the plan, ready; the version's traffic behaviour."""
        route = any(r.strategy == "canary-route" for r in self.s.rings)
        for name, cluster in self.clusters.items():
            cluster.create(kube.workload(self.s.namespace, self.jurisdiction[name], route=route))
        deadline = time.monotonic() + 60
        while not all(c.ready(self.s.namespace) for c in self.clusters.values()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"scenario {self.s.seed}: the workload never became ready")
            time.sleep(0.2)
        if self.s.bad_in:
            self.stack.traffic.add_profiles(
                [{"match": self.s.version, "clusters": self.s.bad_in, "errorRate": 0.5}]
            )

    def states(self) -> dict[str, kube.State]:
        return {name: c.state(self.s.namespace) for name, c in self.clusters.items()}

    def submit(self, version: str, *, supersede: bool = False) -> None:
        """``ringmaster submit`` as CI runs it."""
        with tempfile.TemporaryDirectory() as tmp:
            plan_file = Path(tmp) / "plan.yaml"
            plan_file.write_text(yaml.safe_dump(plan(self.s), sort_keys=False))
            argv = [sys.executable, "-m", "ringmaster.cli", "submit", str(plan_file)]
            argv += ["--version", version, "--image", IMAGE.format(version=version), "--by", "chaos-ci"]
            argv += ["--output", "json"] + (["--supersede"] if supersede else [])
            for _ in range(30):  # a dev server restarting answers exit 3: CI would retry
                done = subprocess.run(
                    argv, env=self.stack.env(), capture_output=True, text=True, timeout=60, check=False
                )
                if done.returncode != 3:
                    break
                time.sleep(1)
            if done.returncode != 0:
                raise RuntimeError(f"submit {version} exited {done.returncode}: {done.stdout} {done.stderr}")

    def status_cli(self, release: str) -> dict[str, Any]:
        """``ringmaster status --output json``, as an operator reads it (again while the worker or the
        server is down: another scenario's fault may be under way, and an operator would retry)."""
        argv = [sys.executable, "-m", "ringmaster.cli", "status", release, "--output", "json"]
        answer: dict[str, Any] = {}
        for _ in range(12):
            done = subprocess.run(
                argv, env=self.stack.env(), capture_output=True, text=True, timeout=60, check=False
            )
            try:
                answer = dict(json.loads(done.stdout))
            except ValueError:
                answer = {"error": f"exit {done.returncode}: {done.stdout} {done.stderr}"[:400]}
            if done.returncode == 0 and "phase" in answer:
                return answer
            time.sleep(5)
        return answer

    # --- the release --------------------------------------------------------------------------

    def handle(self) -> WorkflowHandle[Any, ReleaseStatus]:
        return self.stack.client.get_workflow_handle(self.releases[-1], result_type=ReleaseStatus)

    async def status(self) -> ReleaseStatus | None:
        """The release as ``ringmaster status`` shows it (running clusters read from their own workflows)."""
        try:
            st = await self.handle().query(ReleaseWorkflow.status)
            return await view.live_clusters(self.stack.client, st)
        except Exception:
            return None

    async def closed(self, workflow_id: str) -> float | None:
        """When ``workflow_id`` (latest run) closed, in unix time: None while it runs, 0 if it never ran."""
        try:
            described = await self.stack.client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if "not found" in str(err).lower():
                return 0.0
            return None
        if described.status == WorkflowExecutionStatus.RUNNING or described.close_time is None:
            return None
        return described.close_time.timestamp()

    async def running(self, workflow_id: str) -> bool:
        """Whether ``workflow_id`` (latest run) is running now, as the server says (False: unknown)."""
        try:
            described = await self.stack.client.get_workflow_handle(workflow_id).describe()
        except RPCError:
            return False
        return described.status == WorkflowExecutionStatus.RUNNING

    def children(self, version: str) -> list[str]:
        return [
            cluster_workflow_id(self.s.service, version, r.name, c) for r in self.s.rings for c in r.clusters
        ]

    async def finished(self, version: str) -> float | None:
        """When the release of ``version`` and every cluster workflow of it had closed (None: not yet)."""
        times = []
        for wid in [release_id(self.s.service, version), *self.children(version)]:
            closed = await self.closed(wid)
            if closed is None:
                return None
            times.append(closed)
        return max(times)

    async def phase(self, version: str) -> tuple[str, list[str], str]:
        """The release's final phase (``terminated`` when it was) and the clusters needing attention."""
        handle = self.stack.client.get_workflow_handle(
            release_id(self.s.service, version), result_type=ReleaseStatus
        )
        described = await _retrying(handle.describe)
        # Without a result of the release's own, its cluster workflows tell which rollbacks failed.
        if described.status == WorkflowExecutionStatus.TERMINATED:
            return "terminated", await self.unrestored(version), "terminated"
        if described.status == WorkflowExecutionStatus.CANCELED:
            return "cancelled", await self.unrestored(version), "cancelled"
        if described.status not in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED):
            status = described.status.name if described.status else "unknown"
            return f"workflow {status}", [], status
        try:
            # A release that did not succeed closes failed, its record the failure's detail.
            result = await _retrying(lambda: outcomes.ended(handle, ReleaseStatus))
        except WorkflowFailureError as err:
            return "workflow FAILED", [], str(err.cause or err)
        return result.phase, list(result.needs_attention), result.reason

    async def unrestored(self, version: str) -> list[str]:
        """The clusters whose cluster workflow of ``version`` reports that its rollback failed."""
        results: dict[str, ClusterRolloutResult | None] = {}
        for ring in self.s.rings:
            for cluster in ring.clusters:
                wid = cluster_workflow_id(self.s.service, version, ring.name, cluster)
                handle = self.stack.client.get_workflow_handle(wid, result_type=ClusterRolloutResult)
                if not await self.closed(wid):
                    continue  # never started (nothing to restore), or no answer from the server
                described = await _retrying(handle.describe)
                if described.status in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED):
                    # Not promoted: failed, carrying its result (activities.outcomes).
                    with contextlib.suppress(WorkflowFailureError):
                        results[cluster] = await _retrying(_ended_cluster(handle))
        return invariants.needing_attention(results)

    # --- the operator -------------------------------------------------------------------------

    async def operate(self) -> None:
        """Approve what waits for an approval, ``approve_after`` seconds after it began to wait."""
        waiting: dict[tuple[str, str | None], float] = {}
        holding: dict[str, float] = {}
        while not self.ended.is_set():
            await asyncio.sleep(0.5)
            st = await self.status()
            if st is None:
                continue
            asked: set[tuple[str, str | None]] = set()
            if st.phase == "awaiting-approval" and not any(
                c.state == "awaiting-approval" for c in st.clusters
            ):
                asked.add((st.ring, None))
            asked |= {(c.ring, c.name) for c in st.clusters if c.state == "awaiting-approval"}
            now = time.monotonic()
            await self._resume_cluster_holds(st, holding, now)
            for request in asked:
                since = waiting.setdefault(request, now)
                if now - since >= self.s.approve_after and now >= self.held_until:
                    ring, cluster = request
                    with contextlib.suppress(Exception):
                        await self.handle().execute_update(
                            ReleaseWorkflow.approve, ApproveRequest(ring=ring, cluster=cluster, by=OPERATOR)
                        )
                        waiting.pop(request, None)
            for request in list(waiting):
                if request not in asked:
                    del waiting[request]

    async def _resume_cluster_holds(self, st: ReleaseStatus, holding: dict[str, float], now: float) -> None:
        """Resume a cluster held by its gate (an inconclusive verdict, say while a Prometheus restarted)
        once it has been held ``approve_after`` seconds, as the operator on call would after a look.

        The scenario's own hold is left to its event; a resume while it lasts would cut it short.
        """
        held = {c.name: c.step or c.message for c in st.clusters if c.state == "holding"}
        for name in list(holding):
            if name not in held:
                del holding[name]
        for name, why in held.items():
            since = holding.setdefault(name, now)
            if now - since < self.s.approve_after or now < self.held_until or st.held:
                continue
            with contextlib.suppress(Exception):
                await self.handle().execute_update(ReleaseWorkflow.resume, ResumeRequest(by=OPERATOR))
                self.report.resumed.append(f"{name}@{now - self.started:.1f}s: {why[:60]}")
                holding.pop(name, None)

    # --- events -------------------------------------------------------------------------------

    async def strike(self, start: float) -> None:
        """Every event of the scenario at its moment after ``start`` (until the release has ended)."""
        for event in self.s.events:
            delay = start + event.at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ended.wait(), delay)
            if self.ended.is_set():
                self.report.skipped.append(f"{event.kind}: the release had ended")
                continue
            st = await self.status()
            try:
                did = await self.do(event)
            except Exception as exc:
                did = f"refused: {type(exc).__name__}: {str(exc)[:120]}"
            label = f"{event.kind}@{event.at}s [{st.phase if st else '?'}]" + (
                f" {event.cluster or event.jurisdiction}" if event.cluster or event.jurisdiction else ""
            )
            (self.report.done if not did else self.report.skipped).append(
                label + (f" ({did})" if did else "")
            )

    async def do(self, event: Event) -> str:
        """Do one event; returns why it was skipped or refused ("" when it took effect)."""
        handle = self.handle()
        match event.kind:
            case "worker-kill":
                await self.stack.worker_down(signal.SIGKILL, event.seconds)
            case "worker-term":
                await self.stack.worker_down(signal.SIGTERM, event.seconds)
            case "temporal-restart":
                await self.stack.temporal_down(event.seconds)
            case "prometheus-restart":
                await self.stack.prometheus_down(event.jurisdiction, event.seconds)
            case "api-5xx" | "api-429" | "api-drop" | "api-latency" | "api-403":
                until = time.monotonic() + event.seconds
                self.faulted_until[event.cluster] = max(self.faulted_until.get(event.cluster, 0.0), until)
                fault = self.stack.api_fault(event.cluster, self.s.namespace, event.kind, event.seconds)
                self.fault_ids.setdefault(event.cluster, []).append(fault)
            case "ownership-conflict":
                return await self.conflict(event.cluster)
            case "hold":
                await _retrying(
                    lambda: handle.execute_update(
                        ReleaseWorkflow.hold, HoldRequest(reason="chaos", by=OPERATOR)
                    )
                )
                self.held_until = time.monotonic() + event.seconds
                await asyncio.sleep(event.seconds)
                await _retrying(
                    lambda: handle.execute_update(ReleaseWorkflow.resume, ResumeRequest(by=OPERATOR))
                )
            case "abort":
                await _retrying(
                    lambda: handle.execute_update(
                        ReleaseWorkflow.abort, AbortRequest(reason="chaos", by=OPERATOR)
                    )
                )
            case "cancel":
                await _retrying(handle.cancel)
            case "terminate":
                await _retrying(lambda: handle.terminate(reason="chaos"))
            case "reset":
                return await self.reset(handle)
            case "supersede":
                # Named first: the first release may end before the submission returns, and the run
                # must then wait for the second.
                self.releases.append(release_id(self.s.service, self.s.next_version))
                await asyncio.to_thread(self.submit, self.s.next_version, supersede=True)
            case _:
                return f"unknown event kind {event.kind}"
        return ""

    async def conflict(self, cluster: str) -> str:
        """Another tool takes the image field of ``cluster`` while its rollout is under way."""
        while not self.ended.is_set():
            st = await self.status()
            found = next((c for c in st.clusters if c.name == cluster), None) if st else None
            # The release must still run when the other writer strikes, and the cluster's API must answer
            # at once: a request an API fault holds lands whenever the fault lets it, maybe after the end.
            if (
                found is not None
                and found.state in STRIKE_STATES
                and not self.ended.is_set()
                and time.monotonic() > self.faulted_until.get(cluster, 0.0) + 1.0
                and await self.running(self.releases[-1])
                and await asyncio.to_thread(self.snapshot_taken, cluster, self.releases[-1])
            ):
                await asyncio.to_thread(
                    self.clusters[cluster].take_image, self.s.namespace, IMAGE.format(version="hotfix")
                )
                return ""
            if found is not None and found.state in ("promoted", "rolled-back", "failed", "denied"):
                return f"{cluster} was done ({found.state})"
            await asyncio.sleep(0.3)
        return "the release had ended"

    def snapshot_taken(self, cluster: str, workflow_id: str) -> bool:
        """Whether the release ``workflow_id`` has recorded what it found in ``cluster``.

        A cluster shows as ``deploying`` a moment before its snapshot is taken; another writer striking
        then is what ringmaster finds, and its rollback rightly restores that (seed 2581, again under
        load after the release's status was read from the cluster workflows): the harness strikes only
        once there is a snapshot, so the conflict always meets a later write.
        """
        _, service, version = workflow_id.split(":", 2)
        return self.clusters[cluster].snapshot_taken(self.s.namespace, service, version)

    async def reset(self, handle: WorkflowHandle[Any, Any]) -> str:
        """Reset the release to the workflow task after ``prepare_release``, as an operator might."""
        if (await self.closed(handle.id)) is not None:
            return "the release had ended"
        prepared, event_id = False, 0
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                prepared = True
            elif prepared and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                event_id = event.event_id
                break
        if not event_id:
            return "not prepared yet"
        await self.stack.client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=self.stack.client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=handle.id),
                reason="chaos: reset",
                workflow_task_finish_event_id=event_id,
                request_id=f"chaos-reset-{handle.id}",
            )
        )
        self.reset_at = time.time()
        return ""

    # --- the whole scenario -------------------------------------------------------------------

    async def run(self) -> Report:
        await asyncio.to_thread(self.setup)
        before = await asyncio.to_thread(self.states)
        since = {name: self._last_change(name) for name in self.clusters}
        started, started_wall = time.monotonic(), time.time()
        self.started = started
        await asyncio.to_thread(self.submit, self.version)
        tasks = [asyncio.create_task(self.strike(started)), asyncio.create_task(self.operate())]
        ended_at = await self._wait_end(started)
        self.ended.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.report.seconds = time.monotonic() - started
        for name, ids in self.fault_ids.items():
            await asyncio.to_thread(self.stack.clear_faults, name, ids)
        await asyncio.sleep(3.0)  # anything still writing (it must not) would show in the change log
        after = await asyncio.to_thread(self.states)
        changes = {
            name: self.stack.admin.changes(name, namespace=self.s.namespace, since=since[name])
            for name in self.clusters
        }
        # The namespace is the scenario's alone: its requests are this scenario's, whenever they came.
        last_request = {
            name: invariants.last_request_end(self.stack.admin.requests(name, namespace=self.s.namespace))
            for name in self.clusters
        }
        await self._judge(before, after, changes, ended_at, last_request)
        if self.report.violations:
            self.report.trace = {
                name: [
                    *(_line(c, started_wall) for c in found),
                    _last_request_line(last_request[name], started_wall),
                ]
                for name, found in changes.items()
            }
        await asyncio.to_thread(self.teardown)
        return self.report

    def _last_change(self, cluster: str) -> int:
        found = self.stack.admin.changes(cluster, namespace=self.s.namespace)
        return int(found[-1]["seq"]) if found else 0

    async def _wait_end(self, started: float) -> float:
        """Wait until the last release (a supersede starts a second) ended with its cluster workflows."""
        deadline = started + self.report.bound
        while time.monotonic() < deadline:
            version = self.releases[-1].rsplit(":", 1)[1]
            ended = await self.finished(version)
            if ended is not None and ended > 0 and version == self.releases[-1].rsplit(":", 1)[1]:
                return ended
            await asyncio.sleep(0.5)
        version = self.releases[-1].rsplit(":", 1)[1]
        still = [
            wid
            for wid in [release_id(self.s.service, version), *self.children(version)]
            if await self.closed(wid) is None
        ]
        self.report.violations.append(
            f"no terminal phase within the bound of {self.report.bound:.0f}s; still open: "
            f"{'; '.join([await stalls.describe(self.stack.client, w) for w in still]) or 'none'}"
        )
        with contextlib.suppress(Exception):
            await self.handle().terminate(reason="chaos: past the bound")
        return time.time()

    async def _judge(
        self,
        before: dict[str, kube.State],
        after: dict[str, kube.State],
        changes: dict[str, list[dict[str, Any]]],
        ended_at: float,
        last_request: dict[str, float | None],
    ) -> None:
        v = self.report.violations
        if any("bound" in x for x in v):
            return
        hotfix = IMAGE.format(version="hotfix")
        for name in self.clusters:
            log_state = invariants.replay(before[name], changes[name])[-1]
            if log_state != after[name]:
                told = invariants.difference(after[name], log_state)
                v.append(f"{name}: the change log disagrees with the cluster: {told}")
            # A reset run walks its steps again from the snapshot: each run's writes are judged apart.
            cut = self.reset_at or float("inf")
            for part in (
                [c for c in changes[name] if c["time"] <= cut],
                [c for c in changes[name] if c["time"] > cut],
            ):
                v += invariants.no_going_back(name, before[name], part)
            v += invariants.quiet_after(name, changes[name], ended_at, others=[hotfix])
        start_of = dict(before)
        for release in self.releases:
            version = release.rsplit(":", 1)[1]
            phase, attention, reason = await self.phase(version)
            self.report.phases.append(phase)
            self.report.reasons.append(reason[:200])
            until = await self.finished(version) or ended_at
            # Another writer's change after ringmaster's last request to a cluster is beyond what it
            # could see: the cluster is judged as it was before that change (seed 2042).
            at_end = {
                n: invariants.end_state(
                    before[n], changes[n], until, last_request=last_request[n], others=[hotfix]
                )
                for n in self.clusters
            }
            image = IMAGE.format(version=version)
            v += [
                f"{version}: {x}"
                for x in invariants.outcome(
                    self.s, phase, attention, start_of, at_end, image=image, version=version
                )
            ]
            if phase not in ("terminated", "cancelled"):
                reported = await asyncio.to_thread(self.status_cli, release)
                v += [
                    f"{version}: {x}"
                    for x in invariants.status_agrees(
                        reported, phase, start_of, at_end, image=image, version=version
                    )
                ]
            start_of = at_end

    def teardown(self) -> None:
        """Remove the scenario's workload (its namespace's objects) and close its clients."""
        for cluster in self.clusters.values():
            with contextlib.suppress(Exception):
                cluster.core.delete_namespace(self.s.namespace)
            cluster.close()


def _line(change: dict[str, Any], start: float) -> str:
    """One write of the change log as a line: when, what, and the fields a release moves."""
    shape = kube.shape({**(change.get("object") or {}), "kind": change["kind"]})
    brief = invariants.brief(shape) if change["kind"] in kube.KINDS else ""
    return f"{change['time'] - start:7.2f}s {change['op']} {change['kind']}/{change['name']} {brief}"


def _last_request_line(last: float | None, start: float) -> str:
    """When ringmaster's last request to the cluster ended, to read a trace's writes against."""
    if last is None:
        return "ringmaster's requests: none in the request log"
    if math.isinf(last):
        return "ringmaster's last request: still unanswered"
    return f"{last - start:7.2f}s ringmaster's last request ended"


async def run(stack: Stack, scenario: Scenario) -> Report:
    """Run ``scenario`` on ``stack`` and judge it."""
    return await Run(stack, scenario).run()
