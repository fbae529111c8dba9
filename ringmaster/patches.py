"""Which ``workflow.patched`` ids open runs still need: the patches that may not be retired yet.

A patch's old branch (``patched(id)`` answering False) exists only for runs that started before the
patch: a run that met it records its marker and replays True, a run started after it records the
marker when it gets there. So a patch may go once no open run started before it
(``docs/design.md``, "Retiring a patch"). For each open run of ringmaster's workflow types
(:func:`ringmaster.replay.query`, running only, narrowed by ``--query``) this reads the history: the
patch markers it recorded (the baseline's standing for every id it covers,
:data:`workflows._patches.COVERED`), and the build that completed its first workflow task (every
worker stamps its build id, ``<version>-<commit>``: :mod:`ringmaster.versioning`). A run still
needs a patch when it has no marker of it and was started by a build older than the patch
(:data:`workflows._patches.SINCE`) or by one that did not say (a worker from before build stamps):
the second is the careful side, since such a run may simply not have reached the patch yet.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from temporalio.api.enums.v1 import EventType

from ringmaster.replay import started
from workflows import _patches

if TYPE_CHECKING:
    from temporalio.client import WorkflowHistory

PATCH_MARKER = "core_patch"
"""The marker name the SDK records for ``workflow.patched``."""

RUNS_LISTED = 10
"""Runs named per patch still needed (all are counted)."""

_RELEASE = re.compile(r"^(\d+(?:\.\d+)*)")

Version = tuple[int, ...]


def version_of(text: str) -> Version | None:
    """A ringmaster version's release numbers (``0.2.0`` -> (0, 2, 0); a suffix such as ``rc1`` is
    ignored), None when ``text`` does not start with one."""
    found = _RELEASE.match(text)
    if found is None:
        return None
    numbers = tuple(int(n) for n in found.group(1).split("."))
    # 0.2 and 0.2.0 are the same release.
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers = numbers[:-1]
    return numbers


@dataclass
class Run:
    """What one open run says about patches: the ids it recorded and the build that started it."""

    workflow_id: str
    run_id: str
    workflow_type: str
    build_id: str
    """The build id of the worker that completed its first workflow task ("" when none said)."""
    markers: set[str]

    @property
    def version(self) -> Version | None:
        """The ringmaster version of that build (``<version>-<commit>``), None when unknown."""
        return version_of(self.build_id.split("-", 1)[0])

    def needs(self, patch: str) -> bool:
        """Whether replaying this run may take the patch's old branch."""
        taken = self.markers | (_patches.COVERED if _patches.BASELINE in self.markers else set())
        if patch in taken:
            return False
        built = self.version
        since = version_of(_patches.SINCE[patch])
        return built is None or since is None or built < since


def _first_build(history: WorkflowHistory) -> str:
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            done = event.workflow_task_completed_event_attributes
            return str(done.deployment_version.build_id or done.worker_version.build_id)
    return ""


def _markers(history: WorkflowHistory) -> set[str]:
    found: set[str] = set()
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        marker = event.marker_recorded_event_attributes
        if marker.marker_name != PATCH_MARKER:
            continue
        for payloads in marker.details.values():
            for payload in payloads.payloads:
                try:
                    data = json.loads(payload.data)
                except ValueError:
                    continue
                if isinstance(data, dict) and isinstance(data.get("id"), str):
                    found.add(data["id"])
    return found


def read(history: WorkflowHistory) -> Run:
    """What one history says about patches."""
    return Run(
        history.workflow_id,
        history.run_id,
        started(history).workflow_type.name,
        _first_build(history),
        _markers(history),
    )


@dataclass
class PatchReport:
    """One patch: the open runs that still need its old branch."""

    patch: str
    since: str
    runs: list[Run] = field(default_factory=list)

    @property
    def needed(self) -> bool:
        """Whether any open run still needs it (it may not be retired)."""
        return bool(self.runs)

    def as_json(self) -> dict[str, Any]:
        """The documented JSON of one patch."""
        return {
            "patch": self.patch,
            "since": self.since,
            "needed": self.needed,
            "openRuns": len(self.runs),
            "runs": [
                {
                    "workflowId": r.workflow_id,
                    "runId": r.run_id,
                    "type": r.workflow_type,
                    "buildId": r.build_id,
                }
                for r in self.runs[:RUNS_LISTED]
            ],
        }


async def report(found: AsyncIterator[WorkflowHistory]) -> tuple[int, list[PatchReport]]:
    """How many open runs were read, and every patch of :data:`workflows._patches.SINCE` with the runs
    that still need it, in the order of the table."""
    runs = [read(history) async for history in found]
    return len(runs), [
        PatchReport(patch, since, [r for r in runs if r.needs(patch)])
        for patch, since in sorted(_patches.SINCE.items())
    ]


def text(read_runs: int, reports: list[PatchReport]) -> str:
    """The report for people: each patch, needed or retirable, and who needs it."""
    lines = [f"{read_runs} open run(s) read"]
    for r in reports:
        if not r.needed:
            lines.append(f"retirable  {r.patch} (since {r.since})")
            continue
        lines.append(f"needed     {r.patch} (since {r.since}) by {len(r.runs)} open run(s)")
        lines.extend(
            f"{'':13}{run.workflow_type} {run.workflow_id} run {run.run_id} build {run.build_id or 'unknown'}"
            for run in r.runs[:RUNS_LISTED]
        )
    return "\n".join(lines)
