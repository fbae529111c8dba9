"""Reading the freeze registry for a release or a submission: which freezes hold it, and when that changes.

The registry is a workflow (``workflows.freezes``); workflows never query another workflow, so they
ask through these activities, whose answers are history: a release replays the freezes it saw then.
:class:`TemporalFreezes` queries the registry through the worker's Temporal client; a registry that
was never started has no freeze. Waiting for a change is one heartbeating activity per change, not a
timer per poll, so a frozen release's history stays flat however long the freeze.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.models import FreezeCheck, FreezeCheckInput, FreezeNotice
from policies import freeze
from policies.freeze import Freeze, FreezeList

QUERY = "freezes"
"""The registry's query of every freeze in force (``FreezeRegistryWorkflow.freezes``)."""


SIGNAL = "freezes-changed"
"""The release's signal to read the freezes again (``ReleaseWorkflow.freezes_changed``)."""


class FreezeSource(Protocol):
    """Every freeze in force, and the running releases to tell when they change."""

    async def freezes(self) -> list[Freeze]:
        """The freezes in force now."""
        ...

    async def tell_releases(self, inp: FreezeNotice) -> int:
        """Prompt every running release of ``inp.task_queue`` to read the freezes; how many were told."""
        ...


class TemporalFreezes:
    """The freeze registry workflow ``workflow_id``, queried through ``client``."""

    def __init__(self, client: Client, workflow_id: str) -> None:
        self._client = client
        self._workflow_id = workflow_id

    async def freezes(self) -> list[Freeze]:
        """The registry's freezes; none when no registry was ever started."""
        handle = self._client.get_workflow_handle(self._workflow_id)
        try:
            answer: FreezeList = await handle.query(QUERY, result_type=FreezeList)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return []
            raise
        return list(answer.freezes)

    async def tell_releases(self, inp: FreezeNotice) -> int:
        """Signal every running release workflow of the task queue, as visibility lists them.

        Visibility can lag a release that started a moment ago: such a release read the freezes
        before its first step, reads them again before each wave, and missed nothing before that.
        """
        running = ["WorkflowType = 'ReleaseWorkflow'", "ExecutionStatus = 'Running'"]
        query = " AND ".join([*running, f"TaskQueue = '{inp.task_queue}'"])
        told = 0
        async for execution in self._client.list_workflows(query):
            try:
                await self._client.get_workflow_handle(execution.id, run_id=execution.run_id).signal(
                    SIGNAL, {"key": inp.key}
                )
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                continue  # it ended meanwhile
            told += 1
            activity.heartbeat(told)
        return told


class FreezeActivities:
    """Which freezes hold a release, from ``source``, polled every ``poll_seconds`` while waiting."""

    def __init__(self, source: FreezeSource, poll_seconds: float) -> None:
        self._source = source
        self._poll = poll_seconds

    @activity.defn(name="check_freezes")
    async def check(self, inp: FreezeCheckInput) -> FreezeCheck:
        """The freezes in force for the release; with ``known``, once they differ from it."""
        while True:
            found = FreezeCheck(
                freezes=freeze.in_force(await self._source.freezes(), inp.service, inp.regions)
            )
            if inp.known is None or found.keys != sorted(inp.known):
                return found
            activity.heartbeat()
            await asyncio.sleep(self._poll)

    @activity.defn(name="tell_releases_of_freezes")
    async def tell(self, inp: FreezeNotice) -> int:
        """Prompt every running release to read the freezes again (after a freeze or an unfreeze)."""
        return await self._source.tell_releases(inp)
