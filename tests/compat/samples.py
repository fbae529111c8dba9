"""The previous version's fixtures, and today's models filled from them: samples for the compat tests.

``fixtures/<tag>/payloads.json`` holds payloads the previous version wrote (``python -m
tests.compat.record`` makes them); :func:`decoded` reads each with today's converter as the type
today's code declares for its message key, and :func:`instances` collects, per model class, the
instances found anywhere inside them: real, fully valid data of each model, to add a field to.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio.api.common.v1 import Payload

from ringmaster.converter import data_converter
from tests.compat import surface
from tests.support import previous

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> Any:
    """``fixtures/<previous tag>/<name>``, or a failure saying how to make it."""
    tag = str(previous.record()["tag"])
    path = FIXTURES / tag / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m tests.compat.record` to make it")
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def types() -> dict[str, Any]:
    """Today's message keys and the types their receivers declare."""
    return surface.message_types()


def payload(value: Any) -> Payload:
    """A ``json/plain`` payload of a JSON value, as ringmaster's converter writes them."""
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


def decode(key: str, value: Any) -> Any:
    """``value`` (JSON) decoded by today's converter as the type today's code declares for ``key``."""
    hint = surface.resolve(types(), key)
    [decoded] = data_converter.payload_converter.from_payloads([payload(value)], [hint])
    return decoded


def encode(value: Any) -> Any:
    """``value`` as today's converter writes it, back as JSON."""
    [written] = data_converter.payload_converter.to_payloads([value])
    return json.loads(written.data)


@cache
def decoded() -> list[tuple[str, Any]]:
    """Every fixture payload of the previous version, decoded by today's code: ``(key, value)``."""
    return [(m["key"], decode(m["key"], m["json"])) for m in fixture("payloads.json")]


def first(key: str) -> Any:
    """The first decoded fixture payload of message ``key``."""
    return next(value for found, value in decoded() if found == key)


def _walk(value: Any) -> Iterator[BaseModel]:
    if isinstance(value, BaseModel):
        yield value
        for name in type(value).model_fields:
            yield from _walk(getattr(value, name))
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)


@cache
def instances() -> dict[type[BaseModel], BaseModel]:
    """One instance per model class found in the decoded fixtures (the one of largest JSON)."""
    found: dict[type[BaseModel], tuple[int, BaseModel]] = {}
    for _, value in decoded():
        for model in _walk(value):
            size = len(model.model_dump_json())
            if size > found.get(type(model), (-1, model))[0]:
                found[type(model)] = (size, model)
    return {cls: model for cls, (_, model) in found.items()}
