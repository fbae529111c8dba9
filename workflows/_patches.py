"""Which behaviour changes a run takes: one marker for all of them in runs started from here.

Every change to the workflows' behaviour since the first release sits behind a ``workflow.patched``
id, so a history recorded before it replays unchanged. Each id a run meets records a marker, and the
SDK upserts the ``TemporalChangeVersion`` search attribute beside it: about seven of each in every
cluster workflow, each one an event and the upserts billable actions (a third of a cluster's
billable actions beside its heartbeats). A run started by this code records one marker instead,
:data:`BASELINE`, which stands for every id in :data:`COVERED`. A run started before it never met
:data:`BASELINE`: it replays, and goes on, by each id as it did.

Why the order is safe: :func:`patched` asks :data:`BASELINE` before any id, so its answer, which the
SDK memoizes for the run, is fixed no later than any id's. A run recorded without it gets False in
replay and keeps answering each id by its own marker; a run that met no id before this code took
over has nothing its ids would contradict. Patches added after :data:`BASELINE` are not in
:data:`COVERED`: they get markers of their own, as before, until a later baseline covers them.
Every ``workflow.patched`` of the workflows goes through here (``tests/workflows/test_replay.py``).
"""

from __future__ import annotations

from temporalio import workflow

BASELINE = "baseline-2026-12"
"""Marker of runs started with every id of :data:`COVERED` (history set v12 on)."""

COVERED = frozenset(
    {
        "analysis-stop-race",
        "bluegreen-switch-first",
        "cancel-waits-for-step",
        "child-start-completes",
        "controls-in-order",
        "failed-outcomes",
        "freeze-holds",
        "freeze-refuses-submissions",
        "hold-kinds-reported",
        "milestone-reports",
        "phase-holding-first",
        "prepared-before-cancel",
        "quiet-analysis",
        "report-gate-holds",
        "rollback-first",
        "sealed-orders",
        "shielded-signals",
        "stop-earlier-children",
        "sweep-unreached-clusters",
        "timed-stretches",
        "unreachable-holds",
        "verified-identity",
        "verify-before-promoted",
        "wave-starts-together",
    }
)
"""The ids :data:`BASELINE` stands for: every patch the workflows had when it was introduced."""


SINCE: dict[str, str] = {
    **dict.fromkeys(COVERED, "0.1.0"),
    BASELINE: "0.1.0",
    "accountable": "0.1.0",
}
"""Every patch id the workflows ask, with the first ringmaster version whose code has it.

``ringmaster patches`` reads it: a run started by a build of that version or later never needs the
patch's old branch (``docs/design.md``, "Retiring a patch"). A new patch is added here with the
version it will ship in; ``tests/workflows/test_replay.py`` holds the list to the code."""


def patched(patch_id: str) -> bool:
    """``workflow.patched(patch_id)``, answered by :data:`BASELINE` for the ids it covers."""
    if workflow.patched(BASELINE) and patch_id in COVERED:
        return True
    return workflow.patched(patch_id)
