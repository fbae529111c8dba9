"""Task queues: where each kind of activity is polled, derived from the workflow's own queue.

Analysis stretches (one ``analyze`` activity per canary step or bake, running for minutes or hours)
go to their own queue, with their own slots in the worker, so however many are running they never
take the slots that cluster changes and rollbacks need. The name is derived from the workflow's
queue, deterministically, so every workflow on queue ``q`` schedules its stretches on
``analysis_queue(q)`` and one worker process polls both (``ringmaster.worker``).

A frozen release's watch (``check_freezes`` waiting for the unfreeze, held for the whole freeze)
has a queue of its own for the same reason: however many releases a freeze holds, their watches take
neither the cluster changes' slots (a failing gate still rolls back) nor the analysis stretches'.
"""

from __future__ import annotations


def analysis_queue(task_queue: str) -> str:
    """The queue of the analysis stretches of workflows running on ``task_queue``."""
    return f"{task_queue}-analysis"


def freeze_queue(task_queue: str) -> str:
    """The queue of the freeze watches of frozen releases running on ``task_queue``."""
    return f"{task_queue}-freezes"
