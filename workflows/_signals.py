"""Signals to other workflows whose outcome cannot be turned against the sender by its own cancellation.

Every signal ringmaster sends to another workflow is best-effort: a release's progress report from a
cluster, an order to a cluster child, an abort to an earlier run's cluster or to a superseded release.
The target may have closed, and then the signal fails; that failure is logged and the sender goes on.

Sent from the workflow's run task, one such signal can wedge the sender for good. When the sender's
cancellation (a parent-close policy after the release was terminated) and the signal's failure reach
the worker in one workflow task, the Python SDK (1.35) resolves the signal first, then cancels the
awaiting task and answers that with a ``cancel_signal_workflow`` command for a signal that has already
ended. Temporal's core rejects it: ``[TMPRL1100] Nondeterminism error: Invalid transition in state
machine``, on every retry of the task, so the cluster's rollback never ran (chaos seed 1123; the
stalled history is kept in ``tests/workflows/stalled``). The same race is filed upstream for
activities (temporalio/sdk-python#1813).

:func:`send` therefore sends the signal from a task of its own and awaits it through
``asyncio.shield``: Temporal cancels only the run task, so the signal's own await never sees the
cancellation and never asks to cancel the signal. The caller still gets its ``CancelledError`` and
handles its cancellation as before; the signal finishes on its own. A separate task emits its command
one step later than an inline await, after commands other code adds in the same activation, so the
new order sits behind the ``shielded-signals`` patch: histories recorded before it replay unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from temporalio import workflow

from workflows import _patches

PATCH = "shielded-signals"


async def send(deliver: Callable[[], Coroutine[Any, Any, None]], what: str) -> None:
    """Run ``deliver``, one signal to another workflow, out of reach of the caller's cancellation.

    Its failure (the target has closed) is raised to the caller as before. A cancellation of the
    caller while the signal is in flight is raised to the caller at once; the signal is left to
    finish on its own task, and a failure it ends with then is only logged.
    """
    if not _patches.patched(PATCH):
        await deliver()
        return
    task = asyncio.create_task(deliver())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(lambda t: _log_orphan(t, what))
        raise


def _log_orphan(task: asyncio.Task[None], what: str) -> None:
    if not task.cancelled() and (err := task.exception()) is not None:
        workflow.logger.info("%s not delivered after this workflow was cancelled: %s", what, err)
