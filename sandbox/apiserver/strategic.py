"""Strategic merge patch (``application/strategic-merge-patch+json``), applied as the API server does.

Maps merge key by key and ``null`` deletes. Lists follow the field's patch strategy from
:mod:`.resources`: lists with a merge key (``containers`` by ``name``, ``ports`` by
``containerPort``) merge item by item, keeping the original order and appending new items; lists of
primitives with the ``merge`` strategy (``finalizers``) are sets; every other list is replaced.
The directives of the format are honoured: ``$patch: replace|delete|merge`` on maps and list
items, ``$retainKeys``, ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>``.
Custom resources (``HTTPRoute``) do not accept this patch type; the caller answers 415 for them.
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox.apiserver.errors import bad_request
from sandbox.apiserver.resources import ResourceType

_DELETE_FROM = "$deleteFromPrimitiveList/"
_SET_ORDER = "$setElementOrder/"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def strip_directives(value: Any) -> Any:
    """A copy of ``value`` without any ``$``-directive keys or directive-only list items."""
    if isinstance(value, dict):
        return {k: strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [
            strip_directives(v) for v in value if not (isinstance(v, dict) and "$patch" in v and len(v) == 1)
        ]
    return copy.deepcopy(value)


def apply(rt: ResourceType, original: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a strategic merge ``patch`` to ``original`` (neither is modified)."""
    if not isinstance(patch, dict):
        raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
    merged = _merge_map(rt, original, patch, "")
    return merged if merged is not None else {}


def _merge_map(rt: ResourceType, original: Any, patch: dict[str, Any], path: str) -> dict[str, Any] | None:
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "delete":
        return None
    if directive == "replace":
        return strip_directives(patch)  # type: ignore[no-any-return]
    if directive not in (None, "merge"):
        raise bad_request(f"Unknown patch type: {directive}")
    retain = patch.pop("$retainKeys", None)
    result: dict[str, Any] = copy.deepcopy(original) if isinstance(original, dict) else {}
    orders: dict[str, list[Any]] = {}
    for key in [k for k in patch if k.startswith(("$", _DELETE_FROM, _SET_ORDER))]:
        value = patch.pop(key)
        if key.startswith(_DELETE_FROM):
            field = key[len(_DELETE_FROM) :]
            doomed = value if isinstance(value, list) else []
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in doomed]
        elif key.startswith(_SET_ORDER):
            orders[key[len(_SET_ORDER) :]] = value if isinstance(value, list) else []
    for key, value in patch.items():
        child = _join(path, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _merge_map(rt, result.get(key), value, child)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(rt, result.get(key), value, child)
        else:
            result[key] = value
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            schema = rt.list_schema(_join(path, key))
            result[key] = _reorder(result[key], order, schema.smp_key if schema else None)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(rt: ResourceType, original: Any, patch: list[Any], path: str) -> list[Any]:
    schema = rt.list_schema(path)
    replace = any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch)
    if schema is None or schema.strategy == "replace" or replace:
        return strip_directives(patch)  # type: ignore[no-any-return]
    current = copy.deepcopy(original) if isinstance(original, list) else []
    if schema.smp_key is None:
        return current + [v for i, v in enumerate(patch) if v not in current and v not in patch[:i]]
    key = schema.smp_key
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: {item} does not contain declared merge key: {key}")
        same = [i for i, x in enumerate(current) if isinstance(x, dict) and x.get(key) == item[key]]
        if item.get("$patch") == "delete":
            current = [x for i, x in enumerate(current) if i not in same]
        elif same:
            merged = _merge_map(rt, current[same[0]], item, f"{path}[]")
            current[same[0]] = merged if merged is not None else current[same[0]]
        else:
            merged = _merge_map(rt, {}, item, f"{path}[]")
            if merged is not None:
                current.append(merged)
    return current


def _reorder(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Put the items named in ``order`` in that order; items it does not name keep their slots."""

    def ident(item: Any) -> Any:
        return item.get(key) if key is not None and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    named = sorted((x for x in items if ident(x) in wanted), key=lambda x: wanted.index(ident(x)))
    queue = iter(named)
    return [next(queue) if ident(x) in wanted else x for x in items]
