"""``python -m sandbox up|down|status``: the local stack's command line (see :mod:`sandbox.cli`)."""

from sandbox import cli

cli.main()
