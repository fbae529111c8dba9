"""A release workflow changed without a patch, for ``tests.support.changed_release``.

Registered as ``ReleaseWorkflow``, it first sleeps a second before doing what the real one does:
every release started by the real code fails to replay against it (its first command was the
prepare activity, not a timer). A module of its own: the workflow sandbox imports it by name.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.release import ReleaseWorkflow

with workflow.unsafe.imports_passed_through():
    from workflows.models import ReleaseInput, ReleaseStatus


@workflow.defn(name="ReleaseWorkflow")
class ChangedReleaseWorkflow(ReleaseWorkflow):
    """The release workflow with an unpatched timer before everything else."""

    @workflow.run
    async def run(self, inp: ReleaseInput) -> ReleaseStatus:
        """Sleep, then run as the real one."""
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(inp)
