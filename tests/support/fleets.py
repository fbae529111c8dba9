"""The fleets tests run on: the committed example fleet and plan, and small fleets written as text.

The example (``deploy/examples/fleet.yaml``, seven clusters in four regions) is what the workflow,
CLI, end-to-end and policy tests use. The small fleets are for tests that start real servers per
cluster (emulator, Prometheus): one or two regions (``eu-west-1`` in the EU, ``us-east-1`` in the
US), the clusters a test names, and the hosts of each jurisdiction present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from policies import loading
from policies.fleet import Fleet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"
EXAMPLE_FLEET = EXAMPLES / "fleet.yaml"
EXAMPLE_PLAN = EXAMPLES / "plan.yaml"
FLEET_DATA: dict[str, Any] = yaml.safe_load(EXAMPLE_FLEET.read_text())
"""The example fleet as the dictionary YAML gives (copy before changing it)."""
PLAN_DATA: dict[str, Any] = yaml.safe_load(EXAMPLE_PLAN.read_text())
"""The example plan as the dictionary YAML gives (copy before changing it)."""
EXAMPLE_FLAG_PLAN = EXAMPLES / "flag-plan.yaml"
FLAG_PLAN_DATA: dict[str, Any] = yaml.safe_load(EXAMPLE_FLAG_PLAN.read_text())
"""The example feature-flag plan as the dictionary YAML gives (copy before changing it)."""

REGIONS = {
    "eu-west-1": ("EU", "Europe/Dublin"),
    "us-east-1": ("US", "America/New_York"),
}
"""The regions a small fleet may use: jurisdiction and time zone."""


def example_fleet() -> Fleet:
    """The example fleet, loaded."""
    return loading.load_fleet(EXAMPLE_FLEET)


def _flow(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{key}: {value}" for key, value in labels.items()) + "}"


def small_fleet(*clusters: tuple[str, str, str, dict[str, str] | None]) -> str:
    """Fleet YAML of ``(name, region, kubeContext, labels)`` cluster rows, with the regions they use."""
    used = [name for name in REGIONS if any(row[1] == name for row in clusters)]
    lines = ["apiVersion: ringmaster.dev/v1", "kind: Fleet", "regions:"]
    for name in used:
        jurisdiction, timezone = REGIONS[name]
        prometheus = f"http://prometheus.{jurisdiction.lower()}.example.com:9090"
        lines.append(
            f"  - {{name: {name}, jurisdiction: {jurisdiction}, timezone: {timezone},"
            f' prometheus: "{prometheus}"}}'
        )
    lines.append("clusters:")
    for name, region, context, labels in clusters:
        tail = "" if labels is None else f", labels: {_flow(labels)}"
        lines.append(f"  - {{name: {name}, region: {region}, kubeContext: {context}{tail}}}")
    lines.append("hosts:")
    for jurisdiction in dict.fromkeys(REGIONS[name][0] for name in used):
        lines.append(f'  - {{match: "*.{jurisdiction.lower()}.example.com", jurisdiction: {jurisdiction}}}')
    return "\n".join(lines) + "\n"


PUBLIC = {"audience": "public"}

TWO_CLUSTERS = small_fleet(
    ("euw1-prod", "eu-west-1", "prod-eu", PUBLIC), ("use1-prod", "us-east-1", "prod-us", PUBLIC)
)
"""One public cluster per jurisdiction, reached through contexts named apart from the clusters."""

METRICS_FLEET = small_fleet(
    ("euw1-canary", "eu-west-1", "euw1-canary", {"audience": "internal"}),
    ("euw1-prod", "eu-west-1", "euw1-prod", PUBLIC),
    ("use1-prod", "us-east-1", "use1-prod", PUBLIC),
)
"""Two EU clusters (internal and public) and a US one: the metric-gate tests' sandbox."""


def one_cluster(name: str, context: str) -> Fleet:
    """A fleet of one unlabelled EU cluster ``name``, reached through ``context``."""
    return loading.parse_fleet(small_fleet((name, "eu-west-1", context, None)), "fleet.yaml")
