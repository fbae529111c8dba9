"""Releases judged by the sandbox's real Prometheus, for the end-to-end tests: a plan for the ``api``
workload the sandbox seeds in every cluster, starting a release of a service no other test uses, and
waiting for its end (failing with where each cluster stands when it hangs)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowHandle

from ringmaster.cli import status as view
from tests.workflows.support import ended as ended_anyhow
from workflows.models import ReleaseInput, ReleaseStatus
from workflows.release import ReleaseWorkflow, release_id


def plan(
    rings: list[dict[str, Any]],
    metrics: list[dict[str, Any]],
    *,
    interval: str = "2s",
    mode: str = "automatic",
) -> str:
    """A plan for the ``api`` workload the sandbox seeds in every cluster."""
    return yaml.safe_dump(
        {
            "apiVersion": "ringmaster.dev/v1",
            "kind": "ReleasePlan",
            "service": "api",
            "workload": {"namespace": "api", "deployment": "api", "container": "api"},
            "dataResidency": {
                "dataClass": "personal",
                "dataEndpoints": {"EU": ["orders.db.eu.example.com"], "US": ["orders.db.us.example.com"]},
            },
            "rings": rings,
            "analysis": {
                "interval": interval,
                "threshold": 2,
                "consecutiveErrorLimit": 2,
                "minDataPoints": 2,
                "metrics": metrics,
            },
            "rollback": {"scope": "release", "mode": mode},
        },
        sort_keys=False,
    )


async def start(
    client_: Client, queue: str, plan_text: str, version: str
) -> WorkflowHandle[ReleaseWorkflow, ReleaseStatus]:
    """Start a release of a service no other test uses."""
    service = f"shop-{uuid.uuid4().hex[:6]}"
    plan_text = plan_text.replace("service: api\n", f"service: {service}\n", 1)
    inp = ReleaseInput(
        service=service,
        version=version,
        image=f"registry.eu.example.com/api:{version}",
        plan_text=plan_text,
        submitted_by="ci",
    )
    return await client_.start_workflow(
        ReleaseWorkflow.run, inp, id=release_id(service, version), task_queue=queue
    )


async def ended(
    handle: WorkflowHandle[ReleaseWorkflow, ReleaseStatus], timeout: float = 100
) -> ReleaseStatus:
    """The release's final record; past ``timeout``, a failure showing where each cluster stands and
    its latest measurements (a hung release otherwise ends in a bare pytest timeout)."""
    try:
        return await asyncio.wait_for(ended_anyhow(handle), timeout)
    except TimeoutError:
        status = await view.live_clusters(handle._client, await handle.query(ReleaseWorkflow.status))
        lines = [f"release still {status.phase} after {timeout:g} s: {status.hold_reason or status.reason}"]
        for c in status.clusters:
            lines.append(f"  {c.name}: {c.state} {c.step!r} gate={c.gate.reason if c.gate else None}")
            for check in c.measurements[-2:]:
                lines.append(
                    f"    {check.at:%H:%M:%S} {[m.model_dump(exclude_none=True) for m in check.measurements]}"
                )
        pytest.fail("\n".join(lines))
