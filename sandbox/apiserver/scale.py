"""The ``/scale`` subresource of Deployments: an ``autoscaling/v1`` Scale view of ``spec.replicas``.

``kubectl scale`` and autoscalers read and write replicas through it. Reads build the Scale from
the Deployment; writes (PUT or a merge, JSON or strategic patch of the Scale) change only
``spec.replicas`` and are recorded as field ownership of the ``scale`` subresource.
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox.apiserver import errors as e
from sandbox.apiserver import patch as patches
from sandbox.apiserver import resources as r
from sandbox.apiserver.registry import JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, Registry
from sandbox.apiserver.selectors import selector_string

_SCALE = r.ResourceType("autoscaling", "v1", "Scale", "scale", namespaced=True)


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The Scale view of a Deployment."""
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0), "selector": selector_string(spec.get("selector"))},
    }


def get(registry: Registry, rt: r.ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
    """The current Scale."""
    return scale_of(registry.get(rt, namespace, name))


def update(
    registry: Registry,
    rt: r.ResourceType,
    namespace: str | None,
    name: str,
    body: Any,
    *,
    manager: str,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Set ``spec.replicas`` from a Scale; 409 on a stale resourceVersion, 422 on a bad count."""
    if not isinstance(body, dict):
        raise e.bad_request("the body of the request is not a Scale object")
    replicas = (body.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise e.invalid(
            _SCALE,
            name,
            [("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0")],
        )
    old = registry.get(rt, namespace, name)
    new = copy.deepcopy(old)
    new.setdefault("spec", {})["replicas"] = replicas
    new["metadata"]["resourceVersion"] = (body.get("metadata") or {}).get("resourceVersion")
    committed = registry.update_scaled(rt, old, new, manager=manager, dry_run=dry_run)
    return scale_of(committed)


def patch(
    registry: Registry,
    rt: r.ResourceType,
    namespace: str | None,
    name: str,
    *,
    patch_type: str,
    body: Any,
    manager: str,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Patch the Scale (merge, JSON or strategic merge) and store the resulting replicas."""
    current = get(registry, rt, namespace, name)
    if patch_type in (MERGE_PATCH, STRATEGIC_PATCH):
        patched = patches.merge_patch(current, body)
    elif patch_type == JSON_PATCH:
        patched = patches.json_patch(current, body)
    else:
        raise e.unsupported_media_type(patch_type, [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH])
    return update(registry, rt, namespace, name, patched, manager=manager, dry_run=dry_run)
