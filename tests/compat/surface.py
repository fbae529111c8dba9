"""What ringmaster's workers and clients exchange, found from the code itself; runs under any version.

A *message key* names one kind of payload (``activity:apply_step:input``, ``signal:ReleaseWorkflow:
abort-signal``, ``query:ReleaseWorkflow:status:result``, ``heartbeat:analyze``); :func:`message_types`
maps each to the type the receiving code declares, by introspecting every ``@workflow.defn`` class
(run, signals, queries, updates) and every ``@activity.defn`` method of the ``workflows`` and
``activities`` packages. :func:`models` walks those types to every pydantic model they reach.

This file imports nothing of ``tests`` and only the packages every version has, so the compatibility
tests also run it with an *earlier* version's interpreter and code on ``sys.path``
(``python tests/compat/surface.py schema|extract|decode ...``): the version under test then answers
with its own models. Commands:

- ``schema OUT``: every reachable model's fields (alias, required, literal values) and ``extra``
  setting, as JSON;
- ``extract HISTORIES_DIR OUT``: the payloads of recorded histories (``*.json`` as
  ``tests/workflows/histories/record.py`` writes them), each under its message key, a few per key;
- ``decode IN OUT``: decode each ``{"key", "json"}`` of IN with this version's data converter and the
  type its code declares for the key, writing ``{"key", "ok", "errors"}`` per message.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import pkgutil
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload

PACKAGES = ("workflows", "activities")

HEARTBEATS = {"analyze": ("activities.models", "AnalyzeProgress")}
"""Heartbeat details by activity: no signature declares them (the activity reads them back itself)."""

SAMPLES_PER_KEY = 2
"""Samples kept per message key: the largest (most fields filled) and the smallest other one."""


def _modules() -> Iterator[types.ModuleType]:
    for name in PACKAGES:
        package = importlib.import_module(name)
        yield package
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            yield importlib.import_module(info.name)


def _hints(fn: Any) -> dict[str, Any]:
    return typing.get_type_hints(fn, include_extras=True)


def _args(fn: Any) -> list[Any]:
    hints = _hints(fn)
    params = [p for p in inspect.signature(fn).parameters.values() if p.name not in {"self", "cls"}]
    return [hints.get(p.name, Any) for p in params]


def _put_args(found: dict[str, Any], key: str, fn: Any) -> None:
    args = _args(fn)
    for i, hint in enumerate(args):
        found[key if len(args) == 1 else f"{key}#{i}"] = hint


def message_types() -> dict[str, Any]:
    """Every message key of this version's code, with the type its receiver declares."""
    found: dict[str, Any] = {}
    seen: set[int] = set()
    for module in _modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if id(cls) in seen or not cls.__module__.startswith(PACKAGES):
                continue
            seen.add(id(cls))
            defn = workflow._Definition.from_class(cls)
            if defn is not None:
                _workflow(found, defn)
            for _, member in inspect.getmembers(cls, callable):
                adefn = activity._Definition.from_callable(member)
                if adefn is not None:
                    _put_args(found, f"activity:{adefn.name}:input", member)
                    found[f"activity:{adefn.name}:result"] = _hints(member).get("return", Any)
    for name, (module_name, model) in HEARTBEATS.items():
        found[f"heartbeat:{name}"] = getattr(importlib.import_module(module_name), model)
    return found


def _workflow(found: dict[str, Any], defn: Any) -> None:
    name = defn.name
    _put_args(found, f"workflow:{name}:input", defn.run_fn)
    result = _hints(defn.run_fn).get("return", Any)
    found[f"workflow:{name}:result"] = result
    # An outcome failure carries the workflow's record (its result type) as its detail.
    found[f"workflow:{name}:failure"] = result
    for signal in defn.signals.values():
        if signal.name:
            _put_args(found, f"signal:{name}:{signal.name}", signal.fn)
    for query in defn.queries.values():
        if query.name:
            _put_args(found, f"query:{name}:{query.name}:input", query.fn)
            found[f"query:{name}:{query.name}:result"] = _hints(query.fn).get("return", Any)
    for update in defn.updates.values():
        if update.name:
            _put_args(found, f"update:{name}:{update.name}:input", update.fn)
            found[f"update:{name}:{update.name}:result"] = _hints(update.fn).get("return", Any)


def resolve(types_by_key: dict[str, Any], key: str) -> Any:
    """The type for ``key``; ``signal:*:NAME`` (a signal sent to another workflow) by its name alone."""
    if key in types_by_key:
        return types_by_key[key]
    if key.startswith("signal:*:"):
        name = key.removeprefix("signal:*:")
        matches = [t for k, t in types_by_key.items() if k.startswith("signal:") and k.endswith(f":{name}")]
        if len(set(map(repr, matches))) == 1:
            return matches[0]
    raise KeyError(key)


def models(hints: typing.Iterable[Any]) -> dict[str, type[BaseModel]]:
    """Every pydantic model reachable from ``hints`` (through fields, unions, lists...).

    Keyed by ``module:qualname``.
    """
    found: dict[str, type[BaseModel]] = {}
    todo = list(hints)
    while todo:
        hint = todo.pop()
        if inspect.isclass(hint) and issubclass(hint, BaseModel):
            name = f"{hint.__module__}:{hint.__qualname__}"
            if name in found:
                continue
            found[name] = hint
            todo.extend(f.annotation for f in hint.model_fields.values())
            continue
        todo.extend(a for a in typing.get_args(hint) if not isinstance(a, str | int | float | bool))
    return found


def literals(hint: Any) -> list[Any]:
    """The ``Literal`` values ``hint`` allows directly (through unions, lists, dicts; not inside models)."""
    if typing.get_origin(hint) is typing.Literal:
        return sorted(typing.get_args(hint), key=repr)
    if inspect.isclass(hint) and issubclass(hint, BaseModel):
        return []
    found: list[Any] = []
    for arg in typing.get_args(hint):
        found.extend(v for v in literals(arg) if v not in found)
    return sorted(found, key=repr)


def schema() -> dict[str, Any]:
    """Every reachable model's ``extra`` setting and fields (alias, whether required, literal values)."""
    return {
        name: {
            "extra": model.model_config.get("extra"),
            "fields": {
                field_name: {
                    "alias": field.alias or field_name,
                    "required": field.is_required(),
                    "literals": literals(field.annotation),
                }
                for field_name, field in model.model_fields.items()
            },
        }
        for name, model in sorted(models(message_types().values()).items())
    }


# --- payloads of recorded histories ----------------------------------------------------------------


def _payload_json(payloads: dict[str, Any] | None) -> list[Any]:
    out = []
    for p in (payloads or {}).get("payloads", []):
        encoding = base64.b64decode(p.get("metadata", {}).get("encoding", "")).decode()
        if encoding == "json/plain":
            out.append(json.loads(base64.b64decode(p.get("data", ""))))
    return out


def _failure_details(failure: dict[str, Any] | None) -> list[Any]:
    node, depth = failure, 0
    while node and depth < 10:
        info = node.get("applicationFailureInfo")
        if info and info.get("details"):
            return _payload_json(info["details"])
        node, depth = node.get("cause"), depth + 1
    return []


def _events(history: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for event in history["history"]["events"]:
        kind = event["eventType"].removeprefix("EVENT_TYPE_")
        attrs = next((v for k, v in event.items() if k.endswith("EventAttributes")), {})
        yield kind, attrs, event


def _field(*path: str) -> Any:
    def payloads(attrs: dict[str, Any]) -> list[Any]:
        node: Any = attrs
        for step in path:
            node = (node or {}).get(step)
        return _payload_json(node)

    return payloads


def _failure_of(attrs: dict[str, Any]) -> list[Any]:
    return _failure_details(attrs.get("failure"))


KEYS: dict[str, tuple[str, Any]] = {
    "WORKFLOW_EXECUTION_STARTED": ("workflow:{typed}:input", _field("input")),
    "START_CHILD_WORKFLOW_EXECUTION_INITIATED": ("workflow:{typed}:input", _field("input")),
    "WORKFLOW_EXECUTION_CONTINUED_AS_NEW": ("workflow:{typed}:input", _field("input")),
    "WORKFLOW_EXECUTION_COMPLETED": ("workflow:{own}:result", _field("result")),
    "WORKFLOW_EXECUTION_FAILED": ("workflow:{own}:failure", _failure_of),
    "CHILD_WORKFLOW_EXECUTION_COMPLETED": ("workflow:{typed}:result", _field("result")),
    "CHILD_WORKFLOW_EXECUTION_FAILED": ("workflow:{typed}:failure", _failure_of),
    "ACTIVITY_TASK_SCHEDULED": ("activity:{activity}:input", _field("input")),
    "ACTIVITY_TASK_COMPLETED": ("activity:{activity}:result", _field("result")),
    "WORKFLOW_EXECUTION_SIGNALED": ("signal:{own}:{signal}", _field("input")),
    "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED": ("signal:*:{signal}", _field("input")),
    "WORKFLOW_EXECUTION_UPDATE_ACCEPTED": (
        "update:{own}:{update}:input",
        _field("acceptedRequest", "input", "args"),
    ),
    "WORKFLOW_EXECUTION_UPDATE_COMPLETED": ("update:{own}:{update}:result", _field("outcome", "success")),
}
"""Event type -> the message key of its payloads (filled from the event) and where they are."""


def payloads_of(history: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """``(message key, JSON)`` for every payload one workflow's recorded history holds."""
    own = ""
    activities: dict[str, str] = {}
    updates: dict[str, str] = {}
    for kind, attrs, event in _events(history):
        typed = attrs.get("workflowType", {}).get("name", "")
        own = typed if kind == "WORKFLOW_EXECUTION_STARTED" else own
        if kind == "ACTIVITY_TASK_SCHEDULED":
            activities[event["eventId"]] = attrs["activityType"]["name"]
        if kind == "WORKFLOW_EXECUTION_UPDATE_ACCEPTED":
            updates[event["eventId"]] = attrs["acceptedRequest"]["input"]["name"]
        if kind not in KEYS:
            continue
        template, where = KEYS[kind]
        key = template.format(
            typed=typed,
            own=own,
            activity=activities.get(event["eventId"])
            or activities.get(attrs.get("scheduledEventId", ""), ""),
            signal=attrs.get("signalName", ""),
            update=updates.get(event["eventId"]) or updates.get(attrs.get("acceptedEventId", ""), ""),
        )
        values = where(attrs)
        for i, value in enumerate(values):
            yield (key if len(values) == 1 else f"{key}#{i}"), value


def extract(directory: Path) -> list[dict[str, Any]]:
    """A few payloads per message key from every history file under ``directory``."""
    by_key: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        for history in json.loads(path.read_text()):
            for key, value in payloads_of(history):
                if value is not None:
                    by_key.setdefault(key, {})[json.dumps(value, sort_keys=True)] = value
    kept = []
    for key, values in sorted(by_key.items()):
        ordered = sorted(values, key=len, reverse=True)
        for text in dict.fromkeys([ordered[0], ordered[-1]][:SAMPLES_PER_KEY]):
            kept.append({"key": key, "json": values[text]})
    return kept


# --- decoding with this version's converter -----------------------------------------------------


def converter() -> Any:
    """This version's payload converter: ringmaster's own when it has one, else the SDK's pydantic one."""
    try:
        from ringmaster.converter import data_converter  # 0.2.0 and later
    except ImportError:
        from temporalio.contrib.pydantic import pydantic_data_converter as data_converter
    return data_converter.payload_converter


def decode(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each message decoded as this version's code would: ``ok``, or the validation errors."""
    types_by_key = message_types()
    payload_converter = converter()
    results = []
    for message in messages:
        key = message["key"]
        try:
            hint = resolve(types_by_key, key)
        except KeyError:
            results.append({"key": key, "ok": False, "errors": [{"type": "unknown-message-key"}]})
            continue
        payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(message["json"]).encode())
        try:
            payload_converter.from_payloads([payload], [hint])
        except ValidationError as err:
            errors = [{"type": e["type"], "loc": [str(p) for p in e["loc"]]} for e in err.errors()]
            results.append({"key": key, "ok": False, "errors": errors})
            continue
        results.append({"key": key, "ok": True, "errors": []})
    return results


def main(argv: list[str]) -> int:
    """``schema OUT``, ``extract DIR OUT`` or ``decode IN OUT``; see the module's docstring."""
    command, *paths = argv
    if command == "schema":
        Path(paths[0]).write_text(json.dumps(schema(), indent=1, sort_keys=True) + "\n")
    elif command == "extract":
        Path(paths[1]).write_text(json.dumps(extract(Path(paths[0])), indent=1, sort_keys=True) + "\n")
    elif command == "decode":
        answers = decode(json.loads(Path(paths[0]).read_text()))
        Path(paths[1]).write_text(json.dumps(answers, indent=1) + "\n")
    else:
        print(f"unknown command {command!r}: schema, extract or decode", file=sys.stderr)  # noqa: T201
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
