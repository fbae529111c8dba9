"""The example alerting rules of ``deploy/alerts``, and the metric names their expressions read."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "alerts"
RULES = ALERTS / "ringmaster-rules.yaml"


def metric_names(expr: str) -> set[str]:
    """The ``ringmaster_*`` and ``temporal_*`` series an expression reads, histogram suffixes removed."""
    names = set(re.findall(r"\b((?:ringmaster|temporal)_[a-z_]+)", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def rule_names() -> set[str]:
    """Every such series read by any rule of the file."""
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return {n for group in document["groups"] for rule in group["rules"] for n in metric_names(rule["expr"])}
