"""Production retry rules with minutes shrunk to fractions of a second, for tests of long outages.

The workflows read their call options when they call, from ``workflows._options``, which the
worker's sandbox passes through (``ringmaster.worker.RUNNER``): patching it in the test process
changes what an in-process worker's workflows schedule, and nothing else.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.common import RetryPolicy

from activities import errors
from workflows import _options as options


def shrink(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cluster calls give up a round after two quick attempts, and rounds come half a second apart."""
    quick = RetryPolicy(
        initial_interval=timedelta(milliseconds=100),
        backoff_coefficient=1.0,
        maximum_attempts=2,
        non_retryable_error_types=errors.NON_RETRYABLE_TYPES,
    )
    for call in (options.CLUSTER_CALL, options.ROLLBACK):
        monkeypatch.setitem(call, "retry_policy", quick)
    monkeypatch.setattr(options, "_retry", lambda *_a, **_k: quick)
    monkeypatch.setattr(options, "RETRY_PAUSE", timedelta(milliseconds=500))
    monkeypatch.setattr(options, "RETRY_PAUSE_MAX", timedelta(seconds=1))
