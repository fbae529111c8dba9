"""The base of every model users write: YAML-shaped aliases, unknown fields rejected, immutable.

Python attributes are snake_case; the YAML (and the JSON the models serialise to) is camelCase, so
``model_dump(mode="json")`` of a loaded plan reads like the file it came from and loads back with
``model_validate``. Temporal's pydantic converter serialises through the same aliases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache, cached_property
from typing import Annotated, Any, Protocol, Self, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    StrictBool,
    StrictInt,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from policies import _errors, messages


class Model(messages.Message):
    """Frozen, camelCase-aliased, ``extra="forbid"``; populated by alias or by attribute name.

    Being frozen, a model may keep indexes of its own fields in ``functools.cached_property``
    attributes (lookups by name on big fleets): pydantic leaves them out of validation, equality and
    serialisation, and :meth:`model_copy` drops them so a copy with other fields builds its own.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, as pydantic makes it, without the cached indexes of the original's fields."""
        copied = super().model_copy(update=update, deep=deep)
        for name in _cached_names(type(self)):
            copied.__dict__.pop(name, None)
        return copied


@cache
def _cached_names(cls: type) -> list[str]:
    return [
        name
        for klass in cls.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, cached_property)
    ]


def _not_bool(value: object) -> object:
    # YAML `true` would otherwise become 1 wherever a count or a weight is expected.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a whole number, not true/false")
    return value


Count = Annotated[StrictInt, BeforeValidator(_not_bool)]
"""A whole number; unlike a plain ``int`` it refuses ``true``/``false`` and ``"5"``."""


def _number(value: object) -> object:
    # A threshold of "5" or true is a mistake in the file, not a number to guess at.
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a number, not true/false")
    if isinstance(value, str):
        raise PydanticCustomError("float_type", "Input should be a number, not text in quotes")
    return value


Number = Annotated[float, BeforeValidator(_number)]
"""A number (whole or not); unlike a plain ``float`` it refuses ``true``/``false`` and ``"5"``."""

Flag = StrictBool
"""``true`` or ``false``; unlike a plain ``bool`` it refuses ``"yes"``, ``"true"``, ``1`` and ``0``."""


def require_exactly_one(owner: str, options: dict[str, object]) -> str:
    """Return the YAML name of the one option that is set (not None), or raise an error naming them all."""
    chosen = [name for name, value in options.items() if value is not None]
    if len(chosen) != 1:
        allowed = ", ".join(options)
        got = "none" if not chosen else " and ".join(chosen)
        raise PydanticCustomError(
            "exactly_one",
            "{owner} needs exactly one of {allowed}; got {got}",
            {"owner": owner, "allowed": allowed, "got": got},
        )
    return chosen[0]


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise PydanticCustomError(
            "name",
            "must be a lowercase name of letters, digits and '-' (at most 63, starting and ending "
            "with a letter or digit)",
        )
    return value


Name = Annotated[str, AfterValidator(_dns_label)]
"""A Kubernetes-style DNS label: ``api``, ``eu-west-1``, ``euw1-prod``."""


def _dns_subdomain(value: str) -> str:
    if len(value) > 253 or not all(_DNS_LABEL.fullmatch(part) for part in value.split(".")):
        raise PydanticCustomError(
            "name", "must be a lowercase DNS name: labels of letters, digits and '-' joined by '.'"
        )
    return value


Subdomain = Annotated[str, AfterValidator(_dns_subdomain)]
"""A Kubernetes object name (DNS subdomain): ``api``, ``api.v2``."""


def duplicates(collection: str, field: str | None, values: list[str]) -> list[tuple[str, str]]:
    """``(path, message)`` for every value already seen earlier in ``collection``."""
    first: dict[str, int] = {}
    found: list[tuple[str, str]] = []
    for i, value in enumerate(values):
        if value in first:
            path = f"{collection}[{i}]" + (f".{field}" if field else "")
            found.append((path, f"{_errors.quote(value)} is already at {collection}[{first[value]}]"))
        first.setdefault(value, i)
    return found


class Document(Model):
    """A whole file (fleet or plan): cross-references are checked after every field is valid.

    Subclasses list them in :meth:`problems`. Validating directly rejects an inconsistent document;
    the loader passes ``context={"collect_problems": True}`` and reports each problem with its path.
    """

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        if not (info.context or {}).get("collect_problems"):
            found = self.problems()
            if found:
                raise PydanticCustomError(
                    "inconsistent", "{problems}", {"problems": "; ".join(f"{p}: {m}" for p, m in found)}
                )
        return self

    def problems(self) -> list[tuple[str, str]]:
        """Rules relating entries to each other, as ``(path, message)`` pairs; empty when consistent."""
        return []


class _Named(Protocol):
    @property
    def name(self) -> str: ...


NamedT = TypeVar("NamedT", bound=_Named)


def by_name(items: Iterable[NamedT], name: str, what: str) -> NamedT:
    """The item called ``name``; KeyError ``unknown <what> 'name'`` if there is none."""
    for item in items:
        if item.name == name:
            return item
    raise KeyError(f"unknown {what} {name!r}")


def index_by_name(items: Iterable[NamedT]) -> dict[str, NamedT]:
    """Items by name, the first of each name winning (as :func:`by_name` finds it)."""
    index: dict[str, NamedT] = {}
    for item in items:
        index.setdefault(item.name, item)
    return index


def lookup(index: dict[str, NamedT], name: str, what: str) -> NamedT:
    """``index[name]``, with the KeyError :func:`by_name` raises when there is none."""
    try:
        return index[name]
    except KeyError:
        raise KeyError(f"unknown {what} {name!r}") from None
