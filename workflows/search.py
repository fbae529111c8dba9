"""Search attributes of release workflows: what is running, paused or failing where, fleet-wide.

Each key must be registered on the Temporal server before a workflow uses it (the worker does it at
start; the dev server of the sandbox and the test fixtures register them too). Values are stored
unencrypted: never a credential, never a URL.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

SERVICE = SearchAttributeKey.for_keyword("RingmasterService")
VERSION = SearchAttributeKey.for_keyword("RingmasterVersion")
PHASE = SearchAttributeKey.for_keyword("RingmasterPhase")
RING = SearchAttributeKey.for_keyword("RingmasterRing")
CLUSTER = SearchAttributeKey.for_keyword("RingmasterCluster")
"""On cluster workflows: the cluster each one deploys to."""
SUBMITTER = SearchAttributeKey.for_keyword("RingmasterSubmitter")
"""On releases: who submitted, as the lane verified it (unset when nobody verified it)."""
CLUSTERS = SearchAttributeKey.for_keyword_list("RingmasterClusters")
"""On releases: the clusters the release has changed so far, as of its last change of phase or ring,
up to :data:`CLUSTERS_BYTES` of names (a keyword list's value is limited in size; every cluster
workflow carries its own :data:`CLUSTER`, so a search by cluster asks those for the rest)."""

CLUSTERS_BYTES = 1800
"""Room for names in :data:`CLUSTERS`: under the 2 KiB Temporal allows a search attribute's value by
default (``limit.searchAttributeSize``), quotes and commas counted."""

ALL: list[SearchAttributeKey[Any]] = [SERVICE, VERSION, PHASE, RING, CLUSTER, SUBMITTER, CLUSTERS]
"""Every key ringmaster writes, for registration (typed: a keyword and a keyword list have no common
key type but ``Any``, and mypy would otherwise join them to ``object``)."""


def bounded(names: list[str]) -> list[str]:
    """The first ``names`` that fit in :data:`CLUSTERS_BYTES` (each with its quotes, comma and space)."""
    kept: list[str] = []
    used = 2
    for name in names:
        used += len(name.encode()) + 4
        if used > CLUSTERS_BYTES:
            break
        kept.append(name)
    return kept
