"""A real worker process over the test fakes: for tests that SIGKILL a worker and start another.

``python -m tests.support.fake_worker --state FILE`` runs the production worker
(:func:`ringmaster.worker.run`: every workflow and activity, signals, graceful shutdown) with its
settings from ``RINGMASTER_*`` and ``TEMPORAL_*`` as ``ringmaster worker`` reads them, but over
:class:`tests.support.fakes.FileClusterBackend` (clusters in a JSON file that every worker process
shares) and :class:`tests.support.fakes.FakeMetrics`.
The product has no such switch: this entry point is the only way to run a worker on the fakes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from policies import loading
from ringmaster import logs, temporal, worker
from ringmaster.settings import Settings
from tests.support.fakes import FakeMetrics, FileClusterBackend


def main() -> None:
    """Run until SIGTERM; exit through ``os._exit`` as the CLI does (sdk-python#300)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state", type=Path, required=True, help="The fake clusters' state file.")
    args = parser.parse_args()
    settings = Settings()
    fleet = loading.load_fleet(settings.fleet)
    logs.configure()

    async def serve() -> None:
        client = await temporal.connect(settings)
        await worker.run(client, settings, fleet, FileClusterBackend(args.state, fleet), FakeMetrics())

    asyncio.run(serve())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
