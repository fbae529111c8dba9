"""Defaulting and validation per kind: what the API server fills in and what it refuses (422).

Defaults follow the real ``SetDefaults_*`` functions for the fields clients read back: a
Deployment gets ``replicas: 1``, a ``RollingUpdate`` strategy of 25%/25%, ``revisionHistoryLimit``,
``progressDeadlineSeconds: 600`` and pod-template defaults (``imagePullPolicy`` from the tag,
``protocol: TCP`` ...); a Service gets a cluster IP, ``type: ClusterIP`` and ``targetPort``; a
Namespace its ``kubernetes`` finalizer, phase and name label. Validation covers names, labels,
the rules ringmaster can trip over (a Deployment selector that does not match its template, an
immutable selector, containers without image) and returns ``(field, message)`` causes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox.apiserver import netpolicy
from sandbox.apiserver import resources as r
from sandbox.apiserver.selectors import selector_matches

_LABEL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

Causes = list[tuple[str, str]]


def prepare_create(rt: r.ResourceType, obj: dict[str, Any]) -> None:
    """Reset what a create may not set (status of kinds with a status subresource), in place."""
    if rt.has_status:
        obj.pop("status", None)
    if rt is r.NAMESPACE:
        obj["status"] = {"phase": "Active"}
    elif rt is r.SERVICE:
        obj["status"] = {"loadBalancer": {}}
    elif rt is r.HPA:
        obj["status"] = {"desiredReplicas": 0}
    elif rt.has_status and rt is not r.NODE:
        obj["status"] = {}


def apply_defaults(rt: r.ResourceType, obj: dict[str, Any], allocate_ip: Callable[[], str]) -> None:
    """Fill in server defaults, in place."""
    if rt is r.DEPLOYMENT:
        _default_deployment(obj.setdefault("spec", {}))
    elif rt is r.SERVICE:
        _default_service(obj.setdefault("spec", {}), allocate_ip)
    elif rt is r.NAMESPACE:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    elif rt is r.HPA:
        obj.setdefault("spec", {}).setdefault("minReplicas", 1)
    elif rt is r.HTTP_ROUTE:
        _default_http_route(obj.setdefault("spec", {}))
    elif rt is r.NETWORK_POLICY:
        _default_network_policy(obj.setdefault("spec", {}))


def _default_deployment(spec: dict[str, Any]) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    pod = spec.setdefault("template", {}).setdefault("spec", {})
    pod.setdefault("restartPolicy", "Always")
    pod.setdefault("terminationGracePeriodSeconds", 30)
    pod.setdefault("dnsPolicy", "ClusterFirst")
    pod.setdefault("securityContext", {})
    pod.setdefault("schedulerName", "default-scheduler")
    for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        if not isinstance(container, dict):
            continue
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def _default_service(spec: dict[str, Any], allocate_ip: Callable[[], str]) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
        spec["clusterIP"] = allocate_ip()
    if spec.get("clusterIP") and spec["clusterIP"] != "None":
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))


def _default_network_policy(spec: dict[str, Any]) -> None:
    # As SetDefaults_NetworkPolicySpec: Ingress always, Egress when egress rules are given.
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", *(["Egress"] if spec.get("egress") else [])]
    for direction in ("ingress", "egress"):
        for rule in spec.get(direction) or []:
            for port in (rule or {}).get("ports") or [] if isinstance(rule, dict) else []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def _default_http_route(spec: dict[str, Any]) -> None:
    for parent in spec.get("parentRefs") or []:
        if isinstance(parent, dict):
            parent.setdefault("group", "gateway.networking.k8s.io")
            parent.setdefault("kind", "Gateway")
    rules = spec.setdefault("rules", [{}])
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        rule.setdefault("matches", [{"path": {"type": "PathPrefix", "value": "/"}}])
        for ref in rule.get("backendRefs") or []:
            if isinstance(ref, dict):
                ref.setdefault("group", "")
                ref.setdefault("kind", "Service")
                ref.setdefault("weight", 1)


def validate(rt: r.ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    """Every reason ``obj`` is invalid (empty when it is valid); ``old`` is set on updates."""
    causes = _validate_meta(rt, obj.get("metadata") or {})
    spec = obj.get("spec") or {}
    if rt is r.DEPLOYMENT:
        causes += _validate_deployment(spec, (old or {}).get("spec") if old else None)
    elif rt is r.SERVICE:
        for i, port in enumerate(spec.get("ports") or []):
            number = port.get("port") if isinstance(port, dict) else None
            if not isinstance(number, int) or not 1 <= number <= 65535:
                causes.append(
                    (f"spec.ports[{i}].port", f"Invalid value: {number!r}: must be between 1 and 65535")
                )
    elif rt is r.HPA:
        if not spec.get("scaleTargetRef"):
            causes.append(("spec.scaleTargetRef", "Required value"))
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
        if not isinstance(high, int) or high < 1:
            causes.append(
                ("spec.maxReplicas", f"Invalid value: {high!r}: must be greater than or equal to 1")
            )
        elif isinstance(low, int) and low > high:
            causes.append(
                ("spec.minReplicas", f"Invalid value: {low}: must be less than or equal to maxReplicas")
            )
    elif rt is r.NETWORK_POLICY:
        causes += netpolicy.validate(spec)
    elif rt is r.POD_DISRUPTION_BUDGET:
        if "minAvailable" in spec and "maxUnavailable" in spec:
            causes.append(("spec", "Invalid value: minAvailable and maxUnavailable cannot be both set"))
    elif rt is r.HTTP_ROUTE:
        for i, rule in enumerate(spec.get("rules") or []):
            for j, ref in enumerate((rule or {}).get("backendRefs") or []):
                weight = ref.get("weight", 1) if isinstance(ref, dict) else None
                if not isinstance(weight, int) or not 0 <= weight <= 1000000:
                    path = f"spec.rules[{i}].backendRefs[{j}].weight"
                    causes.append((path, f"Invalid value: {weight!r}: must be between 0 and 1000000"))
    return causes


def _validate_meta(rt: r.ResourceType, meta: dict[str, Any]) -> Causes:
    causes: Causes = []
    name = meta.get("name")
    label_only = rt in (r.NAMESPACE, r.SERVICE)
    pattern, limit = (_LABEL_NAME, 63) if label_only else (_SUBDOMAIN, 253)
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif not isinstance(name, str) or len(name) > limit or not pattern.match(name):
        kind = "RFC 1123 label" if label_only else "RFC 1123 subdomain"
        causes.append(
            (
                "metadata.name",
                f"Invalid value: {name!r}: a lowercase {kind} must consist of lower case alphanumeric "
                f"characters, '-' or '.', and must start and end with an alphanumeric character",
            )
        )
    for field_name in ("labels", "annotations"):
        values = meta.get(field_name) or {}
        if not isinstance(values, dict):
            causes.append((f"metadata.{field_name}", "Invalid value: must be a map of strings"))
            continue
        for key, value in values.items():
            if not _LABEL_KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
                causes.append(
                    (f"metadata.{field_name}", f"Invalid value: {key!r}: name part must be a qualified name")
                )
            if not isinstance(value, str):
                causes.append((f"metadata.{field_name}.{key}", "Invalid value: must be a string"))
            elif field_name == "labels" and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                causes.append(
                    (
                        "metadata.labels",
                        f"Invalid value: {value!r}: a valid label must be 63 characters or less",
                    )
                )
    return causes


def _validate_deployment(spec: dict[str, Any], old_spec: dict[str, Any] | None) -> Causes:
    causes: Causes = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector:
        causes.append(("spec.selector", "Required value"))
    elif not selector_matches(selector, labels):
        causes.append(
            (
                "spec.template.metadata.labels",
                f"Invalid value: {labels!r}: `selector` does not match template `labels`",
            )
        )
    if old_spec is not None and old_spec.get("selector") != selector:
        causes.append(("spec.selector", f"Invalid value: {selector!r}: field is immutable"))
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        causes.append(("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0"))
    strategy = spec.get("strategy") or {}
    if strategy.get("type") not in ("RollingUpdate", "Recreate"):
        causes.append(("spec.strategy.type", f"Unsupported value: {strategy.get('type')!r}"))
    elif strategy["type"] == "Recreate" and strategy.get("rollingUpdate"):
        causes.append(
            (
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            )
        )
    containers = (template.get("spec") or {}).get("containers")
    if not containers:
        causes.append(("spec.template.spec.containers", "Required value"))
    for i, container in enumerate(containers or []):
        name = container.get("name") if isinstance(container, dict) else None
        if not name or not _LABEL_NAME.match(str(name)):
            causes.append((f"spec.template.spec.containers[{i}].name", f"Invalid value: {name!r}"))
        if not isinstance(container, dict) or not container.get("image"):
            causes.append((f"spec.template.spec.containers[{i}].image", "Required value"))
    return causes
