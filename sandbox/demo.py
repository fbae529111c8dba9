"""``make demo``: the local stack, then a good release approved by a second person and promoted, and a
bad one rolled back.

Starts (or reuses) the sandbox in ``--dir`` exactly as ``make sandbox`` does
(:func:`sandbox.stack.up` with Temporal: emulated clusters, traffic, Prometheus, a Temporal dev
server with its UI, and a ringmaster worker running the current code and verifying who asks). Then
drives the demo plan through the real CLI, as CI and people would, with the settings ``source
DIR/env`` gives a shell (requests signed with alice's key). ``v2`` is submitted without waiting;
its beta ring requires four eyes, so once it waits for approval alice's own approval is refused
(exit 2) and bob approves with his key (``--sign-with DIR/identity/bob``); ``status`` shows who
approved and how the worker verified it, and submitting ``v2`` again with ``--wait`` follows the
running release to its end. ``v3-bad`` fails its gate in the first ring and is rolled back
automatically. Then feature flags (:mod:`sandbox.demoflags`): ``v4`` lands with the feature flag
``checkout-v2`` off and turns it on ring by ring (internal in the EU, beta in the EU and the US, each
cluster's rollout in its jurisdiction's Unleash), and ``v4`` again turns on ``checkout-v3-bad``,
whose flag-on requests fail: its gate fails, the flag is restored in Unleash within seconds, and the
Deployment is never touched. Everything keeps running afterwards for a look in the Temporal UI;
``make down`` (``python -m sandbox down``) stops it all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sandbox import demoflags, stack
from sandbox import temporal as sandbox_temporal
from workflows.models import TERMINAL_PHASES

PLAN = Path("deploy/examples/demo-plan.yaml")
POLL_SECONDS = 2.0
APPROVAL_TIMEOUT = 300.0
"""Seconds the demo waits for v2's beta ring to ask for approval (internal deploys and bakes first)."""


def _say(text: str) -> None:
    print(f"\n\x1b[1m== {text}\x1b[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)  # noqa: T201


def _ringmaster(env: dict[str, str], *args: str) -> int:
    print("$ ringmaster " + " ".join(args), flush=True)  # noqa: T201
    argv = [sys.executable, "-m", "ringmaster.cli", *args]
    return subprocess.run(argv, env=env, check=False).returncode


def _await_phase(env: dict[str, str], release: str, phase: str, timeout: float) -> bool:
    """Poll ``ringmaster status RELEASE --output json`` until the release is in ``phase``, printing
    each change; False when it ended first or ``timeout`` seconds passed."""
    print(f"$ ringmaster status {release} --output json   # every {POLL_SECONDS:.0f}s, until {phase}")  # noqa: T201
    argv = [sys.executable, "-m", "ringmaster.cli", "status", release, "--output", "json"]
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            status = json.loads(done.stdout)
            clusters = " ".join(
                f"{c['name']}={c['state']}" for c in status["clusters"] if c["state"] != "pending"
            )
            line = f"[{status['phase']}] ring={status['ring'] or '-'} {clusters}".rstrip()
            if line != last:
                print(line, flush=True)  # noqa: T201
                last = line
            if status["phase"] == phase:
                return True
            if status["phase"] in TERMINAL_PHASES:
                return False
        time.sleep(POLL_SECONDS)
    print(f"still not {phase} after {timeout:.0f}s", flush=True)  # noqa: T201
    return False


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
    if sandbox.identity is None:  # a stack with Temporal always has its people's keys
        print("error: the stack has no DIR/identity/", file=sys.stderr)  # noqa: T201
        return 3
    bob_key = str(sandbox.identity.key("bob"))
    release = ["--image", "registry.eu.example.com/api:{v}", "--fleet", str(sandbox.fleet)]
    good_args = ["submit", str(PLAN), "--version", "v2", *[a.format(v="v2") for a in release]]

    _say("a good version: internal, then beta waits for a second person's approval, then broad")
    submitted = _ringmaster(env, *good_args, "--rerun")
    if submitted != 0 or not _await_phase(env, "api:v2", "awaiting-approval", APPROVAL_TIMEOUT):
        return 1
    _ringmaster(env, "status", "api:v2")
    _say("alice submitted v2, so her own approval is refused: beta requires four eyes")
    own = _ringmaster(env, "approve", "api:v2", "--ring", "beta")
    print(f"exit code {own} (2 = a refused control)")  # noqa: T201
    _say("bob approves, signing with his own key; the worker verifies the signature")
    bobs = _ringmaster(env, "approve", "api:v2", "--ring", "beta", "--sign-with", bob_key)
    if bobs != 0:
        _ringmaster(env, "abort", "api:v2", "--reason", "the demo's approval failed")
        return 1
    _ringmaster(env, "status", "api:v2")
    _say("following v2 to its end: submitting it again returns the running release, and --wait follows it")
    good = _ringmaster(env, *good_args, "--wait")

    _say("a bad version: its gate fails in the first ring and it rolls back by itself")
    bad = _ringmaster(
        env,
        "submit",
        str(PLAN),
        "--version",
        "v3-bad",
        *[a.format(v="v3-bad") for a in release],
        "--wait",
        "--rerun",
    )
    _ringmaster(env, "status", "api:v3-bad")
    _say("its audit record, as the worker archived it and Temporal's history tells it")
    _ringmaster(env, "audit", "api:v3-bad")

    flag_good, flag_bad = demoflags.run(sandbox, lambda *a: _ringmaster(env, *a), _say)

    _say("done")
    print(f"From a shell: source {sandbox.env}")  # noqa: T201
    print(  # noqa: T201
        f"good release exit code {good} (0 = succeeded); alice approving her own release exit code {own} "
        f"(2 = refused); bad release exit code {bad} (1 = rolled back); flag release exit code {flag_good}"
        f" (0 = promoted); bad flag release exit code {flag_bad} (1 = its flag restored)"
    )
    print(f"Look around in the Temporal UI: {sandbox.ui}   Stop everything with: make down")  # noqa: T201
    return 0 if (good, own, bad, flag_good, flag_bad) == (0, 2, 1, 0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
