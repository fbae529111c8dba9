"""How activities classify failures: transient ones retry, permanent ones fail at once.

Backends raise :class:`ClusterError`; the activity wrappers turn it into Temporal's
``ApplicationError`` with a stable ``type`` the workflows branch on.
"""

from __future__ import annotations

from typing import Literal

from temporalio.exceptions import ApplicationError

ErrorKind = Literal["transient", "permanent", "ownership-conflict", "rollout-stuck"]

INVALID_PLAN = "InvalidPlan"
CLUSTER_PERMANENT = "ClusterPermanentError"
OWNERSHIP_CONFLICT = "OwnershipConflict"
ROLLOUT_STUCK = "RolloutStuck"
CLUSTER_TRANSIENT = "ClusterTransientError"

NON_RETRYABLE_TYPES = [INVALID_PLAN, CLUSTER_PERMANENT, OWNERSHIP_CONFLICT, ROLLOUT_STUCK]
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
