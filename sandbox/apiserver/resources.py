"""The resource types the emulator serves, and the schema facts that patching and apply depend on.

A :class:`ResourceType` says where a kind lives (group, version, plural, scope), what discovery
advertises for it (short names, verbs, subresources), and the few schema facts the real API server
takes from Go struct tags and OpenAPI extensions: which lists merge by key (``containers`` by
``name``), which are sets, which lists and maps are atomic. Strategic merge patch and server-side
apply read these through :meth:`ResourceType.list_schema`; anything not listed is atomic, as for
an untyped field of a custom resource.

Paths are written with dots and ``[]`` for "an item of this list":
``spec.template.spec.containers[].env``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ListSchema:
    """How one list field merges.

    ``smp_key`` is the strategic-merge-patch merge key (None with strategy ``merge`` means a set
    of primitives such as ``finalizers``); ``ssa`` is the server-side-apply list type and ``keys``
    its map keys, with ``key_defaults`` for keys the server defaults (``protocol: TCP``).
    """

    smp_key: str | None
    strategy: Literal["merge", "replace"]
    ssa: Literal["map", "set", "atomic"]
    keys: tuple[str, ...] = ()
    key_defaults: Mapping[str, object] = field(default_factory=dict)


def _keyed(smp_key: str, *keys: str, **defaults: object) -> ListSchema:
    return ListSchema(smp_key, "merge", "map", keys or (smp_key,), defaults)


_SET = ListSchema(None, "merge", "set")
_ATOMIC_MERGE_KEY_TYPE = ListSchema("type", "merge", "atomic")
_CONDITIONS = _keyed("type")

_METADATA_LISTS: dict[str, ListSchema] = {
    "metadata.finalizers": _SET,
    "metadata.ownerReferences": _keyed("uid"),
}

_CONTAINER_LISTS: dict[str, ListSchema] = {
    "ports": _keyed("containerPort", "containerPort", "protocol", protocol="TCP"),
    "env": _keyed("name"),
    "volumeMounts": _keyed("mountPath"),
    "volumeDevices": _keyed("devicePath"),
}

_POD_SPEC_LISTS: dict[str, ListSchema] = {
    "volumes": _keyed("name"),
    "imagePullSecrets": _keyed("name"),
    "hostAliases": _keyed("ip"),
    "topologySpreadConstraints": _keyed("topologyKey", "topologyKey", "whenUnsatisfiable"),
    "resourceClaims": _keyed("name"),
}
for _containers in ("containers", "initContainers", "ephemeralContainers"):
    _POD_SPEC_LISTS[_containers] = _keyed("name")
    for _name, _schema in _CONTAINER_LISTS.items():
        _POD_SPEC_LISTS[f"{_containers}[].{_name}"] = _schema


def _under(prefix: str, lists: Mapping[str, ListSchema]) -> dict[str, ListSchema]:
    return {f"{prefix}.{path}": schema for path, schema in lists.items()}


@dataclass(frozen=True, eq=False)
class ResourceType:
    """One served resource (a kind at one group/version) and its schema facts.

    Each served type is one module-level instance: compare with ``is``; it hashes by identity.
    """

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    tracks_generation: bool = False
    """``metadata.generation`` starts at 1 and grows with every change outside metadata and status."""
    strategic_merge: bool = True
    """Built-in types accept strategic merge patch; custom resources answer 415."""
    lists: Mapping[str, ListSchema] = field(default_factory=dict)
    atomic_maps: frozenset[str] = frozenset()
    field_selectors: tuple[str, ...] = ()
    """Field selector paths beyond ``metadata.name`` and ``metadata.namespace``."""
    fields: frozenset[str] = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
    """The top-level fields of the kind; others are unknown (dropped, or refused by strict validation)."""

    @property
    def singular(self) -> str:
        """The lower-case singular name discovery reports."""
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        """``apps/v1``, or ``v1`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` (``namespaces`` for the core group), as error messages name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def prefix(self) -> str:
        """The API path prefix of the group/version: ``/api/v1`` or ``/apis/apps/v1``."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def has_status(self) -> bool:
        """Whether the kind has a ``status`` subresource (and so status is kept apart from spec)."""
        return "status" in self.subresources

    def list_schema(self, path: str) -> ListSchema | None:
        """How the list at ``path`` merges; None when it is atomic (replaced as a whole)."""
        return self.lists.get(path) or _METADATA_LISTS.get(path)

    def is_atomic_map(self, path: str) -> bool:
        """Whether the map at ``path`` is owned and replaced as a whole (a label selector)."""
        return path in self.atomic_maps

    def self_link(self, namespace: str | None, name: str | None = None) -> str:
        """The object's (or collection's) path below the cluster prefix."""
        path = self.prefix
        if self.namespaced and namespace:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        return f"{path}/{name}" if name else path


NAMESPACE = ResourceType(
    "",
    "v1",
    "Namespace",
    "namespaces",
    namespaced=False,
    short_names=("ns",),
    subresources=("status",),
    lists={"status.conditions": _CONDITIONS},
    field_selectors=("status.phase",),
)
NODE = ResourceType(
    "",
    "v1",
    "Node",
    "nodes",
    namespaced=False,
    short_names=("no",),
    subresources=("status",),
    lists={
        "spec.podCIDRs": _SET,
        "status.conditions": _CONDITIONS,
        "status.addresses": _ATOMIC_MERGE_KEY_TYPE,
    },
    field_selectors=("spec.unschedulable",),
)
SERVICE = ResourceType(
    "",
    "v1",
    "Service",
    "services",
    namespaced=True,
    short_names=("svc",),
    categories=("all",),
    subresources=("status",),
    lists={
        "spec.ports": _keyed("port", "port", "protocol", protocol="TCP"),
        "status.conditions": _CONDITIONS,
    },
    atomic_maps=frozenset({"spec.selector"}),
    field_selectors=("spec.clusterIP", "spec.type"),
)
CONFIG_MAP = ResourceType(
    "",
    "v1",
    "ConfigMap",
    "configmaps",
    namespaced=True,
    short_names=("cm",),
    fields=frozenset({"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"}),
)
SECRET = ResourceType(
    "",
    "v1",
    "Secret",
    "secrets",
    namespaced=True,
    # ``stringData`` (write-only, merged into ``data`` by a real server) is not served: send ``data``.
    fields=frozenset({"apiVersion", "kind", "metadata", "data", "type", "immutable"}),
)
DEPLOYMENT = ResourceType(
    "apps",
    "v1",
    "Deployment",
    "deployments",
    namespaced=True,
    short_names=("deploy",),
    categories=("all",),
    subresources=("status", "scale"),
    tracks_generation=True,
    lists={**_under("spec.template.spec", _POD_SPEC_LISTS), "status.conditions": _CONDITIONS},
    atomic_maps=frozenset({"spec.selector", "spec.template.spec.nodeSelector"}),
)
SERVICE_ACCOUNT = ResourceType(
    "",
    "v1",
    "ServiceAccount",
    "serviceaccounts",
    namespaced=True,
    short_names=("sa",),
    lists={"secrets": _keyed("name")},
    fields=frozenset(
        {"apiVersion", "kind", "metadata", "secrets", "imagePullSecrets", "automountServiceAccountToken"}
    ),
)
HPA = ResourceType(
    "autoscaling",
    "v2",
    "HorizontalPodAutoscaler",
    "horizontalpodautoscalers",
    namespaced=True,
    short_names=("hpa",),
    categories=("all",),
    subresources=("status",),
    tracks_generation=True,
    lists={"status.conditions": _CONDITIONS},
)
HTTP_ROUTE = ResourceType(
    "gateway.networking.k8s.io",
    "v1",
    "HTTPRoute",
    "httproutes",
    namespaced=True,
    categories=("gateway-api",),
    subresources=("status",),
    tracks_generation=True,
    strategic_merge=False,
)
NETWORK_POLICY = ResourceType(
    "networking.k8s.io",
    "v1",
    "NetworkPolicy",
    "networkpolicies",
    namespaced=True,
    short_names=("netpol",),
    tracks_generation=True,
    # No patch strategy on its lists in the Go types: ingress, egress, peers and ports are atomic.
    atomic_maps=frozenset({"spec.podSelector"}),
    fields=frozenset({"apiVersion", "kind", "metadata", "spec"}),
)
POD_DISRUPTION_BUDGET = ResourceType(
    "policy",
    "v1",
    "PodDisruptionBudget",
    "poddisruptionbudgets",
    namespaced=True,
    short_names=("pdb",),
    subresources=("status",),
    tracks_generation=True,
    lists={"status.conditions": _CONDITIONS},
    atomic_maps=frozenset({"spec.selector"}),
)

METADATA_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
"""The fields of ``ObjectMeta``."""

SYSTEM_METADATA = METADATA_FIELDS - {"generateName", "labels", "annotations", "ownerReferences", "finalizers"}
"""The ``ObjectMeta`` fields the server sets; no field manager ever owns them."""

RESOURCES: tuple[ResourceType, ...] = (
    NAMESPACE,
    NODE,
    SERVICE,
    CONFIG_MAP,
    SECRET,
    SERVICE_ACCOUNT,
    DEPLOYMENT,
    HPA,
    NETWORK_POLICY,
    POD_DISRUPTION_BUDGET,
    HTTP_ROUTE,
)


def group_versions() -> list[tuple[str, str]]:
    """Every served ``(group, version)``, core first, in a stable order."""
    return list(dict.fromkeys((rt.group, rt.version) for rt in RESOURCES))


def in_group_version(group: str, version: str) -> list[ResourceType]:
    """The resources served at ``group/version``."""
    return [rt for rt in RESOURCES if rt.group == group and rt.version == version]


def by_plural(group: str, version: str, plural: str) -> ResourceType | None:
    """The resource served at ``group/version/plural``, if any."""
    for rt in RESOURCES:
        if (rt.group, rt.version, rt.plural) == (group, version, plural):
            return rt
    return None


def lookup(name: str) -> ResourceType | None:
    """A resource by kind (``Deployment``), plural, short name, or ``plural.group`` (any case)."""
    wanted = name.lower()
    for rt in RESOURCES:
        names = {rt.kind.lower(), rt.plural, rt.singular, rt.qualified, *rt.short_names}
        if wanted in names:
            return rt
    return None
