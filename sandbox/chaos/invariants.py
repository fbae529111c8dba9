"""The invariants a scenario is judged by, on what the clusters hold, never on ringmaster's word alone.

Inputs are cluster states (:mod:`sandbox.chaos.clusters` shapes) before the release, after it, and
the emulator's change log of the scenario's namespace in between; the release's own report is only
compared with them. Each check returns the violations it finds as sentences naming the cluster.

- the release reaches a terminal phase within the bound its plan and events allow;
- ``succeeded``: every cluster runs the new version, with no canary or preview object left;
- ``aborted`` (an abort, a supersede, a cancel): every cluster holds exactly its previous spec;
- ``rolled-back``: the clusters the rollback scope covers hold exactly their previous spec, the
  others are untouched or fully promoted, never in between (``release``: every cluster previous;
  ``ring``: whole rings promoted, then whole rings previous; ``cluster``, and a terminated release
  whose cluster workflows each roll back alone: promoted rings, then at most one ring of promoted
  and previous clusters, then previous rings);
- ``failed``: exactly the clusters it lists as needing attention differ from both specs;
- a terminated release has no list of its own: a cluster whose own workflow reports that its
  rollback failed (another writer's image met) may be left between, and only such a one
  (seeds 3137, 3146);
- a release that follows one which left its canary or preview in a cluster (a supersede after a
  failed rollback) starts from that state; removing those leftovers counts as neither promoting
  nor half-releasing (seeds 1147, 3033);
- no object goes back to a content it left, except to its previous one (a stale or duplicated step
  would; a reset run, which walks its steps again from its snapshot, is judged apart from the run
  before it), and nothing changes a cluster after the release and its cluster workflows ended;
- ``ringmaster status`` agrees with the clusters.

A cluster's end state is what its change log says once the release and its cluster workflows have
closed, except where another writer (an ownership conflict) changed it after ringmaster's last
request there had ended: ringmaster could not see that change, so the cluster is judged as it was
just before it (:func:`answered_for`, seed 2042).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.chaos import clusters as kube
from sandbox.chaos.scenario import Scenario
from workflows.models import ClusterRolloutResult

VERSION_LABEL = "ringmaster.dev/version"
ROLE_LABEL = "ringmaster.dev/role"
"""The label ringmaster puts on the objects it creates beside the workload (canary, preview)."""
OWN_SUFFIXES = ("-canary", "-preview")
"""How ringmaster names the objects it creates beside the workload (``activities/kubernetes/scene.py``)."""
ROLLED_BACK_PHASES = ("rolled-back", "aborted", "cancelled", "terminated")
RINGMASTER_AGENT = "ringmaster"
"""The User-Agent of ringmaster's Kubernetes clients (``activities/kubernetes/clients.py``)."""


def promoted(before: kube.State, image: str, version: str) -> kube.State:
    """``before`` with the ``api`` container on ``image`` and the pods labelled ``version``.

    Without any object of ringmaster's own (a canary or preview Deployment or Service): a release that
    promoted leaves none, even where an earlier release that failed had left its own (seed 1147).
    """
    after = {name: copy.deepcopy(shape) for name, shape in without_own_objects(before).items()}
    deployment = after.get("Deployment/api")
    if deployment is not None:
        deployment["labels"] = {**deployment["labels"], VERSION_LABEL: version}
        for container in deployment["containers"]:
            if container["name"] == "api":
                container["image"] = image
    return after


def own_object(name: str, shape: Any) -> bool:
    """Whether ``name`` (``Kind/name``) is an object ringmaster created beside the workload (a canary
    or preview): a Deployment whose pods carry ``ringmaster.dev/role``, or a Service of such a name
    that selects on it. The workload's own Service selects on it too while a blue-green switch
    points it at the preview, and stays the workload's."""
    if not isinstance(shape, dict):
        return False
    if name.startswith("Deployment/"):
        return ROLE_LABEL in (shape.get("labels") or {})
    return name.endswith(OWN_SUFFIXES) and ROLE_LABEL in (shape.get("selector") or {})


def without_own_objects(state: kube.State) -> kube.State:
    """``state`` without ringmaster's own objects (:func:`own_object`), and without the backendRefs of
    its routes to those objects' Services: a release that removes an earlier one's leftover canary
    takes its share of the route back to the other backends, their weights as they were (seed 7075)."""
    own = {
        name.split("/", 1)[1]
        for name, shape in state.items()
        if name.startswith("Service/") and own_object(name, shape)
    }
    kept = {name: shape for name, shape in state.items() if not own_object(name, shape)}
    for name, shape in kept.items():
        if name.startswith("HTTPRoute/") and own and isinstance(shape, dict):
            kept[name] = {**shape, "rules": [_without_refs(rule, own) for rule in shape.get("rules") or []]}
    return kept


def _without_refs(rule: Any, services: set[str]) -> Any:
    if not isinstance(rule, dict):
        return rule
    refs = rule.get("backendRefs") or []
    left = [r for r in refs if not (isinstance(r, dict) and r.get("name") in services)]
    return {**rule, "backendRefs": left} if left and left != refs else rule


def classify(before: kube.State, now: kube.State, image: str, version: str) -> str:
    """``previous``, ``new`` or ``between`` (neither: a half-released or foreign state).

    ``before`` may hold the canary or preview an earlier release left in a cluster it listed as
    needing attention (a superseded release whose rollback failed). A later release that adopted and
    then removed them, and otherwise left the cluster as it found it, has it back on its previous
    spec (seed 3033), just as one that promoted there has it on its new one (seed 1147).
    """
    if now in (before, without_own_objects(before)):
        return "previous"
    if now == promoted(before, image, version):
        return "new"
    return "between"


def difference(expected: kube.State, now: kube.State) -> str:
    """A short account of how ``now`` differs from ``expected``, for a violation's message."""
    parts = []
    for name in sorted(set(expected) | set(now)):
        if name not in now:
            parts.append(f"{name} missing")
        elif name not in expected:
            parts.append(f"{name} left over")
        elif expected[name] != now[name]:
            parts.append(f"{name} differs: {brief(now[name])}")
    return "; ".join(parts)


def brief(shape: Any) -> str:
    if isinstance(shape, dict) and "containers" in shape:
        images = [c.get("image") for c in shape["containers"]]
        return f"replicas {shape.get('replicas')}, images {images}, labels {shape.get('labels')}"
    return str(shape)[:160]


def outcome(
    scenario: Scenario,
    phase: str,
    needs_attention: Sequence[str],
    before: Mapping[str, kube.State],
    after: Mapping[str, kube.State],
    *,
    image: str,
    version: str,
) -> list[str]:
    """The end-state invariants for a release that ended in ``phase``."""
    kinds = {c: classify(before[c], after[c], image, version) for c in scenario.clusters}

    def explain(cluster: str, wanted: str) -> str:
        expected = before[cluster] if wanted == "previous" else promoted(before[cluster], image, version)
        return f"{cluster}: {kinds[cluster]}, not {wanted} ({difference(expected, after[cluster])})"

    if phase == "succeeded":
        return [explain(c, "new") for c, k in kinds.items() if k != "new"]
    if phase == "denied":
        return [explain(c, "previous") for c, k in kinds.items() if k != "previous"]
    if phase == "failed":
        problems = [
            f"{c}: {k}, but the release does not list it as needing attention"
            for c, k in kinds.items()
            if k == "between" and c not in needs_attention
        ]
        # A cluster whose rollback was refused at its first write (a 403: seeds 4095, 4136) still
        # holds the new spec, and says so; one back on its previous spec needs nothing.
        problems += [
            f"{c}: listed as needing attention, but it holds its {kinds[c]} spec"
            for c in needs_attention
            if c in kinds and kinds[c] == "previous"
        ]
        return problems
    if phase not in ROLLED_BACK_PHASES:
        return [f"the release ended in phase {phase!r}, which is not terminal"]
    # A terminated or cancelled release has no result of its own: ``needs_attention`` is then what its
    # cluster workflows reported (:func:`needing_attention`). A rollback that met another writer left
    # its cluster between, and said so (seeds 3137, 3146).
    unrestored = {c for c, k in kinds.items() if k == "between" and c in needs_attention}
    if phase in ("aborted", "cancelled") or (phase == "rolled-back" and scenario.scope == "release"):
        return [explain(c, "previous") for c, k in kinds.items() if k != "previous" and c not in unrestored]
    return _ordered(
        scenario,
        {c: k for c, k in kinds.items() if c not in unrestored},
        whole_rings=phase == "rolled-back" and scenario.scope == "ring",
    )


def needing_attention(results: Mapping[str, ClusterRolloutResult | None]) -> list[str]:
    """The clusters whose own workflow (``results``: each cluster workflow's result, None while it
    has none) reports a rollback that failed, as a release lists them in ``needs_attention``
    (``workflows/release.py``). A terminated release (or one whose workflow ended cancelled) has no
    result: these are then the only account of what their rollbacks left."""
    return [name for name, result in results.items() if result is not None and result.rollback_failed]


def _ordered(scenario: Scenario, kinds: Mapping[str, str], *, whole_rings: bool) -> list[str]:
    """Promoted rings, then (unless ``whole_rings``) at most one mixed ring, then previous rings.

    A cluster left out of ``kinds`` (one whose rollback failed and said so) is judged by no ring.
    """
    problems = [f"{c}: half released ({k})" for c, k in kinds.items() if k == "between"]
    promoting = True
    for ring in scenario.rings:
        found = {kinds[c] for c in ring.clusters if c in kinds} - {"between"}
        if found == {"new"} and not promoting:
            problems.append(f"ring {ring.name}: promoted after a ring that was rolled back or never reached")
        elif found == {"new", "previous"}:
            if whole_rings:
                problems.append(f"ring {ring.name}: partly promoted, partly rolled back under scope ring")
            elif not promoting:
                problems.append(f"ring {ring.name}: partly promoted after a ring that was rolled back")
        if "previous" in found:
            promoting = False
    return problems


def replay(
    before: kube.State, changes: Sequence[Mapping[str, Any]], until: float | None = None
) -> list[kube.State]:
    """The cluster's successive states from ``before`` through each change (up to time ``until``)."""
    current = copy.deepcopy(before)
    states = [copy.deepcopy(current)]
    for change in changes:
        if until is not None and change["time"] > until:
            break
        if change["kind"] not in kube.KINDS:
            continue
        name = f"{change['kind']}/{change['name']}"
        if change["op"] == "deleted":
            current.pop(name, None)
        else:
            current[name] = kube.shape({**(change.get("object") or {}), "kind": change["kind"]})
        if current != states[-1]:
            states.append(copy.deepcopy(current))
    return states


def no_going_back(cluster: str, before: kube.State, changes: Sequence[Mapping[str, Any]]) -> list[str]:
    """No object goes back to a content it left, unless back to what it was before the release.

    A canary at weight 20, then 50, then 20 again is a stale step applied after a newer one. Going
    back to the object's first content (a rollback's restore, a preview deleted again) is allowed,
    and starts the object's history afresh: a reset release may run its steps once more.
    """
    problems = []
    histories: dict[str, list[Any]] = {}
    for change in changes:
        if change["kind"] not in kube.KINDS:
            continue
        name = f"{change['kind']}/{change['name']}"
        first = before.get(name)
        seen = histories.setdefault(name, [first])
        now = (
            None
            if change["op"] == "deleted"
            else kube.shape({**(change.get("object") or {}), "kind": change["kind"]})
        )
        if now == seen[-1]:
            continue
        if now == first:
            histories[name] = [first]
        elif now in seen:
            problems.append(
                f"{cluster}: {name} went back to an earlier content (change {change['seq']}): {brief(now)}"
            )
        else:
            seen.append(now)
    return problems


def quiet_after(
    cluster: str, changes: Sequence[Mapping[str, Any]], ended: float, *, others: Sequence[str] = ()
) -> list[str]:
    """Nothing changes the cluster after ``ended`` (unix time) but the scenario's own doings.

    ``others`` are images another writer sets (an ownership conflict): its write may land after the
    end (a request held by an API fault), and so may what the server does in answer; a change whose
    object runs one of them is that writer's, not the release's.
    """
    late = [
        c
        for c in changes
        if c["time"] > ended and c["kind"] in kube.KINDS and not _runs_any(c.get("object") or {}, others)
    ]
    return [
        f"{cluster}: {c['op']} {c['kind']}/{c['name']} {c['time'] - ended:.1f}s after the release ended"
        for c in late
    ]


def last_request_end(requests: Sequence[Mapping[str, Any]]) -> float | None:
    """When ringmaster's last request in the emulator's request log ``requests`` ended (unix time).

    Infinite while one of them has no answer yet (a request an API fault holds may still write).
    None when the log shows none of its requests: the log is bounded, so the judge then assumes
    nothing about when ringmaster stopped.
    """
    ends = [
        r["time"] + r["durationMs"] / 1000 if r.get("status") else math.inf
        for r in requests
        if str(r.get("userAgent") or "").startswith(RINGMASTER_AGENT)
    ]
    return max(ends, default=None)


def answered_for(
    changes: Sequence[Mapping[str, Any]], last_request: float | None, *, others: Sequence[str]
) -> list[Mapping[str, Any]]:
    """The changes of one cluster a release answers for: every one before the first change whose
    object runs one of ``others`` (another writer's images) and that landed after ringmaster's last
    request to the cluster had ended (``last_request``, see :func:`last_request_end`).

    From that moment ringmaster was done with the cluster: no later request of it could see the
    other writer's change, let alone meet it. Every change ringmaster could still have met stays
    its own to answer for; so does everything when ``last_request`` is unknown.
    """
    if last_request is None:
        return list(changes)
    for index, change in enumerate(changes):
        if (
            change["time"] > last_request
            and change["kind"] in kube.KINDS
            and _runs_any(change.get("object") or {}, others)
        ):
            return list(changes[:index])
    return list(changes)


def end_state(
    before: kube.State,
    changes: Sequence[Mapping[str, Any]],
    until: float,
    *,
    last_request: float | None,
    others: Sequence[str],
) -> kube.State:
    """The state a release is judged on in one cluster: its change log replayed up to ``until`` (the
    release and its cluster workflows closed), leaving out what another writer did once ringmaster's
    last request there had ended (:func:`answered_for`)."""
    return replay(before, answered_for(changes, last_request, others=others), until)[-1]


def _runs_any(obj: Mapping[str, Any], images: Sequence[str]) -> bool:
    template = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return any(c.get("image") in images for c in template.get("containers") or [])


def status_agrees(
    reported: Mapping[str, Any],
    phase: str,
    before: Mapping[str, kube.State],
    after: Mapping[str, kube.State],
    *,
    image: str,
    version: str,
) -> list[str]:
    """``ringmaster status --output json`` tells the phase and each cluster's state as the clusters do."""
    problems = []
    if "phase" not in reported:
        return [f"status did not answer: {reported.get('error') or reported}"]
    if reported.get("phase") != phase:
        problems.append(f"status says phase {reported.get('phase')!r}, the release ended {phase!r}")
    for entry in reported.get("clusters") or []:
        name = entry.get("name")
        if name not in after:
            continue
        kind = classify(before[name], after[name], image, version)
        said = entry.get("state")
        if said == "promoted" and kind != "new":
            problems.append(f"status says {name} is promoted, the cluster holds its {kind} spec")
        if said in ("rolled-back", "pending", "denied") and kind != "previous":
            problems.append(f"status says {name} is {said}, the cluster holds its {kind} spec")
    return problems
