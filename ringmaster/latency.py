"""Schedule-to-start latency in the worker's logs: how long each activity waited for a free slot.

Every activity the worker starts logs one ``activity started`` line (structlog JSON) with the
activity, its attempt, its task queue, ``schedule_to_start_ms`` and, when its input names them, the
release and cluster. Over ``schedule_to_start_warn_seconds`` it is a warning, ``activity started
late``: the worker's slots for that queue are all taken (or no worker polls it), which for cluster
changes means steps and rollbacks queue behind other work.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

log = structlog.get_logger("ringmaster.worker")


class LatencyInterceptor(Interceptor):
    """Logs each activity start with its schedule-to-start latency; warns above ``warn_after``."""

    def __init__(self, warn_after: timedelta) -> None:
        self._warn_after = warn_after

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap every activity execution."""
        return _Inbound(next, self._warn_after)


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, warn_after: timedelta) -> None:
        super().__init__(next)
        self._warn_after = warn_after

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        waited = info.started_time - info.current_attempt_scheduled_time
        fields: dict[str, Any] = {
            "activity": info.activity_type,
            "attempt": info.attempt,
            "task_queue": info.task_queue,
            "schedule_to_start_ms": round(waited.total_seconds() * 1000),
            "workflow_id": info.workflow_id,
            **subject(input.args),
        }
        if waited > self._warn_after:
            log.warning("activity started late", **fields)
        else:
            log.info("activity started", **fields)
        return await self.next.execute_activity(input)


def subject(args: Any) -> dict[str, str]:
    """The release and cluster an activity's input names (``release.name``, ``cluster.name``)."""
    found: dict[str, str] = {}
    inp = args[0] if args else None
    for key in ("release", "cluster"):
        name = getattr(getattr(inp, key, None), "name", None)
        if isinstance(name, str):
            found[key] = name
    return found
