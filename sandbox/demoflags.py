"""The demo's feature-flag story, told after its code releases (:mod:`sandbox.demo`, ``make demo``).

``v4`` is submitted with ``deploy/examples/demo-flag-plan.yaml``: each ring lands the code with the
feature flag ``checkout-v2`` off, then sets the flag's rollout for its clusters (50%, then 100% at
promotion) in its jurisdiction's Unleash, judged on the traffic simulator's flag-on requests (it
evaluates the flag with the Unleash SDK); the demo then shows each Unleash's strategies, one per
cluster. A person then creates ``checkout-v3-bad`` (off) in the EU Unleash, and ``v4`` is submitted
again with ``deploy/examples/demo-flag-bad-plan.yaml``, turning it on for half of
``euw1-internal``'s users: its flag-on requests fail 8%, the gate fails, and the rollback restores
the flag as it was. The demo shows how long the flag-on traffic lasted, the flag as Unleash has it
afterwards, and the Deployment's generation and image before and after: the same version was
running, so the Deployment is untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox import stack
from sandbox.apiserver.adminclient import AdminClient
from sandbox.trafficclient import TrafficClient
from sandbox.unleash import Server

GOOD_PLAN = Path("deploy/examples/demo-flag-plan.yaml")
BAD_PLAN = Path("deploy/examples/demo-flag-bad-plan.yaml")
VERSION = "v4"
GOOD_FLAG = "checkout-v2"
BAD_FLAG = "checkout-v3-bad"
CLUSTER = "euw1-internal"


def run(
    sandbox: stack.Sandbox, ringmaster: Callable[..., int], say: Callable[[str], None]
) -> tuple[int, int]:
    """Both flag releases through the CLI (``ringmaster`` runs one command, printing it); their exit codes."""
    release = ["--version", VERSION, "--image", f"registry.eu.example.com/api:{VERSION}"]
    release += ["--fleet", str(sandbox.fleet), "--wait", "--rerun"]

    say(
        f"a feature behind a flag: {VERSION} lands with {GOOD_FLAG} off, then the flag goes to 50% and 100%"
        " ring by ring (internal in the EU, beta in the EU and the US), judged on its flag-on requests"
    )
    good = ringmaster("submit", str(GOOD_PLAN), *release)
    for server in sandbox.unleash.values():
        print(f"{server.jurisdiction} Unleash: {_describe(server, GOOD_FLAG)}")  # noqa: T201

    say(
        f"a bad feature: a person creates {BAD_FLAG} in the EU Unleash (off); {VERSION}, already running in"
        f" {CLUSTER}, turns it on for half the cluster's users, and those requests fail 8%"
    )
    eu = sandbox.unleash["EU"]
    eu.admin().create(f"/api/admin/projects/{eu.project}/features", {"name": BAD_FLAG, "type": "release"})
    before = _deployment(sandbox.url)
    bad = ringmaster("submit", str(BAD_PLAN), *release)
    after = _deployment(sandbox.url)
    ringmaster("status", f"api:{VERSION}")
    on = TrafficClient(sandbox.traffic).served().get(CLUSTER, {}).get("features", {}).get(BAD_FLAG)
    lasted = f"{on['last'] - on['first']:.1f}s" if on else "no time (never on)"
    print(  # noqa: T201
        f"{BAD_FLAG} was on for {lasted} of {CLUSTER}'s traffic, the gate's detection included (initial"
        " delay, then two failed checks); restoring it took about a second of that"
    )
    print(f"EU Unleash now: {_describe(eu, BAD_FLAG)}")  # noqa: T201
    same = "untouched" if before == after else "CHANGED"
    print(f"Deployment api in {CLUSTER}: {before} before, {after} after: {same}")  # noqa: T201
    return good, bad


def _describe(server: Server, flag: str) -> str:
    """The flag in the server's environment: on or off, and each strategy's title and rollout."""
    found = server.admin().get(f"/api/admin/projects/{server.project}/features/{flag}") or {}
    env: dict[str, Any] = next(
        (e for e in found.get("environments", []) if e.get("name") == server.environment), {}
    )
    strategies = [
        f"{s.get('title') or s.get('name')} at {s.get('parameters', {}).get('rollout', '?')}%"
        for s in env.get("strategies", [])
    ]
    state = "on" if env.get("enabled") else "off"
    return f"{flag} {state} in {server.environment}; " + (", ".join(strategies) or "no strategy")


def _deployment(url: str) -> str:
    """The generation and image of Deployment api in ``CLUSTER``, from the emulator."""
    found: list[dict[str, Any]] = AdminClient(url, timeout=5.0).objects(
        CLUSTER, "Deployment", namespace="api"
    )
    api = next(d for d in found if d["metadata"]["name"] == "api")
    image = api["spec"]["template"]["spec"]["containers"][0]["image"]
    return f"generation {api['metadata'].get('generation')}, image {image}"
