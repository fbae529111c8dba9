"""What a release tells people and keeps for auditors (patch ``accountable``).

- **Notifications.** When the release newly needs people (it waits for an approval, it holds) one
  ``notify`` activity goes out, started and never awaited on the way: a webhook that is slow or down
  delays nothing and fails nothing (the activity gives up by itself, and its failure is only logged).
  At the end, the final one (succeeded, rolled back, aborted, denied, failed) goes out and every
  notification still in flight is awaited, within the activities' own time limits, so the audit
  record holds every delivery.
- **The audit archive.** Then ``archive_release`` writes the run's audit record to the worker's
  archive, once. A failure to archive is logged and leaves the outcome as it is: the release's record
  says where it was archived, or nothing.

Whether the worker has webhooks and an archive is recorded when the release is prepared
(``PreparedRelease.notify`` and ``.archive``): a worker without them adds no event to the history.
Deterministic workflow code.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.archiving import ArchiveActivities, ArchiveInput
    from activities.notify import (
        GateSummary,
        Notification,
        NotificationKind,
        NotifyActivities,
        NotifyInput,
        NotifyResult,
    )
    from workflows import _options as options
    from workflows.models import ReleaseStatus

ACCOUNTABLE = "accountable"
"""Patch id: notifications and the audit archive."""

FINAL_KINDS: dict[str, NotificationKind] = {
    "succeeded": "succeeded",
    "rolled-back": "rolled-back",
    "aborted": "aborted",
    "denied": "denied",
    "failed": "failed",
}


class Accounts:
    """A release's notifications in flight and its archiving."""

    def __init__(self) -> None:
        self.notify = False
        self.archive = False
        self._sent: tuple[str, ...] | None = None
        self._count = 0
        self._flying: list[workflow.ActivityHandle[NotifyResult]] = []

    def watch(self, phase: str, record: ReleaseStatus, full: Callable[[], ReleaseStatus]) -> None:
        """Notify when the release newly needs people: an approval awaited, a hold (once each).

        ``record`` is the release's own record (cheap to look at, on every publish); ``full`` the
        status as ``status`` answers it (with the phase and hold reasons), built only to send.
        """
        if not self.notify:
            return
        key: tuple[str, ...] | None = None
        if phase == "awaiting-approval":
            waiting = [c.name for c in record.clusters if c.state == "awaiting-approval"]
            # Just approved, the phase lags a moment behind: nothing waits, nobody is told.
            if record.waiting_for or waiting:
                key = ("awaiting-approval", record.waiting_for, *waiting)
        elif phase == "holding":
            key = ("holding",)
        if key == self._sent:
            return
        self._sent = key
        if key is None:
            return
        status = full()
        if phase == "awaiting-approval":
            waiting_clusters = ", ".join(c.name for c in status.clusters if c.state == "awaiting-approval")
            self._send("awaiting-approval", status, status.waiting_for or f"approval of {waiting_clusters}")
        else:
            self._send("holding", status, status.hold_reason)

    def _send(self, kind: NotificationKind, status: ReleaseStatus, reason: str) -> None:
        info = workflow.info()
        self._count += 1
        gate = _gate(status)
        waiting = [c.name for c in status.clusters if c.state == "awaiting-approval"]
        notification = Notification(
            id=f"{info.workflow_id}/{info.run_id}/{self._count}",
            kind=kind,
            release=status.release,
            service=status.service,
            version=status.version,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            phase=status.phase,
            reason=reason,
            ring=status.ring,
            cluster=(gate.cluster if gate else "") or (waiting[0] if waiting else ""),
            waiting_for=status.waiting_for,
            gate=gate,
            at=workflow.now(),
        )
        self._flying.append(
            workflow.start_activity_method(
                NotifyActivities.notify,
                NotifyInput(notification=notification),
                summary=f"notify: {status.release} {kind}",
                **options.NOTIFY,
            )
        )

    async def close(self, status: ReleaseStatus) -> str:
        """The final notification and every one in flight, then the archive; where it was archived."""
        kind = FINAL_KINDS.get(status.phase)
        if self.notify and kind is not None:
            self._send(kind, status, status.reason)
        for handle in self._flying:
            try:
                await handle
            except ActivityError as err:
                workflow.logger.warning("a notification could not be sent: %s", err.cause or err)
        self._flying.clear()
        if not self.archive:
            return ""
        info = workflow.info()
        try:
            result = await workflow.execute_activity_method(
                ArchiveActivities.archive_release,
                ArchiveInput(
                    workflow_id=info.workflow_id,
                    run_id=info.run_id,
                    service=status.service,
                    version=status.version,
                ),
                summary="write the audit record to the archive",
                **options.ARCHIVE,
            )
        except ActivityError as err:
            workflow.logger.warning("the audit record could not be archived: %s", err.cause or err)
            return ""
        return f"{result.where}/{result.key}" if result.key else ""


def _gate(status: ReleaseStatus) -> GateSummary | None:
    """The gate people should see: a failed one first, else an inconclusive one."""
    for wanted in ("failed", "inconclusive"):
        for c in status.clusters:
            if c.gate is not None and c.gate.status == wanted:
                g = c.gate
                return GateSummary(
                    metric=g.metric or "", status=g.status, value=g.value, bound=g.bound, cluster=c.name
                )
    return None
