"""Saved histories of the main paths replay against today's workflow code without non-determinism.

A failure here means a change would break releases already running: guard it with
``workflow.patched`` instead of re-recording (``python -m tests.workflows.histories.record``).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from ringmaster import registry
from ringmaster.converter import data_converter
from workflows import _patches, _signals
from workflows.cluster import ClusterRolloutWorkflow
from workflows.release import ReleaseWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))
SAVED = {f"{p.parent.name}/{p.stem}": json.loads(p.read_text()) for p in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORIES])
async def test_saved_history_replays(path: Path) -> None:
    """Every workflow of the path (release, clusters, lane, freeze registry) replays cleanly, with the
    worker's workflow types, sandbox, data converter and interceptors (what ``ringmaster replay`` uses)."""
    replayer = registry.replayer()
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
    unreachable cluster and a release cancelled mid-step, since v5 a reset run aborted, since v10 an
    undo and a release held by a failed gate under ``rollback.mode: freeze``)."""
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
        if int(name.removeprefix("v")) >= 10:
            assert stems >= {"undo", "frozen"}, (
                f"{name}: since v10, an undo and a release held by rollback.mode freeze"
            )


RACE_ONLY = {"analysis-stop-race"}
"""Patches whose code runs only in a race no recorded path provokes (a gate's analysis ending as the
step it judges is stopped); their replay is covered where the race is, in ``tests/workflows``."""


REPLAYED_BY_THEIR_TESTS: set[str] = set()
"""Patches newer than the newest set whose own tests replay their runs against today's code (none:
v13 carries every patch)."""


def _patches_in_code() -> set[str]:
    """Every patch id the workflows use: ``patched("id")``, or ``patched(NAME)`` with ``NAME = "id"``."""
    workflows = (Path(__file__).parents[2] / "workflows").glob("*.py")
    code = "".join(p.read_text() for p in workflows if p.name != "_patches.py")
    constants = dict(re.findall(r'^(\w+) = "([^"]+)"', code, re.MULTILINE))
    named = {constants[name.rsplit(".", 1)[-1]] for name in re.findall(r"patched\(([\w.]+)\)", code)}
    return set(re.findall(r'patched\("([^"]+)"\)', code)) | named | {_signals.PATCH}


def _markers(history: dict) -> list[str]:
    """The patch ids of a saved history's markers, in order."""
    found = []
    for event in history["history"]["events"]:
        details = event.get("markerRecordedEventAttributes", {}).get("details", {})
        for payloads in details.values():
            for payload in payloads.get("payloads", []):
                data = json.loads(base64.b64decode(payload["data"]))
                if isinstance(data, dict) and "id" in data:
                    found.append(data["id"])
    return found


def _patches_recorded(name: str) -> set[str]:
    """The patches a set's runs took: each by its marker, or every covered one by the baseline's."""
    found: set[str] = set()
    for path in HISTORIES:
        if path.parent.name == name:
            for saved in SAVED[f"{name}/{path.stem}"]:
                found.update(_markers(saved))
    if _patches.BASELINE in found:
        found |= _patches.COVERED
    return found


def _newest() -> str:
    return max({p.parent.name for p in HISTORIES}, key=lambda name: int(name.removeprefix("v")))


def test_the_newest_set_was_recorded_with_every_patch() -> None:
    """A new ``workflow.patched`` needs a new set: the newest one holds a marker of every patch."""
    newest = _newest()
    missing = _patches_in_code() - RACE_ONLY - REPLAYED_BY_THEIR_TESTS - _patches_recorded(newest)
    assert not missing, f"{newest} predates the patches {sorted(missing)}: record a new set"


def test_every_patch_has_the_version_it_came_in() -> None:
    """``ringmaster patches`` judges every patch the workflows ask, and only those: each is in
    ``_patches.SINCE`` with the first version whose code has it."""
    assert set(_patches.SINCE) == _patches_in_code() | {_patches.BASELINE}


def test_every_patch_is_asked_through_the_baseline() -> None:
    """No workflow asks ``workflow.patched`` itself: :func:`workflows._patches.patched` asks the
    baseline first, which is what keeps a run's answers consistent (see its module)."""
    for path in (Path(__file__).parents[2] / "workflows").glob("*.py"):
        if path.name != "_patches.py":
            assert "workflow.patched(" not in path.read_text(), f"{path.name} asks a patch directly"


def test_the_baseline_covers_only_patches_older_than_it() -> None:
    """Every covered id was in the code when the baseline came (it is in a set recorded before the
    baseline, or came with it and is in none): a patch added later must never be covered, or runs
    recorded with the baseline would take it in replay."""
    before = set().union(*(_patches_recorded(f"v{n}") for n in range(1, 12)))
    came_with_it = {"quiet-analysis", "failed-outcomes", "hold-kinds-reported"}
    assert _patches.COVERED - before - RACE_ONLY == came_with_it
    assert came_with_it <= _patches_in_code()


def test_runs_started_with_the_baseline_record_one_marker() -> None:
    """In the newest set, a workflow records the baseline's marker at most once and no covered id's:
    one marker (and one ``TemporalChangeVersion`` upsert) where a cluster workflow recorded seven."""
    runs = [h for p in HISTORIES if p.parent.name == _newest() for h in SAVED[f"{_newest()}/{p.stem}"]]
    marked = [_markers(h) for h in runs]
    assert any(_patches.BASELINE in m for m in marked), "the newest set predates the baseline"
    for history, markers in zip(runs, marked, strict=True):
        assert markers.count(_patches.BASELINE) <= 1, history["workflowId"]
        assert not set(markers) & _patches.COVERED, (history["workflowId"], markers)


STALLED_2040 = Path(__file__).parent / "stalled" / "seed-2040-release.json"


async def test_the_release_kept_from_seed_2040_still_fails_on_the_sdks_update_order() -> None:
    """The release that wedged chaos seed 2040 fails to replay the way it failed on the worker.

    Its ``resume`` update was accepted after a child's start in one workflow task; a replay runs the
    update first (``tests/workflows/stalled/README.md``). No workflow code can make this history replay,
    so this pins the SDK's behaviour: when an SDK upgrade lets it replay, seed 2040 in
    ``docs/reliability.md`` can be closed; a different failure means replay broke earlier.
    """
    replayer = Replayer(workflows=[ReleaseWorkflow, ClusterRolloutWorkflow], data_converter=data_converter)
    history = WorkflowHistory.from_json("release:c2040:v2-s2040", json.loads(STALLED_2040.read_text()))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    expected = "Update machine does not handle this event: HistoryEvent(id: 62, StartChildWorkflowExecution"
    assert expected in repr(result.replay_failure)
