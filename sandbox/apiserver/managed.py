"""Server-side apply: field ownership in ``metadata.managedFields`` and the apply merge with conflicts.

The emulator follows the model of structured-merge-diff, at the granularity its clients rely on:

- a *field set* is a set of paths in the ``FieldsV1`` spelling (``f:spec``, ``k:{"name":"api"}``
  for an item of a keyed list, ``v:"x"`` for a member of a set list); maps and keyed lists are
  walked, atomic lists and maps are owned as a whole (:mod:`.resources` says which are which);
- an **apply** (``PATCH`` with ``application/apply-patch+yaml``) merges the applied configuration
  into the live object, removes fields the manager applied before and no longer applies (unless
  another manager owns them), and refuses with 409 when it would change a field another manager
  owns, naming that manager, unless ``force`` is set, which takes the field over;
- any other write (create, update, patch) is recorded as an ``Update`` entry of its field manager
  owning the fields it changed, which every other manager loses.

System fields (name, uid, resourceVersion, ...) are never owned. Writes through the ``status`` and
``scale`` subresources are separate entries (``subresource: status``) over the same field paths, so
an apply of ``spec.replicas`` conflicts with a ``kubectl scale`` before it, as on a real server.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from sandbox.apiserver.errors import ApiError
from sandbox.apiserver.resources import SYSTEM_METADATA, ResourceType

Path = tuple[str, ...]


_MISSING = object()


def _join(pattern: str, key: str) -> str:
    return f"{pattern}.{key}" if pattern else key


def scoped(rt: ResourceType, obj: dict[str, Any] | None, subresource: str | None) -> dict[str, Any]:
    """The part of ``obj`` whose fields a write to ``subresource`` (None: the main resource) owns."""
    obj = obj or {}
    if subresource == "status":
        return {"status": copy.deepcopy(obj["status"])} if "status" in obj else {}
    if subresource == "scale":
        replicas = (obj.get("spec") or {}).get("replicas")
        return {"spec": {"replicas": replicas}} if replicas is not None else {}
    result = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if rt.has_status:
        result.pop("status", None)
    meta = {k: v for k, v in (result.get("metadata") or {}).items() if k not in SYSTEM_METADATA}
    if meta:
        result["metadata"] = meta
    else:
        result.pop("metadata", None)
    return result


def item_key(rt: ResourceType, pattern: str, item: Any) -> str:
    """The path element naming ``item`` of the list at ``pattern`` (``k:{...}`` or ``v:...``)."""
    schema = rt.list_schema(pattern)
    if schema is not None and schema.ssa == "map" and isinstance(item, dict):
        keys = {k: item.get(k, schema.key_defaults.get(k)) for k in schema.keys}
        keys = {k: v for k, v in keys.items() if v is not None}
        return "k:" + json.dumps(keys, sort_keys=True, separators=(",", ":"))
    return "v:" + json.dumps(item, sort_keys=True, separators=(",", ":"))


def field_set(rt: ResourceType, obj: Any) -> set[Path]:
    """Every owned path of ``obj`` (an already :func:`scoped` object)."""
    found: set[Path] = set()
    _walk(rt, obj, "", (), found)
    return found


def _walk(rt: ResourceType, node: Any, pattern: str, path: Path, out: set[Path]) -> None:
    if isinstance(node, dict) and node and not rt.is_atomic_map(pattern):
        for key, value in node.items():
            _walk(rt, value, _join(pattern, key), (*path, f"f:{key}"), out)
        return
    schema = rt.list_schema(pattern) if isinstance(node, list) else None
    if not isinstance(node, list) or not node or schema is None or schema.ssa == "atomic":
        if path:
            out.add(path)
        return
    for item in node:
        item_path = (*path, item_key(rt, pattern, item))
        out.add(item_path)
        if schema.ssa == "map" and isinstance(item, dict):
            for key, value in item.items():
                _walk(rt, value, _join(f"{pattern}[]", key), (*item_path, f"f:{key}"), out)


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    """Encode a field set as the ``fieldsV1`` tree (``"."`` marks a path that has children too)."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    for path in paths:
        node = tree
        for element in path:
            node = node[element]
        if node and "." not in node:
            node["."] = {}
    return tree


def from_fields_v1(tree: Any, prefix: Path = ()) -> set[Path]:
    """Decode a ``fieldsV1`` tree into a field set."""
    found: set[Path] = set()
    if not isinstance(tree, dict):
        return found
    for key, child in tree.items():
        if key == ".":
            found.add(prefix)
        elif isinstance(child, dict) and child:
            found |= from_fields_v1(child, (*prefix, key))
        else:
            found.add((*prefix, key))
    return found


def _find_item(rt: ResourceType, items: list[Any], pattern: str, element: str) -> int | None:
    for index, item in enumerate(items):
        if item_key(rt, pattern, item) == element:
            return index
    return None


def _descend(rt: ResourceType, obj: Any, path: Path) -> tuple[Any, str] | None:
    """The node at ``path`` and its schema pattern, or None when the path is absent."""
    node, pattern = obj, ""
    for element in path:
        kind, name = element[:2], element[2:]
        if kind == "f:" and isinstance(node, dict) and name in node:
            node, pattern = node[name], _join(pattern, name)
        elif kind in ("k:", "v:") and isinstance(node, list):
            index = _find_item(rt, node, pattern, element)
            if index is None:
                return None
            node, pattern = node[index], f"{pattern}[]"
        else:
            return None
    return node, pattern


def value_at(rt: ResourceType, obj: Any, path: Path) -> Any:
    """The value at ``path``; list items and set members compare by presence only."""
    found = _descend(rt, obj, path)
    if found is None:
        return _MISSING
    return True if path and path[-1][:2] in ("k:", "v:") else found[0]


def remove_at(rt: ResourceType, obj: dict[str, Any], path: Path) -> None:
    """Delete the field, list item or set member at ``path`` from ``obj`` (in place), if present."""
    found = _descend(rt, obj, path[:-1])
    if found is None:
        return
    node, pattern = found
    last = path[-1]
    if last.startswith("f:") and isinstance(node, dict):
        node.pop(last[2:], None)
    elif isinstance(node, list):
        index = _find_item(rt, node, pattern, last)
        if index is not None:
            del node[index]


def describe_path(path: Path) -> str:
    """A path as structured-merge-diff prints it: ``.spec.template.spec.containers[name="api"].image``."""
    out = ""
    for element in path:
        kind, rest = element[:2], element[2:]
        if kind == "f:":
            out += f".{rest}"
        elif kind == "k:":
            keys = json.loads(rest)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        else:
            out += f"[={rest}]"
    return out


@dataclass
class Entry:
    """One ``managedFields`` entry, decoded."""

    manager: str
    operation: str
    subresource: str | None
    api_version: str
    time: str
    fields: set[Path] = field(default_factory=set)

    @property
    def ident(self) -> tuple[str, str, str | None]:
        """What makes an entry unique: manager, operation and subresource."""
        return (self.manager, self.operation, self.subresource)

    def encode(self) -> dict[str, Any]:
        """The wire form."""
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(self.fields),
        }
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def decode(obj: dict[str, Any] | None) -> list[Entry]:
    """The managed-field entries of ``obj``."""
    raw = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    return [
        Entry(
            manager=str(e.get("manager", "")),
            operation=str(e.get("operation", "Update")),
            subresource=e.get("subresource") or None,
            api_version=str(e.get("apiVersion", "")),
            time=str(e.get("time", "")),
            fields=from_fields_v1(e.get("fieldsV1")),
        )
        for e in raw
        if isinstance(e, dict)
    ]


def encode(entries: list[Entry]) -> list[dict[str, Any]]:
    """Entries in the order the API server keeps them (Apply before Update, then time, then manager)."""
    kept = [e for e in entries if e.fields]
    return [e.encode() for e in sorted(kept, key=lambda e: (e.operation, e.time, e.manager))]


def _entry(entries: list[Entry], ident: tuple[str, str, str | None], rt: ResourceType, now: str) -> Entry:
    for entry in entries:
        if entry.ident == ident:
            return entry
    entry = Entry(ident[0], ident[1], ident[2], rt.api_version, now)
    entries.append(entry)
    return entry


def record_update(
    rt: ResourceType,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    subresource: str | None,
    now: str,
) -> list[dict[str, Any]]:
    """The ``managedFields`` of ``new`` after a non-apply write by ``manager``.

    ``new`` carries the entries to start from (the old ones, or what the client set explicitly).
    """
    entries = decode(new)
    before, after = scoped(rt, old, subresource), scoped(rt, new, subresource)
    old_set, new_set = field_set(rt, before), field_set(rt, after)
    changed = {p for p in new_set if value_at(rt, before, p) != value_at(rt, after, p)}
    removed = old_set - new_set
    if changed or removed:
        for entry in entries:
            entry.fields -= changed | removed
    if changed:
        mine = _entry(entries, (manager, "Update", subresource), rt, now)
        mine.fields |= changed
        mine.time = now
    return encode(entries)


def _merge_applied(rt: ResourceType, live: Any, applied: Any, pattern: str) -> Any:
    if isinstance(applied, dict) and isinstance(live, dict) and not rt.is_atomic_map(pattern):
        result = copy.deepcopy(live)
        for key, value in applied.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = _merge_applied(rt, live.get(key), value, _join(pattern, key))
        return result
    schema = rt.list_schema(pattern)
    if isinstance(applied, list) and isinstance(live, list) and schema is not None and schema.ssa != "atomic":
        result_list = copy.deepcopy(live)
        for item in applied:
            element = item_key(rt, pattern, item)
            index = _find_item(rt, result_list, pattern, element)
            if index is None:
                result_list.append(copy.deepcopy(item))
            elif schema.ssa == "map":
                result_list[index] = _merge_applied(rt, result_list[index], item, f"{pattern}[]")
        return result_list
    return copy.deepcopy(applied)


def apply(
    rt: ResourceType,
    live: dict[str, Any],
    applied: dict[str, Any],
    *,
    manager: str,
    force: bool,
    subresource: str | None,
    now: str,
) -> dict[str, Any]:
    """Merge an applied configuration into ``live``; the result carries updated ``managedFields``.

    Raises a 409 naming every conflicting field and its manager when ``force`` is false.
    """
    config = scoped(rt, applied, subresource)
    new_set = field_set(rt, config)
    merged = _merge_applied(rt, live, config, "")
    entries = decode(live)
    ident = (manager, "Apply", subresource)
    previous = next((e.fields for e in entries if e.ident == ident), set())
    others = [e for e in entries if e.ident != ident]
    conflicts = [
        (entry, path)
        for entry in others
        for path in sorted(entry.fields & new_set)
        if value_at(rt, live, path) != value_at(rt, merged, path)
    ]
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for entry, path in conflicts:
        entry.fields.discard(path)
    owned_elsewhere = set().union(*(e.fields for e in others)) if others else set()
    _remove_released(rt, merged, previous - new_set - owned_elsewhere, owned_elsewhere)
    mine = _entry(entries, ident, rt, now)
    if mine.fields != new_set or scoped(rt, merged, subresource) != scoped(rt, live, subresource):
        mine.time = now
    mine.fields = new_set
    merged.setdefault("metadata", {})["managedFields"] = encode(entries)
    return merged  # type: ignore[no-any-return]


def _remove_released(rt: ResourceType, obj: dict[str, Any], released: set[Path], kept: set[Path]) -> None:
    """Remove fields no manager owns any more; an item another manager still uses stays, with its keys."""

    def still_used(path: Path) -> bool:
        return any(len(q) > len(path) and q[: len(path)] == path for q in kept)

    dropped_items = {p for p in released if p[-1].startswith("k:") and not still_used(p)}
    for path in sorted(released, key=len, reverse=True):
        if any(path[:i] in dropped_items for i in range(1, len(path))):
            continue  # goes with its item
        parent = path[:-1]
        if parent and parent[-1].startswith("k:") and path[-1][2:] in json.loads(parent[-1][2:]):
            continue  # the key of an item that stays
        if not still_used(path):
            remove_at(rt, obj, path)


def _manager_label(entry: Entry) -> str:
    label = json.dumps(entry.manager)
    if entry.subresource:
        label += f" with subresource {json.dumps(entry.subresource)}"
    if entry.operation == "Update":
        label += f" using {entry.api_version}"
    return label


def _conflict_error(conflicts: list[tuple[Entry, Path]]) -> ApiError:
    causes = [
        {
            "type": "FieldManagerConflict",
            "message": f"conflict with {_manager_label(e)}",
            "field": describe_path(p),
        }
        for e, p in conflicts
    ]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {_manager_label(entry)}: {describe_path(path)}"
        )
    else:
        lines: list[str] = []
        for label in sorted({_manager_label(e) for e, _ in conflicts}):
            lines.append(f"conflicts with {label}:")
            lines += [f"- {describe_path(p)}" for e, p in conflicts if _manager_label(e) == label]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, message, reason="Conflict", details={"causes": causes})
