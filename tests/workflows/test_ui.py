"""What the Temporal UI shows of a release while it runs: summaries, details, named timers.

People watch releases in the Temporal UI. These tests read what it reads: a workflow's static
summary and details (``describe``), its current details (the ``__temporal_workflow_metadata``
query the UI calls) and the summaries of the timers and activities in its history.
"""

from __future__ import annotations

import json
from typing import Any

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle

from tests.support.waiting import assert_eventually
from tests.workflows.support import canary, cluster_state, plan, running_worker, unique_service

INTERNAL = "euw1-internal"


async def _details(handle: WorkflowHandle[Any, Any]) -> str:
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details


async def _summaries(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The summaries of the timers and activities in the workflow's history, in order."""
    found = []
    async for event in handle.fetch_history_events():
        if event.user_metadata.HasField("summary"):
            found.append(json.loads(event.user_metadata.summary.data))
    return found


class TestTheUiTellsTheStory:
    async def test_a_canary_mid_pause_reads_from_the_release_down_to_its_gate(self, client, tmp_path):
        """Mid-pause at 40%: the release's details hold the rings and the cluster's row; the cluster
        workflow's static summary and details say what goes where and who asked, its current details
        its weight and gate, and its timer says which pause it is."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            rings = [
                {
                    "name": "internal",
                    "clusters": [INTERNAL],
                    "strategy": canary(("w", 20), ("p", "1s"), ("w", 40), ("p", "1h")),
                }
            ]
            handle = await h.start(plan(svc, rings), service=svc, submitted_by="alice")
            live = await assert_eventually(
                lambda: cluster_state(handle, INTERNAL),
                lambda c: c is not None and c.weight == 40 and c.gate is not None,
                what="the canary at 40% with the first pause's verdict",
            )
            release = await _details(handle)
            assert "| ring | clusters |" in release and "| internal | analyzing 1 |" in release
            # As of its last milestone (the analysis started at 20%): the cluster's own details are live.
            assert f"| {INTERNAL} | analyzing | v2 20% |" in release

            child = client.get_workflow_handle(live.workflow_id)
            described = await child.describe()
            assert await described.static_summary() == f"{svc}:v2 in {INTERNAL} (internal)"
            details = await described.static_details()
            assert details is not None
            assert f"to {INTERNAL} (eu-west-1, EU), ring internal, by canary" in details
            assert "submitted by alice" in details
            own = await _details(child)
            assert f"**{INTERNAL}** (eu-west-1) · **analyzing** · 40% on v2, the rest on v1" in own
            assert "Gate **passed**" in own, own
            assert "| success-rate |" in own

            async def timers() -> list[str]:
                return await _summaries(child)

            named = await assert_eventually(
                timers, lambda s: f"pause 1:00:00 at 40% in {INTERNAL}" in s, what="the pause's timer"
            )
            assert f"analyze canary in {INTERNAL} (until-stopped)" in named
            await handle.cancel()

    async def test_a_release_started_by_its_lane_says_what_and_who(self, client, tmp_path):
        """The lane starts each release with a summary (release and image) and who submitted it."""

        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            rings = [{"name": "internal", "clusters": [INTERNAL], "strategy": {"rolling": {}}}]
            handle = await h.submit(plan(svc, rings), service=svc)
            described = await handle.describe()
            assert await described.static_summary() == f"{svc}:v2 (r/{svc}:v2)"
            details = await described.static_details()
            assert details is not None and "Submitted by alice (verified: trusted)" in details
            await handle.result()
            assert "phase **succeeded**" in await _details(handle)
