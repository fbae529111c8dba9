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

from activities.models import FreezeCheck, FreezeCheckInput
from policies import freeze
from policies.freeze import Freeze, FreezeList

QUERY = "freezes"
"""The registry's query of every freeze in force (``FreezeRegistryWorkflow.freezes``)."""


class FreezeSource(Protocol):
    """Every freeze in force."""

    async def freezes(self) -> list[Freeze]:
        """The freezes in force now."""
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
