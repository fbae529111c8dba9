"""Generated fault scenarios on the local stack, judged on the clusters themselves.

A thin entry point to ``python -m sandbox.chaos`` (see its docstring for the options, the replay of a
failing seed and the exit codes); ``docs/reliability.md`` records the figures it prints.

    .venv/bin/python scripts/chaos.py --scenarios 200 --seed 1 --concurrency 4 --json chaos.json
"""

from __future__ import annotations

import sys

from sandbox.chaos.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
