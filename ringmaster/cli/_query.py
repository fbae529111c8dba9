"""The visibility queries of ``ringmaster list``: filters read from the options, values quoted safely.

Everything here is pure (no client): :func:`filters` checks the options and names the flag at fault,
:func:`release_query` and :func:`cluster_query` write the queries :mod:`ringmaster.cli.listing`
sends, and :func:`age` writes an age as ``kubectl get`` does. The attribute names are those of
:mod:`workflows.search`, which the release and cluster workflows upsert.

Temporal's query language reads a string literal between single quotes, a quote inside escaped
with a backslash (``'o\\'brien'``). Backslashes and double quotes cannot be matched reliably: the
SQL visibility stores escape the parsed value again for their own SQL (on the dev server
``'a\\\\b'`` does not find ``a\\b``, and no spelling finds ``say "hi"``), so they are refused, as are
control characters; no service, ring, cluster or principal name has any of them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import get_args
from urllib.parse import quote as url_quote

from policies import _errors
from policies.durations import parse_duration
from workflows import search
from workflows.models import Phase

RELEASE_TYPE = "ReleaseWorkflow"
CLUSTER_TYPE = "ClusterRolloutWorkflow"
PHASES: tuple[str, ...] = get_args(Phase)
"""The phases a release's ``RingmasterPhase`` takes, in the order a release goes through them."""


_UNMATCHABLE = frozenset('\\"')
"""Characters a value may not hold (see the module's docstring)."""


@dataclass(frozen=True)
class Filters:
    """What ``ringmaster list`` was asked for; None (or empty) means any."""

    service: str | None = None
    phases: tuple[str, ...] = ()
    ring: str | None = None
    cluster: str | None = None
    submitter: str | None = None
    since: datetime | None = None


def literal(value: str, flag: str) -> str:
    """``value`` as a quoted string literal of a visibility query; ValueError naming ``flag`` if it
    is empty or holds a control character, a backslash or a double quote."""
    if not value:
        raise ValueError(f"{flag}: must not be empty")
    bad = next((ch for ch in value if unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        raise ValueError(
            f"{flag}: {_errors.quote(value)} contains the control character {bad!r}; names never do"
        )
    unmatchable = next((ch for ch in value if ch in _UNMATCHABLE), None)
    if unmatchable is not None:
        raise ValueError(
            f"{flag}: {_errors.quote(value)} contains {unmatchable!r}, which a visibility query cannot "
            "match reliably; names never do"
        )
    escaped = value.replace("'", "\\'")
    return f"'{escaped}'"


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: a duration back from ``now`` (``30m``, ``2h``, ``1d``) or an ISO 8601 time (a time
    without an offset is UTC); ValueError saying which forms are allowed."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since: {_errors.quote(text)} is neither a duration (30s, 5m, 2h, 1d, 1h30m) "
            "nor an ISO 8601 time (2026-12-07T03:00:00Z)"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def filters(
    *,
    service: str | None,
    phases: Iterable[str],
    ring: str | None,
    cluster: str | None,
    submitter: str | None,
    since: str | None,
    now: datetime,
) -> Filters:
    """The options checked: ValueError naming the flag and what it allows."""
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise ValueError(f"--phase: {_errors.quote(unknown[0])} is not a phase; allowed: {', '.join(PHASES)}")
    out = Filters(
        service=service,
        phases=tuple(dict.fromkeys(phases)),
        ring=ring,
        cluster=cluster,
        submitter=submitter,
        since=None if since is None else parse_since(since, now),
    )
    for flag, value in (
        ("--service", service),
        ("--ring", ring),
        ("--cluster", cluster),
        ("--submitter", submitter),
    ):
        if value is not None:
            literal(value, flag)
    return out


def _time(at: datetime) -> str:
    return "'" + at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def release_query(f: Filters, *, run_ids: Iterable[str] = (), workflow_ids: Iterable[str] = ()) -> str:
    """The query of release workflows matching ``f``.

    ``--cluster`` matches the release's own bounded list of the clusters it changed, or one of
    ``run_ids`` (or, for a cluster workflow that names no parent run, ``workflow_ids``): the releases
    whose cluster workflows deployed to the cluster (:func:`cluster_query`). One query with ``OR``: a
    release both match is one execution, listed once; a run id, not the release's id, so an earlier
    run that reached the cluster does not bring in a rerun that did not.
    """
    parts = [f"WorkflowType = '{RELEASE_TYPE}'"]
    if f.service is not None:
        parts.append(f"{search.SERVICE.name} = {literal(f.service, '--service')}")
    if f.phases:
        phases = ", ".join(literal(p, "--phase") for p in f.phases)
        parts.append(f"{search.PHASE.name} IN ({phases})")
    if f.ring is not None:
        parts.append(f"{search.RING.name} = {literal(f.ring, '--ring')}")
    if f.submitter is not None:
        parts.append(f"{search.SUBMITTER.name} = {literal(f.submitter, '--submitter')}")
    if f.since is not None:
        parts.append(f"StartTime >= {_time(f.since)}")
    if f.cluster is not None:
        listed = f"{search.CLUSTERS.name} = {literal(f.cluster, '--cluster')}"
        alternatives = [listed]
        for attribute, values in (("RunId", run_ids), ("WorkflowId", workflow_ids)):
            quoted = ", ".join(literal(v, attribute) for v in dict.fromkeys(values))
            if quoted:
                alternatives.append(f"{attribute} IN ({quoted})")
        parts.append(f"({' OR '.join(alternatives)})" if len(alternatives) > 1 else listed)
    return " AND ".join(parts)


def cluster_query(f: Filters) -> str:
    """The query of the cluster workflows that deployed to ``f.cluster``, narrowed by what they carry
    too: the service, and the start (a cluster workflow starts after its release)."""
    if f.cluster is None:
        raise ValueError("cluster_query needs --cluster")
    parts = [
        f"WorkflowType = '{CLUSTER_TYPE}'",
        f"{search.CLUSTER.name} = {literal(f.cluster, '--cluster')}",
    ]
    if f.service is not None:
        parts.append(f"{search.SERVICE.name} = {literal(f.service, '--service')}")
    if f.since is not None:
        parts.append(f"StartTime >= {_time(f.since)}")
    return " AND ".join(parts)


def release_of(cluster_workflow_id: str) -> str:
    """The release's workflow id from a cluster workflow's (``release:S:V:RING:CLUSTER``)."""
    return cluster_workflow_id.rsplit(":", 2)[0]


def age(delta: timedelta) -> str:
    """A duration as ``kubectl get`` shows an age: ``45s``, ``5m``, ``2h``, ``3d``, ``2y``."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    hours = seconds // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


def ui_link(base: str, namespace: str, query: str) -> str:
    """The Temporal UI's list of workflows filtered by ``query``."""
    namespace, query = url_quote(namespace, safe=""), url_quote(query, safe="")
    return f"{base.rstrip('/')}/namespaces/{namespace}/workflows?query={query}"
