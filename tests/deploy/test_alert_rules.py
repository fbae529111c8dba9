"""The example alerting rules in ``deploy/alerts`` load in Prometheus and fire when they should.

``promtool`` (from the Debian ``prometheus`` package, beside the server the sandbox runs) checks the
rules' syntax and runs their unit tests (``ringmaster-rules.test.yaml``: input series, expected
alerts). That every metric they read is one a real worker exports is checked against a running
worker in ``tests/e2e/test_worker_telemetry.py``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from activities import telemetry
from tests.support.alerts import ALERTS, RULES, rule_names
from workflows import _metrics


def promtool() -> str:
    """The promtool binary, or skip naming the fix."""
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        pytest.skip("promtool is not installed: run `make install` (the Debian prometheus package)")
    return found


class TestAlertRules:
    def test_promtool_accepts_the_rules(self) -> None:
        """The file is valid Prometheus rules: each expression parses, each alert has its fields."""
        done = subprocess.run(
            [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS: 9 rules found" in done.stdout

    def test_the_rules_fire_on_their_unit_tests_series(self) -> None:
        """A failed rollback, a cluster down for 5 minutes, no worker scraped and starved queries
        each raise their alert with the expected labels; the healthy series beside them raise none."""
        done = subprocess.run(
            [promtool(), "test", "rules", "ringmaster-rules.test.yaml"],
            capture_output=True,
            text=True,
            check=False,
            cwd=ALERTS,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def test_ringmaster_metrics_the_rules_read_are_ones_ringmaster_records(self) -> None:
        """A renamed metric would silently disable its alert: every ``ringmaster_*`` name the rules
        read is one the workflows or the activities record."""
        recorded = {
            _metrics.RELEASE_PHASES,
            _metrics.CLUSTER_STEPS,
            _metrics.CLUSTER_ROLLOUTS,
            _metrics.GATE_VERDICTS,
            _metrics.ROLLBACKS,
            telemetry.KUBERNETES_REQUESTS,
            telemetry.PROMETHEUS_QUERY_LATENCY,
            telemetry.FLAG_CHANGES,
            telemetry.DEPENDENCY_UP,
            telemetry.DEPENDENCY_CHECK_LATENCY,
        }
        read = {n for n in rule_names() if n.startswith("ringmaster_")}
        assert read, "the rules read ringmaster's metrics"
        assert read <= recorded, read - recorded
