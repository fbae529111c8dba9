"""Release commands: ``submit``, ``status``, ``hold``, ``resume``, ``abort``, ``approve`` and ``worker``.

Only the declarations live here; the work is in :mod:`ringmaster._release_commands`, imported when a
command runs, so ``ringmaster validate`` and ``ringmaster sandbox`` never pay for importing Temporal.
Exit codes: :mod:`ringmaster.exitcodes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

OutputOpt = Annotated[str, typer.Option("--output", "-o", help="text or json")]
ByOpt = Annotated[
    str | None,
    typer.Option("--by", help="Who acts; default $GITHUB_ACTOR, $GITLAB_USER_LOGIN, else the system user."),
]
ReleaseArg = Annotated[str, typer.Argument(help="service:version, or the release's workflow id.")]


def register(app: typer.Typer) -> None:
    """Add the release commands to the ringmaster CLI."""

    @app.command()
    def submit(
        plan: Annotated[Path, typer.Argument(help="The release plan (YAML).")],
        version: Annotated[str, typer.Option("--version", help="The version to release, e.g. v2.")],
        image: Annotated[str, typer.Option("--image", help="The container image of that version.")],
        wait: Annotated[bool, typer.Option("--wait", help="Follow the release until it ends.")] = False,
        timeout: Annotated[
            str | None,
            typer.Option("--timeout", help="With --wait: stop waiting after this long (e.g. 30m)."),
        ] = None,
        supersede: Annotated[
            bool,
            typer.Option("--supersede", help="Abort the service's running release (with rollback) first."),
        ] = False,
        rerun: Annotated[
            bool, typer.Option("--rerun", help="Run an ended release of this version again.")
        ] = False,
        fleet: Annotated[
            Path | None, typer.Option("--fleet", help="Validate fully against this fleet before submitting.")
        ] = None,
        by: ByOpt = None,
        output: OutputOpt = "text",
    ) -> None:
        """Validate a plan and start its release; with --wait, follow it to the end."""
        from ringmaster import _release_commands as impl  # noqa: PLC0415 - keep other commands fast

        impl.submit(
            plan,
            version=version,
            image=image,
            wait=wait,
            timeout=timeout,
            supersede=supersede,
            rerun=rerun,
            fleet=fleet,
            by=by,
            output=output,
        )

    @app.command()
    def status(release: ReleaseArg, output: OutputOpt = "text") -> None:
        """Phase, ring, every cluster, live gate measurements and the operator log of a release."""
        from ringmaster import _release_commands as impl  # noqa: PLC0415

        impl.status(release, output)

    @app.command()
    def hold(
        release: ReleaseArg,
        reason: Annotated[str, typer.Option("--reason", help="Why; shown in status and the UI.")],
        by: ByOpt = None,
        output: OutputOpt = "text",
    ) -> None:
        """Start no new step, wave, ring or promotion until resumed; gates keep judging."""
        from ringmaster import _release_commands as impl  # noqa: PLC0415

        impl.control(release, output, "hold", by, reason, None, None)

    @app.command()
    def resume(release: ReleaseArg, by: ByOpt = None, output: OutputOpt = "text") -> None:
        """Lift a hold (an operator's, or one placed by an inconclusive gate)."""
        from ringmaster import _release_commands as impl  # noqa: PLC0415

        impl.control(release, output, "resume", by, None, None, None)

    @app.command()
    def abort(
        release: ReleaseArg,
        reason: Annotated[str, typer.Option("--reason", help="Why; recorded with the rollback.")],
        by: ByOpt = None,
        output: OutputOpt = "text",
    ) -> None:
        """Roll back every touched cluster, newest first, and end the release aborted."""
        from ringmaster import _release_commands as impl  # noqa: PLC0415

        impl.control(release, output, "abort", by, reason, None, None)

    @app.command()
    def approve(
        release: ReleaseArg,
        ring: Annotated[str, typer.Option("--ring", help="The ring waiting for approval.")],
        cluster: Annotated[
            str | None,
            typer.Option("--cluster", help="A cluster waiting at pause: {} or a manual promotion."),
        ] = None,
        by: ByOpt = None,
        output: OutputOpt = "text",
    ) -> None:
        """Approve a ring, or one cluster's approval step."""
        from ringmaster import _release_commands as impl  # noqa: PLC0415

        impl.control(release, output, "approve", by, None, ring, cluster)

    @app.command(name="worker")
    def worker_command() -> None:
        """Run a worker: the release workflows and every activity, against the fleet in the settings."""
        from ringmaster import _release_commands as impl  # noqa: PLC0415

        impl.run_worker()
