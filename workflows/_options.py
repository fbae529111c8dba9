"""Timeouts and retry policies of every activity call, in one place.

Every call sets them explicitly: Temporal's default retry policy retries forever, which would turn a
403 into an endless loop. Permanent failures are non-retryable at the source and listed again here.

Heartbeat timeouts line up with the calls inside them (``tests/workflows/test_timeouts.py`` checks
it from the real constants): every cluster activity heartbeats from a side task every
``activities.rollout.HEARTBEAT_INTERVAL`` while its blocking call runs, and its heartbeat timeout
(:data:`CLUSTER_HEARTBEAT`) is longer than that and than any single Kubernetes call (connect plus
read timeout, ``activities.kubernetes.clients.Tuning``), so a slow API server shows as that call's
error, never as a heartbeat timeout retrying a call still in flight. A cancellation (an abort)
reaches a running activity in a heartbeat's answer, within the worker's heartbeat throttle.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.analysis import heartbeat_timeout
    from policies.plan import Analysis


class CallOptions(TypedDict, total=False):
    """The options every activity call takes from here, typed so mypy checks them at each call.

    Narrower than the SDK's ``ActivityConfig``: the call site adds its own ``summary``.
    """

    start_to_close_timeout: timedelta
    heartbeat_timeout: timedelta
    retry_policy: RetryPolicy
    cancellation_type: ActivityCancellationType


def _retry(attempts: int, *, initial: float = 1.0, maximum: float = 30.0) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=initial),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=maximum),
        maximum_attempts=attempts,
        non_retryable_error_types=errors.NON_RETRYABLE_TYPES,
    )


PREPARE: CallOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": _retry(5),
}
"""Plan validation and scheduling: pure CPU, a few milliseconds."""

RECORD: CallOptions = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": _retry(5),
}
"""Reading an ended release's record from Temporal (its first history event and its result)."""

WINDOW: CallOptions = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": _retry(5),
}

NOTIFY: CallOptions = {
    "start_to_close_timeout": timedelta(minutes=3),
    "heartbeat_timeout": timedelta(seconds=30),
    "retry_policy": _retry(2),
}
"""One notification to every webhook that wants it. The activity retries deliveries itself, within
each webhook's budget (``give_up_after_seconds``, at most ``activities.notify.LONGEST_BUDGET``) and
heartbeats while it waits; a lost worker costs one more attempt, never more: a webhook is a courtesy,
and the release's ending waits for it."""

ARCHIVE: CallOptions = {
    "start_to_close_timeout": timedelta(minutes=10),
    "heartbeat_timeout": timedelta(minutes=2),
    "retry_policy": _retry(6, initial=2.0, maximum=60.0),
}
"""Building the audit record (reading every child's history, heartbeating per history) and writing it
once. Retried for a few minutes (an archive briefly down); past that the release ends without it,
and says so in its log."""

CLUSTER_HEARTBEAT = timedelta(seconds=40)
"""Heartbeat timeout of every cluster activity: above a Kubernetes call's 5 s connect + 30 s read
timeout, and many side-task heartbeats long; a lost worker is noticed within it."""

CLUSTER_CALL: CallOptions = {
    "start_to_close_timeout": timedelta(seconds=60),
    "heartbeat_timeout": CLUSTER_HEARTBEAT,
    "retry_policy": _retry(8, maximum=20.0),
    "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
}
"""One change or read against a cluster API (a step waits up to 40 s for pods, heartbeating). Waiting
for cancellation to complete means a rollback never races an apply that is still in flight: the
activity reports its cancellation only once its thread has stopped."""

FLAG_CALL: CallOptions = {
    "start_to_close_timeout": timedelta(seconds=90),
    "heartbeat_timeout": CLUSTER_HEARTBEAT,
    "retry_policy": _retry(6, maximum=20.0),
    "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
}
"""One flag snapshot or ``setRollout`` step on a flag server: a handful of Admin API requests of at most
``unleash_timeout_seconds`` (10 s) each, heartbeating before each. ``FlagServerUnreachable`` is retried
here for about a minute, then the cluster is held as ``flag server unreachable`` and the step tried
again after a growing pause (:data:`RETRY_PAUSE`), by itself; ``FlagRequestRefused`` and
``OwnershipConflict`` are not retried. Waiting for cancellation to complete: a rollback's restore never
races a step still writing."""

ROLLBACK: CallOptions = {  # used through workflows._rollback.restore
    "start_to_close_timeout": timedelta(minutes=11),
    "heartbeat_timeout": CLUSTER_HEARTBEAT,
    "retry_policy": _retry(5, maximum=30.0),
}
"""One round of a rollback: a few quick retries. A rollback never gives up on a transient failure:
``_rollback.restore`` runs round after round, ``RETRY_PAUSE`` apart and doubling, reporting each."""

RETRY_PAUSE = timedelta(seconds=10)
"""Pause after the first round of a cluster call that failed transiently (a rollback's, or a forward
step's while the cluster is held as unreachable); doubling each round up to ``RETRY_PAUSE_MAX``."""

RETRY_PAUSE_MAX = timedelta(minutes=2)
"""Longest pause between rounds: how late a cluster whose API answers again is noticed."""


def wait_rollout(progress_deadline_seconds: int) -> CallOptions:
    """A rollout wait: bounded by the progress deadline, heartbeating so an abort reaches it quickly."""
    return {
        "start_to_close_timeout": timedelta(seconds=progress_deadline_seconds + 60),
        "heartbeat_timeout": CLUSTER_HEARTBEAT,
        "retry_policy": _retry(3),
        "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }


def analyze(analysis: Analysis, *, timed: bool = False) -> CallOptions:
    """One analysis stretch: as long as it needs, heartbeating every few seconds.

    A lost worker is noticed within one heartbeat timeout and the stretch resumes on another
    attempt from the last heartbeat's checks. Cancellation is how the workflow ends a stretch, and
    the activity answers it with its verdict, so the workflow must wait for that answer. A ``timed``
    stretch (one with a deadline) answers at its deadline by itself and heartbeats less often.
    """
    return {
        "start_to_close_timeout": timedelta(days=30),
        "heartbeat_timeout": heartbeat_timeout(analysis.interval, timed=timed),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=1),
            maximum_interval=timedelta(seconds=10),
            maximum_attempts=0,
        ),
        "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }


IDENTITY: CallOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": _retry(4, maximum=5.0),
}
"""Verifying a proof (an ``ssh-keygen`` run, or a token against its issuer's cached keys) or sealing an
attestation. A person waits on it, so it gives up within seconds: an issuer that cannot be reached
refuses the request, which can be sent again."""

FREEZE_CHECK: CallOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": _retry(5, maximum=5.0),
}
"""A submission asks the freeze registry whether a freeze refuses it: a person waits, so it gives up
within seconds (and the lane refuses the submission, failing closed)."""

FREEZE_READ: CallOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)
    ),
}
"""A release reads the freezes before its first step, retrying until the registry answers: a release
that cannot tell whether it is frozen starts nothing (fails closed)."""

FREEZE_WATCH: CallOptions = {
    "start_to_close_timeout": timedelta(days=1),
    "heartbeat_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)
    ),
}
"""A frozen release waits for the freezes holding it to change: one activity per change, heartbeating each
poll (``freeze_poll_seconds``, at most 10 s: well inside the heartbeat timeout); a lost worker is
noticed within the heartbeat timeout and another picks the wait up; a day-long attempt starts again."""

FREEZE_TELL: CallOptions = {
    "start_to_close_timeout": timedelta(minutes=2),
    "heartbeat_timeout": timedelta(seconds=30),
    "retry_policy": _retry(3, maximum=5.0),
}
"""After a freeze or an unfreeze, signal every running release (listed through visibility) to read
the freezes: a person waits for it, so a few quick tries; releases not told read them before their
next wave anyway."""
