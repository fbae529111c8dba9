"""Undoing a release: the one place that owns "roll this back, whatever happens".

Both workflows roll clusters back through here, and both guarantees live here:

- :func:`to_completion` runs the undoing as a task of its own and awaits it until it is done.
  Temporal cancels a workflow by cancelling its run task, and only that task: awaiting the work
  through ``asyncio.shield`` keeps the cancellation away from it, and every ``CancelledError`` that
  reaches the waiting run is swallowed until the work has finished. A workflow whose rollback has
  started therefore never ends ``CANCELED`` with a cluster left half-released, and the rollback
  activity never loses its workflow (which would cancel it at its next heartbeat).
- :func:`restore` runs the rollback activity until it succeeds or fails permanently. Transient
  failures (an API server down or unreachable, a worker lost mid-call, a timeout) never end a
  rollback: after each round of the activity's own retries the round's error is reported and the
  activity runs again after a growing pause. A permanent failure (403, an ownership conflict, a
  rollout the controller declares stuck) ends it with the reason: the cluster needs an operator.

Everything here is deterministic workflow code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.flags import FlagActivities, FlagRestoreInput
    from activities.models import RollbackInput
    from activities.rollout import ClusterActivities
    from workflows import _options as options

T = TypeVar("T")


async def to_completion(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end whatever cancellation reaches the caller, and return its result."""
    task = asyncio.create_task(work)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()
            workflow.logger.info("cancellation requested while a rollback runs: the rollback completes first")


def is_permanent(err: ActivityError) -> bool:
    """Whether retrying the call cannot help: a failure the activity marked non-retryable.

    A timeout (a lost worker, a call that hung) and any other error are transient: for a rollback,
    giving up is the one outcome worse than trying again.
    """
    cause = err.cause
    if isinstance(cause, TimeoutError):
        return False
    return isinstance(cause, ApplicationError) and (
        cause.non_retryable or cause.type in errors.NON_RETRYABLE_TYPES
    )


def describe(err: ActivityError) -> str:
    """The error's own message (the cluster's, for a cluster error), without Temporal's wrapping."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    if isinstance(cause, TimeoutError):
        return f"timed out ({cause.type.name.lower().replace('_', '-') if cause.type else 'timeout'})"
    return str(cause or err)


def pause_after(round_: int) -> timedelta:
    """The pause before round ``round_ + 1``: ``RETRY_PAUSE``, doubling, at most ``RETRY_PAUSE_MAX``."""
    pause: timedelta = options.RETRY_PAUSE * (2 ** min(round_ - 1, 16))
    return min(pause, options.RETRY_PAUSE_MAX)


async def restore(inp: RollbackInput, report: Callable[[str], Awaitable[None]]) -> str | None:
    """Roll one cluster back; None once restored, the reason when it failed permanently.

    A cluster whose feature flag the run moved (``inp.snapshot.flag``) has its flag restored first, in
    seconds and without touching the workload (users lose the feature at once, whatever the code's
    rollback then takes), and its workload after; a permanent failure of the flag's restore (an
    ownership conflict: a person's edit) ends the rollback there, the workload untouched.

    ``report`` is called with ``""`` once the first rollback activity is scheduled (so a report
    never stands before the rollback), then with the error of every round that failed transiently,
    for ``status`` to show while the next round waits.
    """
    record = inp.snapshot.flag
    reported = False
    if record is not None:
        flag_input = FlagRestoreInput(
            release=inp.release,
            server=record.server,
            snapshot=record.snapshot,
            last_written=record.last_written,
            reason=inp.reason,
        )
        failure = await _rounds(
            lambda: workflow.start_activity_method(
                FlagActivities.restore_flag,
                flag_input,
                summary=f"restore flag {record.snapshot.flag} in {inp.cluster.name}",
                **options.ROLLBACK,
            ),
            f"the restore of flag {record.snapshot.flag} in {inp.cluster.name}",
            report,
        )
        if failure is not None:
            return f"flag {record.snapshot.flag} not restored: {failure}"
        reported = True
    return await _rounds(
        lambda: workflow.start_activity_method(
            ClusterActivities.rollback_cluster,
            inp,
            summary=f"roll back {inp.cluster.name}",
            **options.ROLLBACK,
        ),
        f"the rollback of {inp.cluster.name}",
        report,
        reported=reported,
    )


async def _rounds(
    start: Callable[[], workflow.ActivityHandle[Any]],
    what: str,
    report: Callable[[str], Awaitable[None]],
    *,
    reported: bool = False,
) -> str | None:
    """Run one restoring activity round after round until it succeeds (None) or fails permanently
    (the reason); ``report`` as :func:`restore` says, ``""`` only if not ``reported`` already."""
    round_ = 0
    while True:
        handle = start()
        if round_ == 0 and not reported:
            await report("")
        try:
            await handle
        except ActivityError as err:
            if is_permanent(err):
                return describe(err)
            round_ += 1
            pause = pause_after(round_)
            await report(f"rollback retrying in {pause}: round {round_} failed: {describe(err)}")
            await workflow.sleep(pause, summary=f"retry {what} in {pause}")
            continue
        return None
