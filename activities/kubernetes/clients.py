"""One API client per fleet cluster, built once from kubeconfig contexts, and the calls ringmaster makes.

:class:`ClusterApi` wraps the official client's ``ApiClient`` for one cluster and speaks plain JSON
dicts (manifests look as in YAML, camelCase, unknown fields kept): ``get``/``find``, ``list``,
``apply`` (server-side apply, field manager ``ringmaster``), ``delete`` and ``watch``. Every call has
a request timeout and every failure leaves as a classified
:class:`~activities.errors.ClusterError` (:mod:`.errors`).

Ownership policy of ``apply``: fields whose last writer was an imperative ``Update`` (``kubectl
create``/``edit``/``scale``, client-side ``kubectl apply``) are taken over, as ``kubectl set image``
would; fields another manager *applies* (a GitOps controller, Helm 4), or that a manager listed in
``protected_managers`` writes (Helm 3 and Flux's helm-controller write with ``Update``), are never
taken: the apply fails with an ``ownership-conflict`` naming that manager.

Credentials stay inside the ``ApiClient`` objects built here: nothing returned or raised carries
them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import structlog
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch import watch as k8s_watch

from activities import telemetry
from activities.errors import ClusterError
from activities.kubernetes import errors, marks
from policies.fleet import Fleet

log = structlog.get_logger("ringmaster.kubernetes")

# The official client's helpers carry no annotations; these are the signatures ringmaster relies on.
_iter_lines: Callable[[Any], Iterator[str]] = k8s_watch.iter_resp_lines
_load_kube_config: Callable[..., None] = k8s_config.load_kube_config

APPLY_PATCH = "application/apply-patch+yaml"
PROTECTED_MANAGERS = frozenset({"helm", "helm-controller", "argocd-controller", "kustomize-controller"})
"""Release tools that write with ``Update`` yet own what they write: never taken over."""


@dataclass(frozen=True)
class Kind:
    """Where a resource lives in the API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None) -> str:
        """The collection or object path (``/apis/apps/v1/namespaces/ns/deployments/x``)."""
        root = f"/apis/{self.api_version}" if "/" in self.api_version else f"/api/{self.api_version}"
        if self.namespaced and namespace:
            root += f"/namespaces/{namespace}"
        root += f"/{self.plural}"
        return f"{root}/{name}" if name else root

    def describe(self, namespace: str | None, name: str | None = None) -> str:
        """``Deployment shop/api`` for messages."""
        where = "/".join(p for p in (namespace if self.namespaced else None, name) if p)
        return f"{self.kind} {where}".rstrip()


DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
SERVICE = Kind("v1", "Service", "services")
CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
NODE = Kind("v1", "Node", "nodes", namespaced=False)
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
HTTP_ROUTE = Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")


@dataclass(frozen=True)
class Tuning:
    """Timeouts and limits of the Kubernetes calls; every field in seconds unless it says otherwise."""

    connect_timeout: float = 5.0
    """Establishing a connection to an API server."""
    read_timeout: float = 30.0
    """Waiting for an answer (watches add their own ``timeoutSeconds`` to this)."""
    heartbeat_seconds: float = 2.0
    """Longest stretch a wait goes without heartbeating: each watch ends after this long."""
    ready_wait_seconds: float = 40.0
    """How long a step waits for new pods to be available before it shifts traffic or removes
    capacity; below the step's 60 s activity timeout, after which the step fails as transient."""
    snapshots_kept: int = 10
    """Release runs whose snapshot stays in each workload's snapshot ConfigMap."""
    protected_managers: frozenset[str] = field(default_factory=lambda: PROTECTED_MANAGERS)


class ClusterApi:
    """The API of one cluster through the official client, in JSON dicts, with classified errors."""

    def __init__(self, cluster: str, api: k8s.ApiClient, tuning: Tuning | None = None) -> None:
        self.cluster = cluster
        self.tuning = tuning or Tuning()
        self._api: Any = api  # the official client is untyped: its calls return Any

    @property
    def api_client(self) -> Any:
        """The official client's ``ApiClient`` (one per cluster, shared by every call)."""
        return self._api

    # --- plumbing -----------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request, counted by cluster, verb and error class (:mod:`activities.telemetry`)."""
        try:
            answer = self._send(method, path, **kwargs)
        except Exception as exc:
            telemetry.kubernetes_request(self.cluster, method, errors.error_class(exc))
            raise
        telemetry.kubernetes_request(self.cluster, method, "none")
        return answer

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        stream: bool = False,
        read_timeout: float | None = None,
    ) -> Any:
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": "application/json", "Content-Type": content_type}
        request = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        timeout = (self.tuning.connect_timeout, read_timeout or self.tuning.read_timeout)
        response: Any = self._api.call_api(*request, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        if stream:
            return response.response
        raw = response.read()
        return json.loads(raw) if raw else {}

    def _call(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._request(method, path, **kwargs)
        except Exception as exc:
            raise errors.classify(exc, cluster=self.cluster, what=what) from exc

    # --- reads --------------------------------------------------------------------------------

    def version(self, timeout: float) -> dict[str, Any]:
        """The API server's ``/version`` within ``timeout``: a reachability probe any client may read."""
        answer: dict[str, Any] = self._call("get /version", "GET", "/version", read_timeout=timeout)
        return answer

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        """The object; a missing one is a permanent error naming it."""
        return dict(self._call(f"get {kind.describe(namespace, name)}", "GET", kind.path(namespace, name)))

    def find(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.get(kind, namespace, name)
        except ClusterError as err:
            if errors.is_not_found(err):
                return None
            raise

    def list(
        self, kind: Kind, namespace: str | None, *, labels: str | None = None, optional: bool = False
    ) -> list[dict[str, Any]]:
        """Objects of a kind (``optional``: an API the cluster does not serve lists as empty)."""
        what = f"list {kind.plural} in {namespace}" if namespace else f"list {kind.plural}"
        try:
            found = self._call(what, "GET", kind.path(namespace), query={"labelSelector": labels})
        except ClusterError as err:
            if optional and errors.is_not_found(err):
                return []
            raise
        return list(found.get("items") or [])

    # --- writes -------------------------------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` as ``ringmaster``, under the ownership policy of this module."""
        kind, namespace, name = _identify(obj)
        what = f"apply {kind.describe(namespace, name)}"
        try:
            return dict(self._apply(kind, namespace, name, obj, force=False))
        except ApiException as exc:
            conflicts = errors.field_conflicts(exc)
            if not conflicts:
                raise errors.classify(exc, cluster=self.cluster, what=what) from exc
        except Exception as exc:
            raise errors.classify(exc, cluster=self.cluster, what=what) from exc
        blocking = [c for c in conflicts if c.applied or c.manager in self.tuning.protected_managers]
        if blocking:
            raise errors.ownership_conflict(self.cluster, what, blocking)
        # Only imperative writers hold the fields: take them. Not pinned to a resourceVersion, because
        # controllers bump it with every status write; the 409 just named every owner of these fields.
        log.info(
            "taking fields over from imperative writers",
            cluster=self.cluster,
            object=kind.describe(namespace, name),
            fields=[c.describe() for c in conflicts],
        )
        try:
            return dict(self._apply(kind, namespace, name, obj, force=True))
        except Exception as exc:
            raise errors.classify(exc, cluster=self.cluster, what=what) from exc

    def _apply(
        self, kind: Kind, namespace: str | None, name: str, obj: dict[str, Any], *, force: bool
    ) -> Any:
        query = {"fieldManager": marks.FIELD_MANAGER, "force": "true" if force else None}
        return self._request(
            "PATCH", kind.path(namespace, name), query=query, body=obj, content_type=APPLY_PATCH
        )

    def delete(self, kind: Kind, namespace: str | None, name: str, *, uid: str | None = None) -> bool:
        """Delete (pods in the background); False when it was already gone. ``uid`` guards the identity."""
        body: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._call(
                f"delete {kind.describe(namespace, name)}", "DELETE", kind.path(namespace, name), body=body
            )
        except ClusterError as err:
            if errors.is_not_found(err):
                return False
            raise
        return True

    # --- watches ------------------------------------------------------------------------------

    def watch(
        self, kind: Kind, namespace: str | None, name: str, resource_version: str, seconds: float
    ) -> Generator[dict[str, Any], None, None]:
        """Events of one object after ``resource_version``, for at most ``seconds`` (then the stream ends)."""
        what = f"watch {kind.describe(namespace, name)}"
        query = {
            "watch": "true",
            "fieldSelector": f"metadata.name={name}",
            "resourceVersion": resource_version,
            "timeoutSeconds": max(1, round(seconds)),
            "allowWatchBookmarks": "true",
        }
        try:
            response = self._request(
                "GET",
                kind.path(namespace),
                query=query,
                stream=True,
                read_timeout=self.tuning.read_timeout + seconds,
            )
        except Exception as exc:
            raise errors.classify(exc, cluster=self.cluster, what=what) from exc
        try:
            for line in _iter_lines(response):
                if line.strip():
                    yield json.loads(line)
        except Exception as exc:
            raise errors.classify(exc, cluster=self.cluster, what=what) from exc
        finally:
            response.close()  # stops reading a stream we left early; never reuse a half-read connection
            response.release_conn()


def _identify(obj: dict[str, Any]) -> tuple[Kind, str | None, str]:
    for kind in (DEPLOYMENT, SERVICE, CONFIG_MAP, NODE, HPA, HTTP_ROUTE):
        if (kind.api_version, kind.kind) == (obj.get("apiVersion"), obj.get("kind")):
            meta = obj["metadata"]
            return kind, meta.get("namespace"), str(meta["name"])
    raise ValueError(f"ringmaster does not write {obj.get('apiVersion')} {obj.get('kind')}")


@dataclass
class Clusters:
    """Every fleet cluster's :class:`ClusterApi`, built once and reused for the life of the worker."""

    apis: dict[str, ClusterApi]

    @classmethod
    def from_kubeconfig(cls, fleet: Fleet, kubeconfig: Path | None, tuning: Tuning | None = None) -> Self:
        """One client per fleet cluster from its ``kubeContext`` (``kubeconfig`` None: the default file).

        Raises ValueError naming every cluster whose context cannot be loaded.
        """
        apis: dict[str, ClusterApi] = {}
        problems: list[str] = []
        for cluster in fleet.clusters:
            configuration = k8s.Configuration()
            try:
                _load_kube_config(
                    config_file=str(kubeconfig) if kubeconfig is not None else None,
                    context=cluster.kube_context,
                    client_configuration=configuration,
                    persist_config=False,
                )
            except (k8s_config.ConfigException, OSError, ValueError) as exc:
                problems.append(f"cluster {cluster.name}: kubeContext {cluster.kube_context!r}: {exc}")
                continue
            configuration.retries = False  # Temporal retries, with backoff, under the workflow's policy
            configuration.keep_alive = True
            api = k8s.ApiClient(configuration)
            api.user_agent = "ringmaster"
            apis[cluster.name] = ClusterApi(cluster.name, api, tuning)
        if problems:
            raise ValueError("cannot reach every fleet cluster:\n" + "\n".join(problems))
        return cls(apis)

    def __getitem__(self, cluster: str) -> ClusterApi:
        try:
            return self.apis[cluster]
        except KeyError:
            raise ClusterError(
                f"cluster {cluster} is not in this worker's fleet", kind="permanent", cluster=cluster
            ) from None

    def close(self) -> None:
        """Release every client's connections."""
        for api in self.apis.values():
            api.api_client.close()
