"""Search attributes of release workflows: what is running, paused or failing where, fleet-wide.

Each key must be registered on the Temporal server before a workflow uses it (the worker does it at
start; the dev server of the sandbox and the test fixtures register them too). Values are stored
unencrypted: never a credential, never a URL.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

SERVICE = SearchAttributeKey.for_keyword("RingmasterService")
VERSION = SearchAttributeKey.for_keyword("RingmasterVersion")
PHASE = SearchAttributeKey.for_keyword("RingmasterPhase")
RING = SearchAttributeKey.for_keyword("RingmasterRing")
CLUSTER = SearchAttributeKey.for_keyword("RingmasterCluster")

ALL = [SERVICE, VERSION, PHASE, RING, CLUSTER]
"""Every key ringmaster writes, for registration."""
