"""Snapshots: the workload as ringmaster found it, recorded once per release, restored by rollback.

Where: a ConfigMap ``ringmaster-<deployment>-snapshot`` beside the workload, one data key per run
of a release (``api.v2.run-<first run id>``, :func:`marks.snapshot_key`), holding the
:class:`ClusterSnapshot` as JSON. The first snapshot of a run wins: a repeated call (a retried
activity, a restarted, reset or continued workflow) returns the stored one even when the cluster has
changed since, while a rerun (``submit --rerun``, a new run of the same release) records the cluster
as it is then, so its rollback does not restore the state from before the first run. Releases started
before runs were recorded carry no run and keep their key ``api.v2``. A ConfigMap rather than an
annotation on the workload, because taking a snapshot must not touch the workload itself: a release
aborted before its first step leaves the Deployment exactly as it was. The newest
``Tuning.snapshots_kept`` snapshots (runs) are kept.

What is recorded (``ClusterSnapshot.details``, :class:`Recorded`): the stable pods' selector and
``ringmaster.dev/version`` label, the ringmaster labels and annotations found on the Deployment,
every active Service's selector, and the rules of every HTTPRoute that sends traffic to one of
them; image, version, replicas and the owning HPA are the snapshot's own fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field, ValidationError

from activities.errors import ClusterError
from activities.kubernetes import marks, workload
from activities.kubernetes.clients import CONFIG_MAP, ClusterApi
from activities.models import ClusterSnapshot, FlagRecord, ReleaseRef
from policies import messages
from policies.plan import Workload

FORMAT = 1


class _Model(messages.Message):
    """Strict when built, tolerant when decoded from a payload (``policies.messages``)."""


class ServiceState(_Model):
    """An active Service as found."""

    selector: dict[str, str]
    marks: dict[str, dict[str, str]] = Field(default_factory=dict)


class RouteState(_Model):
    """An HTTPRoute to an active Service as found."""

    rules: list[dict[str, Any]]
    marks: dict[str, dict[str, str]] = Field(default_factory=dict)


class Recorded(_Model):
    """What a rollback needs beyond the snapshot's own fields (``ClusterSnapshot.details``)."""

    format: int = FORMAT
    release: str
    taken_at: str
    selector: dict[str, str]
    template_version: str | None
    """The pod template's ``ringmaster.dev/version`` label; None when it had none."""
    marks: dict[str, dict[str, str]]
    """The ringmaster labels and annotations found on the Deployment (restored exactly)."""
    services: dict[str, ServiceState] = Field(default_factory=dict)
    routes: dict[str, RouteState] = Field(default_factory=dict)


def configmap_name(deployment: str) -> str:
    """``ringmaster-<deployment>-snapshot``."""
    return marks.object_name(f"ringmaster-{deployment}", marks.SNAPSHOT)


def recorded(snapshot: ClusterSnapshot) -> Recorded:
    """The Kubernetes details of a snapshot; a permanent error when it was not taken by this backend."""
    try:
        return messages.decode(Recorded, snapshot.details)
    except ValidationError:
        raise ClusterError(
            "the release's snapshot holds no Kubernetes details (taken by another backend?); "
            "nothing can be restored from it",
            kind="permanent",
            cluster=snapshot.cluster,
        ) from None


def find(api: ClusterApi, target: Workload, release: ReleaseRef) -> ClusterSnapshot | None:
    """The stored snapshot of this run of ``release``, or None; never writes."""
    stored = api.find(CONFIG_MAP, target.namespace, configmap_name(target.deployment))
    raw = ((stored or {}).get("data") or {}).get(marks.snapshot_key(release))
    return messages.decode_json(ClusterSnapshot, raw) if raw else None


def take(api: ClusterApi, target: Workload, release: ReleaseRef) -> ClusterSnapshot:
    """The stored snapshot of this run of ``release``, or a new one recorded now."""
    name = configmap_name(target.deployment)
    key = marks.snapshot_key(release)
    stored = api.find(CONFIG_MAP, target.namespace, name)
    data: dict[str, str] = dict((stored or {}).get("data") or {})
    if key in data:
        return messages.decode_json(ClusterSnapshot, data[key])
    snapshot = _record(api, target, release)
    kept = sorted(data.items(), key=lambda item: _taken_at(item[1]), reverse=True)
    entries = dict(kept[: max(0, api.tuning.snapshots_kept - 1)])
    entries[key] = snapshot.model_dump_json()
    mark = marks.Marks.of(release).with_labels(
        role=marks.SNAPSHOT, workload=marks.label_value(target.deployment)
    )
    _store(api, target, stored, entries, labels=mark.labels, annotations=mark.annotations)
    return snapshot


def _store(
    api: ClusterApi,
    target: Workload,
    stored: dict[str, Any] | None,
    entries: dict[str, str],
    *,
    labels: dict[str, str],
    annotations: dict[str, str],
) -> None:
    """Write the snapshot ConfigMap with ``entries``, as of ``stored`` (the copy read, None if none).

    Another writer between that read and this apply makes it a retryable conflict (the
    resourceVersion); the retry then finds what the other stored, so the first entry still wins.
    """
    meta: dict[str, Any] = {
        "name": configmap_name(target.deployment),
        "namespace": target.namespace,
        "labels": labels,
        "annotations": annotations,
    }
    if stored is not None:
        meta["resourceVersion"] = stored["metadata"]["resourceVersion"]
    api.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": entries})


def keep_flag(api: ClusterApi, target: Workload, release: ReleaseRef, record: FlagRecord) -> FlagRecord:
    """Add ``record`` to the run's stored snapshot, unless it holds one already; the stored one.

    The flag's state as found then lives where every rollback reads the workload's: a sweep after a
    reset and ``ringmaster rollback`` restore the flag too. Only the server and the snapshot are kept
    (not the run's latest write: the restore then judges what it finds as a step would have left it).
    """
    name = configmap_name(target.deployment)
    key = marks.snapshot_key(release)
    stored = api.find(CONFIG_MAP, target.namespace, name)
    raw = ((stored or {}).get("data") or {}).get(key)
    if stored is None or not raw:
        raise ClusterError(
            f"no snapshot of {release.name} is stored in ConfigMap {target.namespace}/{name}: the flag's "
            "state is kept beside it, and it is taken before any change",
            kind="permanent",
            cluster=api.cluster,
        )
    snapshot = messages.decode_json(ClusterSnapshot, raw)
    if snapshot.flag is not None:
        return snapshot.flag
    kept = record.model_copy(update={"last_written": None})
    data = dict(stored.get("data") or {})
    data[key] = snapshot.model_copy(update={"flag": kept}).model_dump_json()
    found = stored["metadata"]
    _store(
        api,
        target,
        stored,
        data,
        labels=found.get("labels") or {},
        annotations=found.get("annotations") or {},
    )
    return kept


def _taken_at(raw: str) -> str:
    try:
        return str(messages.decode_json(ClusterSnapshot, raw).details.get("taken_at", ""))
    except ValidationError:
        return ""


def _record(api: ClusterApi, target: Workload, release: ReleaseRef) -> ClusterSnapshot:
    live = workload.read(api, target)
    services = workload.active_services(api, target.namespace, live.template_labels)
    names = {str(s["metadata"]["name"]) for s in services}
    routes = workload.routes_to(api, target.namespace, names)
    details = Recorded(
        release=release.name,
        taken_at=datetime.now(UTC).isoformat(),
        selector=live.selector,
        template_version=live.template_labels.get(marks.VERSION),
        marks=marks.found_marks(live.meta),
        services={
            str(s["metadata"]["name"]): ServiceState(
                selector=dict(s["spec"]["selector"]), marks=marks.found_marks(s["metadata"])
            )
            for s in services
        },
        routes={
            str(r["metadata"]["name"]): RouteState(
                rules=list(r["spec"].get("rules") or []), marks=marks.found_marks(r["metadata"])
            )
            for r in routes
        },
    )
    return ClusterSnapshot(
        cluster=api.cluster,
        image=live.image,
        version=live.version,
        replicas=live.replicas,
        hpa=workload.hpa_for(api, target),
        details=details.model_dump(mode="json"),
    )
