"""``make demo``: the local stack, then a good release promoted and a bad one rolled back.

Starts (or reuses) the sandbox in ``--dir`` exactly as ``make sandbox`` does
(:func:`sandbox.stack.up` with Temporal: emulated clusters, traffic, Prometheus, a Temporal dev
server with its UI, and a ringmaster worker running the current code). Then submits the demo plan
twice through the real CLI, as CI would, with the settings ``source DIR/env`` gives a shell:
``v2`` is promoted through every ring; ``v3-bad`` fails its gate in the first ring and is rolled
back automatically. Everything keeps running afterwards for a look in the Temporal UI;
``make down`` (``python -m sandbox down``) stops it all.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from sandbox import stack
from sandbox import temporal as sandbox_temporal

PLAN = Path("deploy/examples/demo-plan.yaml")


def _say(text: str) -> None:
    print(f"\n\x1b[1m== {text}\x1b[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)  # noqa: T201


def _ringmaster(env: dict[str, str], *args: str) -> int:
    print("$ ringmaster " + " ".join(args), flush=True)  # noqa: T201
    argv = [sys.executable, "-m", "ringmaster.cli", *args]
    return subprocess.run(argv, env=env, check=False).returncode


def main() -> int:
    """Run the demo; the exit code is 0 when both releases ended as expected."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=stack.DEFAULT_DIR)
    args = parser.parse_args()
    directory: Path = args.dir

    _say("starting (or reusing) the local stack: emulated clusters, Prometheus, Temporal, a worker")
    try:
        sandbox = stack.up(directory, stack.DEFAULT_FLEET, temporal=True)
    except stack.SandboxError as err:
        print(f"error: {err}", file=sys.stderr)  # noqa: T201
        return 3
    print(f"clusters: {sandbox.url}   kubeconfig: {sandbox.kubeconfig}")  # noqa: T201
    print(f"Temporal: {sandbox.temporal}   UI: {sandbox.ui}")  # noqa: T201

    env = {
        **os.environ,
        **sandbox_temporal.client_env(
            address=sandbox.temporal,
            ui=sandbox.ui,
            fleet=sandbox.fleet,
            kubeconfig=sandbox.kubeconfig,
            identity=sandbox.identity,  # requests are signed with alice's key, as from a shell
        ),
        "GITHUB_ACTOR": "demo-ci",
    }
    release = [
        "--image",
        "registry.eu.example.com/api:{v}",
        "--wait",
        "--rerun",
        "--fleet",
        str(sandbox.fleet),
    ]

    _say("a good version: promoted through internal -> beta -> broad")
    good = _ringmaster(env, "submit", str(PLAN), "--version", "v2", *[a.format(v="v2") for a in release])
    _say("a bad version: its gate fails in the first ring and it rolls back by itself")
    bad = _ringmaster(
        env, "submit", str(PLAN), "--version", "v3-bad", *[a.format(v="v3-bad") for a in release]
    )
    _ringmaster(env, "status", "api:v3-bad")

    _say("done")
    print(f"From a shell: source {sandbox.env}")  # noqa: T201
    print(f"good release exit code {good} (0 = succeeded); bad release exit code {bad} (1 = rolled back)")  # noqa: T201
    print(f"Look around in the Temporal UI: {sandbox.ui}   Stop everything with: make down")  # noqa: T201
    return 0 if (good, bad) == (0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
