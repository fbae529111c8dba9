"""The ``ringmaster`` command line: one Typer app; each group of commands lives in its own module.

- :mod:`~ringmaster.cli.plans`: ``validate`` and ``plan``, checking a plan against a fleet (no Temporal);
- :mod:`~ringmaster.cli.releases`: ``submit`` and the controls ``hold``, ``resume``, ``abort``, ``approve``;
- :mod:`~ringmaster.cli.undo`: ``rollback`` and ``retry``, undoing a release that already ended;
- :mod:`~ringmaster.cli.freezes`: ``freeze``, ``unfreeze`` and ``freezes``, stopping the line;
- :mod:`~ringmaster.cli.status`: ``status``, and the progress views ``submit --wait`` shows;
- :mod:`~ringmaster.cli.listing`: ``list``, the releases matching filters, from visibility alone;
- :mod:`~ringmaster.cli.audit`: ``audit``, a release run's audit record, from history or the archive;
- :mod:`~ringmaster.cli.worker`: ``worker``;
- :mod:`~ringmaster.cli.policy`: ``policy check``, what the authorization policy allows (no Temporal);
- :mod:`~ringmaster.cli.flags`: ``flags stale``, flags fully on for the whole fleet for long (no Temporal);
- :mod:`~ringmaster.cli.deployment`: ``deployment current|drained``, the worker's versions;
- :mod:`~ringmaster.cli.replay`: ``replay``, running releases' histories against this code;
- :mod:`~ringmaster.cli.patches`: ``patches``, which ``workflow.patched`` ids open runs still need.

Each module lists its commands in ``COMMANDS``; this module registers them all the same way. Shared
options (``--output``, ``--by``, the release argument) are in :mod:`~ringmaster.cli.options`; the
Temporal client side of the release commands in :mod:`~ringmaster.cli._client`. Exit codes:
:mod:`ringmaster.exitcodes`.
"""

from __future__ import annotations

import typer

from ringmaster.cli import (
    audit,
    deployment,
    flags,
    freezes,
    listing,
    patches,
    plans,
    policy,
    releases,
    replay,
    status,
    undo,
    worker,
)

app = typer.Typer(
    name="ringmaster",
    help="Multi-region ring deployments: durable releases with residency and metric gates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _command in (
    *plans.COMMANDS,
    *releases.COMMANDS,
    *undo.COMMANDS,
    *freezes.COMMANDS,
    *status.COMMANDS,
    *audit.COMMANDS,
    *worker.COMMANDS,
    *replay.COMMANDS,
    *patches.COMMANDS,
):
    app.command()(_command)
for _command in listing.COMMANDS:
    app.command("list")(_command)  # `list` is a builtin's name, so the function has another
app.add_typer(policy.app)
app.add_typer(flags.app)
app.add_typer(deployment.app)


def main() -> None:
    """Console-script entry point."""
    app()
