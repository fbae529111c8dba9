"""How activities classify failures: transient ones retry, permanent ones fail at once.

Backends raise :class:`ClusterError`; the activity wrappers turn it into Temporal's
``ApplicationError`` with a stable ``type`` the workflows branch on.
"""

from __future__ import annotations

from typing import Literal

from temporalio import activity
from temporalio.exceptions import ApplicationError

ErrorKind = Literal["transient", "permanent", "ownership-conflict", "rollout-stuck"]

INVALID_PLAN = "InvalidPlan"
CLUSTER_PERMANENT = "ClusterPermanentError"
OWNERSHIP_CONFLICT = "OwnershipConflict"
ROLLOUT_STUCK = "RolloutStuck"
CLUSTER_TRANSIENT = "ClusterTransientError"
IDENTITY_MISCONFIGURED = "IdentityMisconfigured"
"""The worker's identity settings cannot verify anything (no allowed-signers file, no ssh-keygen)."""
IDENTITY_UNAVAILABLE = "IdentityUnavailable"
"""Verification needs something unreachable now (an issuer's keys): retryable."""
FLAG_SERVER_UNREACHABLE = "FlagServerUnreachable"
"""A flag server gave no answer, or 429 or 5xx: retryable; the workflow holds the cluster on it."""
FLAG_REQUEST_REFUSED = "FlagRequestRefused"
"""A flag server refused a request (400, 401, 403, 404), or the worker has no token for it: permanent."""
WORKER_SHUTDOWN = "WorkerShutdown"
"""An attempt cut short by its worker shutting down: retryable, so another worker resumes it."""

NON_RETRYABLE_TYPES = [
    INVALID_PLAN,
    CLUSTER_PERMANENT,
    OWNERSHIP_CONFLICT,
    ROLLOUT_STUCK,
    IDENTITY_MISCONFIGURED,
]
"""Listed in every retry policy too, so a backend that forgets ``non_retryable`` still stops."""


class ClusterError(Exception):
    """A cluster API failure, named after the cluster and object, with its retry class."""

    def __init__(self, message: str, *, kind: ErrorKind, cluster: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.cluster = cluster

    def to_application_error(self) -> ApplicationError:
        """The Temporal error the workflow sees."""
        error_type = {
            "transient": CLUSTER_TRANSIENT,
            "permanent": CLUSTER_PERMANENT,
            "ownership-conflict": OWNERSHIP_CONFLICT,
            "rollout-stuck": ROLLOUT_STUCK,
        }[self.kind]
        return ApplicationError(
            f"cluster {self.cluster}: {self}", type=error_type, non_retryable=self.kind != "transient"
        )


def worker_shut_down() -> bool:
    """Whether the running activity was cancelled because its worker is shutting down (not by the
    workflow): then it must fail retryably, never answer as if it had finished."""
    details = activity.cancellation_details()
    return details is not None and details.worker_shutdown and not details.cancel_requested


def worker_shutdown_error() -> ApplicationError:
    """The retryable failure of an attempt its worker's shutdown ended: another worker retries it."""
    return ApplicationError(
        "the worker shut down during this attempt; another worker retries it", type=WORKER_SHUTDOWN
    )
