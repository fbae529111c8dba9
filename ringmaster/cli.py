"""The ``ringmaster`` command line: one Typer app, commands contributed by the modules that own them.

Each group of commands lives in its own module (``_cli_plan``: validate, plan; ``_cli_release``:
submit, status and the operator controls) and exposes
``register(app)``; this module only assembles them.
"""

from __future__ import annotations

import typer

from ringmaster import _cli_plan, _cli_release

app = typer.Typer(
    name="ringmaster",
    help="Multi-region ring deployments: durable releases with residency and metric gates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (_cli_plan, _cli_release):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
