"""Unknown-field detection for ``fieldValidation``, using the official client's models as the schema.

The API server decodes a body into its typed object: fields the type does not have are dropped,
reported as warnings (``fieldValidation=Warn``, the default) or refused with 400 (``Strict``,
what kubectl sends). The emulator gets the field names of built-in kinds from the
``kubernetes`` client's generated models (generated from the real OpenAPI document), walking
nested objects, lists and maps, so ``spec.replica`` or ``...containers[0].imag`` are found
as on a real cluster. Custom resources (HTTPRoute) are checked at the top level only.

Importing the models takes about a second, so it happens on first use (and the emulator process
warms it up in the background at start, see :func:`warm_up`).
"""

from __future__ import annotations

import functools
import importlib
import threading
import types
import typing
from typing import Any

from pydantic import AliasChoices, BaseModel

from sandbox.apiserver import resources as r

_MODELS = {
    r.NAMESPACE: "v1_namespace.V1Namespace",
    r.NODE: "v1_node.V1Node",
    r.SERVICE: "v1_service.V1Service",
    r.CONFIG_MAP: "v1_config_map.V1ConfigMap",
    r.SECRET: "v1_secret.V1Secret",
    r.DEPLOYMENT: "v1_deployment.V1Deployment",
    r.HPA: "v2_horizontal_pod_autoscaler.V2HorizontalPodAutoscaler",
    r.SERVICE_ACCOUNT: "v1_service_account.V1ServiceAccount",
    r.NETWORK_POLICY: "v1_network_policy.V1NetworkPolicy",
    r.POD_DISRUPTION_BUDGET: "v1_pod_disruption_budget.V1PodDisruptionBudget",
}


def _model(rt: r.ResourceType) -> type[BaseModel] | None:
    name = _MODELS.get(rt)
    if name is None:
        return None
    module, cls = name.rsplit(".", 1)
    found: type[BaseModel] = getattr(importlib.import_module(f"kubernetes.client.models.{module}"), cls)
    return found


@functools.cache
def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """JSON field name -> annotation of a generated model."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        wire = alias.choices[0] if isinstance(alias, AliasChoices) else (info.alias or name)
        out[str(wire)] = info.annotation
    return out


def _unwrap(annotation: Any) -> tuple[str, Any]:
    """An annotation as ``("model", cls)``, ``("list", item)``, ``("map", value)`` or ``("leaf", None)``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return "leaf", None
            annotation = options[0]
        elif origin is list:
            return "list", typing.get_args(annotation)[0]
        elif origin is dict:
            return "map", typing.get_args(annotation)[1]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return "model", annotation
        else:
            return "leaf", None


def _walk(value: Any, annotation: Any, path: str, found: list[str], *, prune: bool) -> None:
    kind, inner = _unwrap(annotation)
    if kind == "model" and isinstance(value, dict):
        fields = _fields(inner)
        for key in list(value):
            where = f"{path}.{key}" if path else key
            if key.startswith("$"):
                continue  # strategic-merge-patch directives
            if key not in fields:
                found.append(where)
                if prune:
                    del value[key]
            else:
                _walk(value[key], fields[key], where, found, prune=prune)
    elif kind == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, inner, f"{path}[{index}]", found, prune=prune)
    elif kind == "map" and isinstance(value, dict):
        for key, child in value.items():
            _walk(child, inner, f"{path}.{key}", found, prune=prune)


def top_level_unknown(rt: r.ResourceType, body: dict[str, Any], *, prune: bool = False) -> list[str]:
    """Unknown top-level and ``metadata`` fields only (cheap; no models needed)."""
    found = [k for k in body if k not in rt.fields and not k.startswith("$")]
    meta = body.get("metadata")
    if isinstance(meta, dict):
        found += [f"metadata.{k}" for k in meta if k not in r.METADATA_FIELDS and not k.startswith("$")]
    if prune:
        for name in found:
            if name.startswith("metadata."):
                body["metadata"].pop(name.split(".", 1)[1], None)
            else:
                body.pop(name, None)
    return found


def unknown_fields(rt: r.ResourceType, body: Any, *, prune: bool = False) -> list[str]:
    """Paths of fields in ``body`` that ``rt`` does not have (``spec.replica``), removed when ``prune``."""
    if not isinstance(body, dict):
        return []
    model = _model(rt)
    if model is None:
        return top_level_unknown(rt, body, prune=prune)
    found: list[str] = []
    _walk(body, model, "", found, prune=prune)
    return found


def warm_up() -> threading.Thread:
    """Import the client's models in the background, so the first validated request does not wait."""

    def load() -> None:
        for rt in _MODELS:
            _model(rt)

    thread = threading.Thread(target=load, name="fieldcheck-warm-up", daemon=True)
    thread.start()
    return thread
