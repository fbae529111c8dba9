"""The ``archive_release`` activity: a release run's audit record, written once to the archive.

At the end of each release run (after its final notification), the release asks this activity to
build its audit record (:mod:`activities.audit`) from its own history, its children's and its final
record (read with the release's ``status`` query: the run is still open, waiting on this activity),
and to write it to the worker's archive (:mod:`activities.archive`) under :func:`key`, if absent.
Never overwritten: a retried attempt that finds the document already there reports it as archived.
The archive outlives Temporal's retention; ``ringmaster audit`` reads it once history is gone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.client import Client

from activities import _history, audit
from activities.archive import AlreadyArchived, ArchiveStore
from policies import messages


class ArchiveInput(messages.Message):
    """Which release run to archive."""

    workflow_id: str
    run_id: str
    service: str
    version: str


class ArchiveResult(messages.Message):
    """Where the record went."""

    where: str = ""
    """The archive (``dir:...``, ``s3://...``); empty when the worker has none."""
    key: str = ""
    written: bool = False
    """False when an earlier attempt had written it already, or there is no archive."""


def key(service: str, version: str, run_id: str) -> str:
    """The archive key of one release run's record."""
    return f"releases/{service}/{version}/{run_id}.json"


def prefix(service: str, version: str) -> str:
    """The archive prefix of every run of one release."""
    return f"releases/{service}/{version}/"


class ArchiveActivities:
    """Builds and archives audit records through the worker's Temporal client and archive."""

    def __init__(self, client: Client, store: ArchiveStore | None) -> None:
        self._client = client
        self._store = store

    @property
    def configured(self) -> bool:
        """Whether this worker has an archive (the release records that when it is prepared)."""
        return self._store is not None

    @activity.defn(name="archive_release")
    async def archive_release(self, inp: ArchiveInput) -> ArchiveResult:
        """Build the run's audit record and write it to the archive, if it is not there already."""
        store = self._store
        if store is None:
            return ArchiveResult()
        where = key(inp.service, inp.version, inp.run_id)
        if await asyncio.to_thread(store.get, where) is not None:
            return ArchiveResult(where=store.where, key=where)
        histories = await _history.read_release(
            self._client, inp.workflow_id, inp.run_id, progress=activity.heartbeat
        )
        handle = self._client.get_workflow_handle(inp.workflow_id, run_id=inp.run_id)
        record: Any = await handle.query("status")
        body = audit.build(histories, record if isinstance(record, dict) else None).model_dump_json(indent=2)
        try:
            await asyncio.to_thread(store.put_if_absent, where, body.encode())
        except AlreadyArchived:
            return ArchiveResult(where=store.where, key=where)
        activity.logger.info("audit record archived", extra={"key": where, "archive": store.where})
        return ArchiveResult(where=store.where, key=where, written=True)
