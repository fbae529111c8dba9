"""API semantics over the store: create, read, update, patch and delete as kube-apiserver does them.

Every write goes through one pipeline: reset what the verb may not set (status on the main
resource, everything but status on ``/status``), keep system metadata, check the resourceVersion
precondition (409), apply defaults, validate (422), bump ``metadata.generation`` when anything
outside metadata and status changed, record field ownership (:mod:`.managed`), and skip the write
entirely when nothing changed (no new resourceVersion, no watch event). Namespaced writes need an
existing namespace (404) that is not terminating (403). Deleting an object with finalizers, or a
namespace, only marks it (``deletionTimestamp``); the controller finishes namespaces.

This is the in-process API other code (the controller, seeding, a traffic simulator) uses; it
raises :class:`ApiError` exactly as the HTTP layer reports it.
"""

from __future__ import annotations

import builtins
import copy
import datetime as dt
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from sandbox.apiserver import defaults, fieldcheck, managed, patch, strategic
from sandbox.apiserver import errors as e
from sandbox.apiserver import resources as r
from sandbox.apiserver.selectors import object_matcher, parse_fields, parse_labels
from sandbox.apiserver.store import Store

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def rfc3339(moment: dt.datetime) -> str:
    """A timestamp as the API server writes it (UTC, whole seconds)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _without_version(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out.get("metadata", {}).pop("resourceVersion", None)
    return out


class Registry:
    """The API of one cluster, over its :class:`Store`."""

    def __init__(self, store: Store, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.store = store
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._next_ip = 10

    def now(self) -> str:
        """The current time in API spelling."""
        return rfc3339(self._clock())

    def _allocate_ip(self) -> str:
        self._next_ip += 1
        return f"10.96.{self._next_ip // 250}.{self._next_ip % 250 + 1}"

    # -- reads ------------------------------------------------------------------------------------

    def get(self, rt: r.ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        """One object; 404 when absent."""
        found = self.store.read(rt, namespace if rt.namespaced else None, name)
        if found is None:
            raise e.not_found(rt, name)
        return found

    def list(
        self, rt: r.ResourceType, namespace: str | None = None, *, labels: str = "", fields: str = ""
    ) -> tuple[list[dict[str, Any]], int]:
        """Objects matching the selectors, and the resourceVersion the list is consistent with."""
        matches = object_matcher(parse_labels(labels), parse_fields(fields, rt))
        items = self.store.items(rt, namespace if rt.namespaced else None)
        return [o for o in items if matches(o)], self.store.resource_version

    # -- writes -----------------------------------------------------------------------------------

    def _check_namespace(self, rt: r.ResourceType, namespace: str | None, name: str) -> None:
        if not rt.namespaced:
            return
        found = self.store.peek(r.NAMESPACE, None, namespace or "")
        if found is None:
            raise e.namespace_not_found(namespace or "")
        if found["metadata"].get("deletionTimestamp"):
            raise e.forbidden_terminating(rt, name, namespace or "")

    def _identify(self, rt: r.ResourceType, namespace: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise e.bad_request(f"the body of the request is not a {rt.kind} object")
        obj = copy.deepcopy(body)
        if obj.get("kind") not in (None, rt.kind) or obj.get("apiVersion") not in (None, rt.api_version):
            raise e.bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) does not match the expected "
                f"API version ({rt.api_version}) or kind ({obj.get('kind')}) is not {rt.kind}"
            )
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise e.bad_request("metadata must be an object")
        fieldcheck.top_level_unknown(rt, obj, prune=True)
        if rt.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise e.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj

    def create(
        self,
        rt: r.ResourceType,
        namespace: str | None,
        body: Any,
        *,
        manager: str,
        dry_run: bool = False,
        applied: bool = False,
    ) -> dict[str, Any]:
        """Create an object (201 semantics); 409 AlreadyExists, 404/403 for the namespace, 422 invalid."""
        obj = self._identify(rt, namespace, body)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
        name = str(meta.get("name") or "")
        self._check_namespace(rt, namespace, name)
        if name and self.store.peek(rt, namespace if rt.namespaced else None, name) is not None:
            raise e.already_exists(rt, name)
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.now()
        if rt.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        defaults.prepare_create(rt, obj)
        defaults.apply_defaults(rt, obj, self._allocate_ip)
        causes = defaults.validate(rt, obj, None)
        if causes:
            raise e.invalid(rt, name, causes)
        if not applied:
            meta.pop("managedFields", None)
            meta["managedFields"] = managed.record_update(
                rt, None, obj, manager=manager, subresource=None, now=self.now()
            )
        if dry_run:
            return obj
        return self.store.put(rt, obj)

    def update(
        self,
        rt: r.ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        manager: str,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Replace an object (PUT) or its status; 404, 409 on a stale resourceVersion, 422."""
        old = self.get(rt, namespace, name)
        new = self._identify(rt, namespace, body)
        if new["metadata"].get("name") not in (None, name):
            raise e.name_mismatch(new["metadata"].get("name"), name)
        return self._commit(rt, old, new, manager=manager, subresource=subresource, dry_run=dry_run)

    def _commit(
        self,
        rt: r.ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        *,
        manager: str,
        subresource: str | None,
        dry_run: bool,
        applied: bool = False,
    ) -> dict[str, Any]:
        name = old["metadata"]["name"]
        old_meta, meta = old["metadata"], new.setdefault("metadata", {})
        wanted_version = meta.get("resourceVersion")
        if wanted_version not in (None, "") and wanted_version != old_meta["resourceVersion"]:
            raise e.conflict(rt, name)
        if meta.get("uid") not in (None, "", old_meta["uid"]):
            raise e.uid_mismatch(rt, name, meta["uid"], old_meta["uid"])
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is not None:
                new["status"] = status
            else:
                new.pop("status", None)
            new["metadata"]["managedFields"] = meta.get("managedFields", old_meta.get("managedFields"))
            meta = new["metadata"]
        elif rt.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        for field in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if "managedFields" not in meta:
            meta["managedFields"] = old_meta.get("managedFields", [])
        defaults.apply_defaults(rt, new, self._allocate_ip)
        causes = defaults.validate(rt, new, old)
        if causes:
            raise e.invalid(rt, name, causes)
        if rt.tracks_generation:
            bumped = _spec_part(new) != _spec_part(old)
            meta["generation"] = old_meta.get("generation", 1) + (1 if bumped else 0)
        else:
            meta.pop("generation", None)
        meta.pop("selfLink", None)
        if not applied:
            meta["managedFields"] = managed.record_update(
                rt, old, new, manager=manager, subresource=subresource, now=self.now()
            )
        if _without_version(new) == _without_version(old):
            return old
        if dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt is not r.NAMESPACE:
            self.store.remove(rt, old_meta.get("namespace"), name)
            return new
        return self.store.put(rt, new)

    def update_scaled(
        self,
        rt: r.ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        *,
        manager: str,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Commit a change of ``spec.replicas`` made through the ``scale`` subresource."""
        return self._commit(rt, old, new, manager=manager, subresource="scale", dry_run=dry_run)

    def patch(
        self,
        rt: r.ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        *,
        manager: str,
        force: bool = False,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Patch an object or its status; returns the result and whether an apply created it."""
        if patch_type != APPLY_PATCH and force:
            raise e.invalid_patch_options("force: Forbidden: may not be specified for non-apply patch")
        if patch_type == APPLY_PATCH:
            return self._apply(
                rt,
                namespace,
                name,
                body,
                manager=manager,
                force=force,
                subresource=subresource,
                dry_run=dry_run,
            )
        old = self.get(rt, namespace, name)
        if patch_type == MERGE_PATCH:
            new = patch.merge_patch(old, body)
        elif patch_type == JSON_PATCH:
            new = patch.json_patch(old, body)
        elif patch_type == STRATEGIC_PATCH and rt.strategic_merge:
            new = strategic.apply(rt, old, body)
        else:
            accepted = [t for t in PATCH_TYPES if t != STRATEGIC_PATCH or rt.strategic_merge]
            raise e.unsupported_media_type(patch_type, accepted)
        if not isinstance(new, dict):
            raise e.bad_request("the patch did not produce an object")
        new = self._identify(rt, namespace, new)
        if new["metadata"].get("name") != name:
            raise e.bad_request("the name of the object may not be changed by a patch")
        return self._commit(rt, old, new, manager=manager, subresource=subresource, dry_run=dry_run), False

    def _apply(
        self,
        rt: r.ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        manager: str,
        force: bool,
        subresource: str | None,
        dry_run: bool,
    ) -> tuple[dict[str, Any], bool]:
        if not manager:
            raise e.invalid_patch_options("fieldManager: Required value: is required for apply patch")
        if not isinstance(body, dict) or not body.get("apiVersion") or not body.get("kind"):
            raise e.bad_request("invalid object type: an applied configuration needs apiVersion and kind")
        config = self._identify(rt, namespace, body)
        if config["metadata"].get("name") not in (None, name):
            raise e.bad_request(
                f"the name of the object ({config['metadata'].get('name')}) does not match the URL ({name})"
            )
        existing = self.store.read(rt, namespace if rt.namespaced else None, name)
        if existing is None:
            if subresource:
                raise e.not_found(rt, name)
            skeleton = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": {"name": name}}
            merged = managed.apply(
                rt, skeleton, config, manager=manager, force=force, subresource=None, now=self.now()
            )
            return self.create(rt, namespace, merged, manager=manager, dry_run=dry_run, applied=True), True
        wanted = config["metadata"].get("resourceVersion")
        if wanted and wanted != existing["metadata"]["resourceVersion"]:
            raise e.conflict(rt, name)
        merged = managed.apply(
            rt, existing, config, manager=manager, force=force, subresource=subresource, now=self.now()
        )
        committed = self._commit(
            rt, existing, merged, manager=manager, subresource=subresource, dry_run=dry_run, applied=True
        )
        return committed, False

    def delete(
        self,
        rt: r.ResourceType,
        namespace: str | None,
        name: str,
        *,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Delete an object; returns its last state and whether it is gone (False: only marked)."""
        old = self.get(rt, namespace, name)
        meta = old["metadata"]
        wanted = preconditions or {}
        if wanted.get("uid") not in (None, meta["uid"]):
            raise e.uid_mismatch(rt, name, wanted["uid"], meta["uid"])
        if wanted.get("resourceVersion") not in (None, meta["resourceVersion"]):
            raise e.conflict(rt, name)
        if dry_run:
            return old, True
        if rt is r.NAMESPACE or meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return old, False
            marked = copy.deepcopy(old)
            marked["metadata"]["deletionTimestamp"] = self.now()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            if rt is r.NAMESPACE:
                marked["status"] = {"phase": "Terminating"}
            return self.store.put(rt, marked), False
        gone = self.store.remove(rt, meta.get("namespace"), name)
        return gone or old, True

    def delete_collection(
        self,
        rt: r.ResourceType,
        namespace: str | None,
        *,
        labels: str = "",
        fields: str = "",
        dry_run: bool = False,
    ) -> builtins.list[dict[str, Any]]:
        """Delete every object matching the selectors; returns their last states."""
        items, _ = self.list(rt, namespace, labels=labels, fields=fields)
        meta = [o["metadata"] for o in items]
        return [self.delete(rt, m.get("namespace"), m["name"], dry_run=dry_run)[0] for m in meta]

    def finish_namespace(self, name: str) -> bool:
        """Delete a terminating namespace's contents, then the namespace; True once it is gone."""
        for rt in r.RESOURCES:
            if rt.namespaced:
                for obj in self.store.items(rt, name):
                    self.store.remove(rt, name, obj["metadata"]["name"])
        return self.store.remove(r.NAMESPACE, None, name) is not None
