"""``python -m tests.support.changed_release``: ``ringmaster`` with a nondeterministic release workflow.

The command line is ringmaster's, with :class:`tests.support.changed_workflow.ChangedReleaseWorkflow`
in place of the real ``ReleaseWorkflow``, as a worker built from a change made without a patch would
run it. ``ringmaster replay`` run through here must exit 6 naming such a release and the event.
"""

from __future__ import annotations

from ringmaster import registry
from tests.support.changed_workflow import ChangedReleaseWorkflow
from workflows.release import ReleaseWorkflow


def main() -> None:
    """Run the CLI with the changed workflow in place of the real one."""
    registry.WORKFLOWS = tuple(
        ChangedReleaseWorkflow if w is ReleaseWorkflow else w for w in registry.WORKFLOWS
    )
    from ringmaster.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
