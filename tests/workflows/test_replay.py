"""Saved histories of the main paths replay against today's workflow code without non-determinism.

A failure here means a change would break releases already running: guard it with
``workflow.patched`` instead of re-recording (``python -m tests.workflows.histories.record``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.cluster import ClusterRolloutWorkflow
from workflows.lane import ReleaseLaneWorkflow
from workflows.release import ReleaseWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))
SAVED = {f"{p.parent.name}/{p.stem}": json.loads(p.read_text()) for p in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORIES])
async def test_saved_history_replays(path: Path) -> None:
    """Every workflow of the path (release, clusters, lane) replays cleanly."""
    replayer = Replayer(
        workflows=[ReleaseWorkflow, ClusterRolloutWorkflow, ReleaseLaneWorkflow],
        data_converter=pydantic_data_converter,
    )
    histories = [
        WorkflowHistory.from_json(h["workflowId"], h["history"])
        for h in SAVED[f"{path.parent.name}/{path.stem}"]
    ]
    assert histories, f"{path.name} holds no history"
    failures = {}
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[history.workflow_id] = repr(result.replay_failure)
    assert not failures


def test_every_set_covers_every_main_path() -> None:
    """Each recorded set holds promote, rollback, hold/resume, abort and approval (and since v4 an
    unreachable cluster and a release cancelled mid-step, since v5 a reset run aborted)."""
    sets = {p.parent.name for p in HISTORIES}
    assert len(sets) >= 2, "the pre-patch set and a set recorded with today's patches"
    for name in sets:
        stems = {p.stem for p in HISTORIES if p.parent.name == name}
        assert stems >= {"promote", "rollback", "hold-resume", "abort", "approval"}, name
        if int(name.removeprefix("v")) >= 4:
            assert stems >= {"unreachable", "cancel"}, (
                f"{name}: since v4, an unreachable cluster and a cancel"
            )
        if int(name.removeprefix("v")) >= 5:
            assert "reset" in stems, f"{name}: since v5, a reset run aborted"
