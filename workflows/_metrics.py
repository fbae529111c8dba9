"""ringmaster's metrics from workflow code: releases by phase, cluster steps, gate verdicts, rollbacks.

Only through :func:`temporalio.workflow.metric_meter`: the SDK drops what it records while a workflow
replays, so a worker that picks up a running release (a restart, an evicted cache) does not count
its past again. Recording adds no command to history, so no ``workflow.patched`` guards it: saved
histories replay unchanged (``tests/workflows/test_replay.py``).

The SDK adds ``namespace``, ``task_queue`` and ``workflow_type`` to each. Labels here are bounded
sets only (phases, strategy kinds, step actions, outcomes, the plan's metric names), never a release,
service, version or cluster: those would make a time series per release.
"""

from __future__ import annotations

from temporalio import workflow

RELEASE_PHASES = "ringmaster_release_phases"
CLUSTER_STEPS = "ringmaster_cluster_steps"
CLUSTER_ROLLOUTS = "ringmaster_cluster_rollouts"
GATE_VERDICTS = "ringmaster_gate_verdicts"
ROLLBACKS = "ringmaster_rollbacks"

_ROLLBACK_CAUSES = {"rolled-back": "gate-failed", "aborted": "aborted", "failed": "step-failed"}
"""A cluster's outcome when it rolls back, by what caused the rollback. The release's own rollback of
clusters it had promoted (``scope: release``, a failed bake, an abort after promotion) is ``release``."""


def _add(name: str, description: str, labels: dict[str, str]) -> None:
    workflow.metric_meter().create_counter(name, description).add(1, labels)


def release_phase(phase: str) -> None:
    """A release entered ``phase`` (counted once per entry)."""
    _add(RELEASE_PHASES, "Releases that entered a phase, by phase", {"phase": phase})


def cluster_step(strategy: str, action: str, result: str) -> None:
    """One strategy step in one cluster ended (``result`` ok or failed)."""
    _add(
        CLUSTER_STEPS,
        "Strategy steps in clusters, by strategy, action and result",
        {"strategy": strategy, "action": action, "result": result},
    )


def cluster_rollout(strategy: str, outcome: str) -> None:
    """A cluster's rollout ended with ``outcome`` (promoted, rolled-back, aborted, denied, failed)."""
    _add(
        CLUSTER_ROLLOUTS,
        "Cluster rollouts ended, by strategy and outcome",
        {"strategy": strategy, "outcome": outcome},
    )


def gate_verdict(metric: str | None, verdict: str) -> None:
    """An analysis stretch answered ``verdict``; ``metric`` the one that decided it (none: ``-``)."""
    _add(
        GATE_VERDICTS,
        "Gate verdicts of analysis stretches, by deciding metric and verdict",
        {"metric": metric or "-", "verdict": verdict},
    )


def rollback(outcome: str, *, ok: bool) -> None:
    """A cluster rollback ended; its cause from the cluster's ``outcome``, ``ok`` whether it restored."""
    _add(
        ROLLBACKS,
        "Cluster rollbacks, by cause and result",
        {"cause": _ROLLBACK_CAUSES.get(outcome, outcome), "result": "ok" if ok else "failed"},
    )
