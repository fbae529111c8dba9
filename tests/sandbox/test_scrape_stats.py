"""Whether the sandbox's Prometheus servers keep up: :func:`sandbox.prometheus.scrape_stats` on the
metric-gate sandbox (two EU clusters, one US, real Prometheus servers), and ``status`` showing it."""

from __future__ import annotations

from sandbox import prometheus as sandbox_prometheus
from sandbox.processes import free_port
from tests.sandbox.support import sandbox_cli
from tests.support.prometheus import MetricsSandbox
from tests.support.waiting import eventually

CLUSTERS = {"EU": 2, "US": 1}
"""Clusters each jurisdiction's Prometheus scrapes in the metric-gate sandbox."""


class TestScrapeStats:
    def test_reports_targets_durations_samples_and_series(self, metrics_sandbox: MetricsSandbox) -> None:
        """Each Prometheus has its jurisdiction's clusters up, scrapes taking time, samples and series."""
        for jurisdiction, url in metrics_sandbox.prometheus.items():

            def stats(url: str = url) -> sandbox_prometheus.ScrapeStats | None:
                return sandbox_prometheus.scrape_stats(url)

            found = eventually(
                stats,
                lambda s: s is not None and s.targets_up == s.targets_total and s.samples_scraped > 0,
                what=f"{jurisdiction} targets up",
            )
            assert found is not None
            assert found.targets_total == CLUSTERS[jurisdiction]
            assert found.scrape_seconds_max >= found.scrape_seconds_mean > 0
            assert found.scrape_seconds_max < 0.8  # the scrape timeout of a 1 s interval
            assert found.head_series >= found.samples_scraped

    def test_a_prometheus_that_does_not_answer_has_no_stats(self) -> None:
        """Nothing listening at the URL gives None, not zeros that would read as an idle server."""
        assert sandbox_prometheus.scrape_stats(f"http://127.0.0.1:{free_port()}", timeout=0.5) is None

    def test_status_shows_each_prometheus_keeping_up(self, metrics_sandbox: MetricsSandbox) -> None:
        """python -m sandbox status prints a scrape line under each jurisdiction's Prometheus."""
        done = sandbox_cli("status", "--dir", str(metrics_sandbox.directory))
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        for jurisdiction, count in CLUSTERS.items():
            name = sandbox_prometheus.process_name(jurisdiction)
            at = next(i for i, line in enumerate(lines) if line.startswith(f"{name}: running"))
            assert lines[at + 1].startswith(f"  scrapes: targets {count}/{count} up, scrape max "), lines
            assert "head series" in lines[at + 1]
