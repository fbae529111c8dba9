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

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
SAVED = {p.stem: json.loads(p.read_text()) for p in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path: Path) -> None:
    """Every workflow of the path (release, clusters, lane) replays cleanly."""
    replayer = Replayer(
        workflows=[ReleaseWorkflow, ClusterRolloutWorkflow, ReleaseLaneWorkflow],
        data_converter=pydantic_data_converter,
    )
    histories = [WorkflowHistory.from_json(h["workflowId"], h["history"]) for h in SAVED[path.stem]]
    assert histories, f"{path.name} holds no history"
    failures = {}
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[history.workflow_id] = repr(result.replay_failure)
    assert not failures


def test_every_main_path_has_a_saved_history() -> None:
    """Promote, rollback, hold/resume, abort and approval are all covered."""
    assert {p.stem for p in HISTORIES} >= {"promote", "rollback", "hold-resume", "abort", "approval"}
