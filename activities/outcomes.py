"""How a release or a cluster workflow that did not promote ends: as a failed workflow carrying its record.

A release (or one cluster's rollout) that ends rolled back, aborted, denied or failed closes as a
*failed* workflow, so the Temporal UI shows it red and its Failures view counts it: a non-retryable
``ApplicationError`` whose type names the outcome (:data:`RELEASE_FAILURES`, :data:`CLUSTER_FAILURES`),
whose message says what happened, and whose one detail is the record a promoted run returns as its
result (``ReleaseStatus``, ``ClusterRolloutResult``). Runs recorded before (patch ``failed-outcomes``)
completed with that record as their result whatever the outcome. Every reader of an ended run (the
release reading its clusters, ``status``, ``submit --wait``, undo, the chaos judge) goes through
:func:`carried` or :func:`ended`, which read both, so a cluster that rolled back is never taken for one
whose workflow failed (which is a rollback nobody can vouch for).

Pure data and client reads, no workflow code: workflows raise with these types, readers decode here.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, FailureError

from policies import messages

RELEASE_FAILURES = {
    "rolled-back": "ReleaseRolledBack",
    "aborted": "ReleaseAborted",
    "denied": "ReleaseDenied",
    "failed": "ReleaseFailed",
}
"""A release's ending phase -> the failure type it closes with (``succeeded`` completes)."""

CLUSTER_FAILURES = {
    "rolled-back": "ClusterRolledBack",
    "aborted": "ClusterAborted",
    "denied": "ClusterDenied",
    "failed": "ClusterFailed",
}
"""A cluster workflow's outcome -> the failure type it closes with (``promoted`` completes)."""

OUTCOME_TYPES = frozenset(RELEASE_FAILURES.values()) | frozenset(CLUSTER_FAILURES.values())
"""Every failure type that is an outcome with a record, not a workflow gone wrong."""

M = TypeVar("M", bound=BaseModel)


def outcome_error(err: BaseException | None) -> ApplicationError | None:
    """The outcome failure in ``err``'s chain of causes (a client's ``WorkflowFailureError``, a
    workflow's ``ChildWorkflowError``), or None when the run failed some other way."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, ApplicationError) and err.type in OUTCOME_TYPES:
            return err
        err = err.cause if isinstance(err, FailureError | WorkflowFailureError) else err.__cause__
        seen += 1
    return None


def carried(err: BaseException | None, model: type[M]) -> M | None:
    """The record an outcome failure carries, as ``model``; None for any other failure."""
    found = outcome_error(err)
    if found is None or not found.details:
        return None
    return messages.decode(model, found.details[0])


async def ended(handle: WorkflowHandle[Any, Any], model: type[M], *, follow_runs: bool = True) -> M:
    """A closed run's record (awaited when the run is open): its result, or the record its outcome
    failure carries.

    Raises ``WorkflowFailureError`` as ``handle.result()`` does when the run failed some other way
    (and whatever else ``result`` raises). ``handle``'s result type is ``model`` or none.
    """
    try:
        result = await handle.result(follow_runs=follow_runs)
        return result if isinstance(result, model) else messages.decode(model, result)
    except WorkflowFailureError as err:
        record = carried(err, model)
        if record is None:
            raise
        return record
