"""YAML as people expect it, read by ruamel.yaml (YAML 1.2), with every value's line and column.

ruamel.yaml parses (its libyaml-derived C parser when installed, else its pure-Python parser; both
give the same events) and resolves plain scalars with the YAML 1.2 rules: ``NO`` (Norway's
jurisdiction code) stays text, ``10:00`` stays a time of day, only ``true``/``false`` are booleans.
This module builds plain values (dict, list, str, int, float, bool, None) from the events itself,
because that is where input is bounded and made precise:

- a key written twice in one mapping, a list or mapping used as a key, an unknown ``*alias``, a
  second document, and a tag other than the core ones (``!!binary``, ``!!python/...``) are
  :class:`YamlError` with a line and column, as is an explicit tag whose text does not fit it
  (``!!int "abc"``);
- nesting deeper than :data:`MAX_DEPTH` and more than :data:`MAX_VALUES` values (an alias counts
  every value it repeats, so "billion laughs" stops early) are refused before they cost memory;
- every value's position is kept, so a problem found later (a pydantic error, a cross-reference)
  is reported at its line and column (:meth:`Loaded.position`).

It parses events rather than composing ruamel's nodes because the C composer recurses and crashes
the interpreter on deeply nested input; the event loop here keeps an explicit stack.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML, events
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.resolver import Resolver

from policies import _errors

try:  # ruamel.yaml's C parser (the ``libyaml`` extra): about eight times faster than the pure one
    from ruamel.yaml.cyaml import CParser  # type: ignore[attr-defined]  # re-exported from the C module
except ImportError:  # pragma: no cover - the lock file installs it; this keeps other platforms working
    CParser = None

MAX_DEPTH = 64
"""Lists and mappings nest at most this deep (a plan nests about eight)."""
MAX_VALUES = 500_000
"""At most this many values per document, aliases counted each time they are used."""

_CORE = "tag:yaml.org,2002:"
_PLAIN_INT = re.compile(r"[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)")
_PLAIN_FLOAT = re.compile(r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?")
_SPECIAL_FLOATS = {".inf": float("inf"), ".nan": float("nan")}
_MAX_NUMBER_TEXT = 100
_IMPLICIT: dict[str, list[tuple[str, re.Pattern[str]]]] = Resolver.yaml_implicit_resolvers
"""ruamel.yaml's YAML 1.2 rules for plain scalars, by first character: ``[(tag, pattern)]``."""


@dataclass(frozen=True)
class Position:
    """Where a value starts in its text: 1-based line and column."""

    line: int
    column: int


class YamlError(Exception):
    """The text is not a YAML document this loader accepts; ``message`` says why, at a position."""

    def __init__(self, message: str, position: Position | None) -> None:
        super().__init__(message, position)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        if self.position is None:
            return f"invalid YAML: {self.message}"
        return f"invalid YAML at line {self.position.line}, column {self.position.column}: {self.message}"


@dataclass
class Loaded:
    """A document's value and the position of every value in it (by container identity).

    Events always carry marks; a value without one is placed at its container's position.
    """

    data: object
    root: Position
    _positions: dict[int, Any] = field(default_factory=dict, repr=False)

    def position(self, path: Sequence[object]) -> Position:
        """Where the value at ``path`` starts (for a mapping entry, its key), or its nearest ancestor."""
        current, found = self.data, self.root
        for part in path:
            places = self._positions.get(id(current))
            if places is None:
                break
            in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
            if not in_list and not (isinstance(current, dict) and part in current):
                break
            found, current = places[part] or found, current[part]  # type: ignore[index]
        return found


def _position(event: events.Event) -> Position | None:
    mark = event.start_mark
    return None if mark is None else Position(mark.line + 1, mark.column + 1)


def _tag_name(tag: str) -> str:
    short = "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag
    return _errors.clip(short)


def _to_int(text: str) -> int:
    if len(text) > _MAX_NUMBER_TEXT or not _PLAIN_INT.fullmatch(text):
        raise ValueError(text)
    digits = text.replace("_", "").lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    bases = {"0b": 2, "0o": 8, "0x": 16}
    base = bases.get(digits[:2], 10)
    return sign * int(digits[2:] if base != 10 else digits, base)


def _to_float(text: str) -> float:
    lowered = text.lower()
    unsigned = lowered.lstrip("+-")
    if unsigned in _SPECIAL_FLOATS:
        value = _SPECIAL_FLOATS[unsigned]
        return -value if lowered.startswith("-") else value
    if len(text) > _MAX_NUMBER_TEXT or not _PLAIN_FLOAT.fullmatch(text):
        raise ValueError(text)
    return float(text.replace("_", ""))


def _to_bool(text: str) -> bool:
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    raise ValueError(text)


def _to_null(text: str) -> None:
    if text not in ("", "~", "null", "Null", "NULL"):
        raise ValueError(text)


_CONSTRUCTORS: dict[str, tuple[str, Callable[[str], object]]] = {
    _CORE + "str": ("text", str),
    _CORE + "int": ("a whole number", _to_int),
    _CORE + "float": ("a number", _to_float),
    _CORE + "bool": ("true or false", _to_bool),
    _CORE + "null": ("null", _to_null),
}
_CONTAINER_TAGS = {None, "!", _CORE + "map", _CORE + "seq"}


def _resolve(text: str) -> str:
    """The tag YAML 1.2 gives plain scalar ``text`` (as ruamel.yaml resolves it); text by default."""
    for tag, pattern in _IMPLICIT.get(text[:1], ()):
        if pattern.match(text):
            # Plain scalars ruamel resolves beyond the core schema (dates, ``<<`` merge keys, the
            # ``=`` value tag) stay the text they are, as in YAML 1.2's core schema.
            return tag if tag in _CONSTRUCTORS else _CORE + "str"
    return _CORE + "str"


def _scalar(event: events.ScalarEvent) -> object:
    text: str = event.value
    tag = event.tag
    if tag is None or tag == "!":
        plain = event.implicit[0] and not event.style and tag is None
        tag = _resolve(text) if plain else _CORE + "str"
    if tag not in _CONSTRUCTORS:
        raise YamlError(f"the tag {_tag_name(tag)} is not supported; write a plain value", _position(event))
    what, construct = _CONSTRUCTORS[tag]
    try:
        return construct(text)
    except ValueError:
        raise YamlError(f"a value tagged {_tag_name(tag)} must be {what}", _position(event)) from None


def _events(text: str, *, pure: bool) -> Iterator[events.Event]:
    if pure or CParser is None:
        yield from YAML(typ="safe", pure=True).parse(text)
        return
    parser = CParser(text)
    while (event := parser.get_event()) is not None:
        yield event
        if isinstance(event, events.StreamEndEvent):
            return


class _Builder:
    """Plain values from parser events, with an explicit stack (so depth is checked, never recursed)."""

    def __init__(self) -> None:
        self.positions: dict[int, Any] = {}
        self.stack: list[tuple[dict[object, object] | list[object], int, str | None]] = []
        self.pending: list[tuple[object, Position | None] | None] = []  # a mapping's key awaiting a value
        self.anchors: dict[str, tuple[object, int]] = {}
        self.count = 0
        self.documents = 0
        self.root: tuple[object, Position | None] | None = None

    def feed(self, event: events.Event) -> None:
        if isinstance(event, events.ScalarEvent):
            self._count(1, event)
            value = _scalar(event)
            if event.anchor is not None:
                self.anchors[event.anchor] = (value, 1)
            self._add(value, _position(event), event)
        elif isinstance(event, events.MappingStartEvent | events.SequenceStartEvent):
            self._open(event)
        elif isinstance(event, events.MappingEndEvent | events.SequenceEndEvent):
            container, started, anchor = self.stack.pop()
            self.pending.pop()
            if anchor is not None:
                self.anchors[anchor] = (container, self.count - started)
        elif isinstance(event, events.AliasEvent):
            if event.anchor not in self.anchors:
                name = _errors.clip(str(event.anchor))
                raise YamlError(f"the alias *{name} has no anchor &{name} before it", _position(event))
            value, size = self.anchors[event.anchor]
            self._count(size, event)
            self._add(value, _position(event), event)
        elif isinstance(event, events.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise YamlError("a file holds one YAML document; remove the second '---'", _position(event))

    def _count(self, size: int, event: events.Event) -> None:
        self.count += size
        if self.count > MAX_VALUES:
            raise YamlError(
                f"more than {MAX_VALUES:,} values (an alias counts every value it repeats); "
                f"ringmaster reads at most {MAX_VALUES:,}",
                _position(event),
            )

    def _open(self, event: events.MappingStartEvent | events.SequenceStartEvent) -> None:
        if event.tag not in _CONTAINER_TAGS:
            raise YamlError(f"the tag {_tag_name(str(event.tag))} is not supported", _position(event))
        if len(self.stack) >= MAX_DEPTH:
            raise YamlError(f"lists and mappings nest more than {MAX_DEPTH} levels deep", _position(event))
        started = self.count
        self._count(1, event)
        container: dict[object, object] | list[object]
        if isinstance(event, events.MappingStartEvent):
            container = {}
            self.positions[id(container)] = {}
        else:
            container = []
            self.positions[id(container)] = []
        self._add(container, _position(event), event)
        self.stack.append((container, started, event.anchor))
        self.pending.append(None)

    def _add(self, value: object, position: Position | None, event: events.Event) -> None:
        if not self.stack:
            self.root = (value, position)
            return
        parent = self.stack[-1][0]
        places = self.positions[id(parent)]
        if isinstance(parent, list):
            parent.append(value)
            places.append(position)
            return
        key = self.pending[-1]
        if key is None:
            if isinstance(value, dict | list):
                raise YamlError("a key must be a plain value such as a name, not a list or mapping", position)
            if value in parent:
                raise YamlError(f"the key {_errors.quote(value)} appears twice in this mapping", position)
            self.pending[-1] = (value, position)
            return
        parent[key[0]] = value
        places[key[0]] = key[1]
        self.pending[-1] = None


def load(text: str) -> Loaded:
    """Parse one YAML document and keep its positions; YamlError (with line and column) if it is not one.

    The C parser reads first. libyaml, which it derives from, rejects some YAML 1.2 that the
    pure-Python parser reads (a time in a flow list: ``[10:00]``), so when it reports a syntax error
    the pure parser decides; it stops at the first error too, so the retry costs at most one slow read.
    """
    try:
        return _build(text, pure=CParser is None)
    except _SyntaxError as exc:
        if CParser is None:
            raise exc.error from None
    try:
        return _build(text, pure=True)
    except _SyntaxError as exc:
        raise exc.error from None


class _SyntaxError(Exception):
    """The parser (not the rules of this module) refused the text; ``error`` says where and why."""

    def __init__(self, error: YamlError) -> None:
        super().__init__(error)
        self.error = error


def _build(text: str, *, pure: bool) -> Loaded:
    builder = _Builder()
    try:
        for event in _events(text, pure=pure):
            builder.feed(event)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = None if mark is None else Position(mark.line + 1, mark.column + 1)
        message = _errors.clip(str(exc.problem or exc.context or "invalid YAML"), 120)
        raise _SyntaxError(YamlError(message, where)) from None
    except (YAMLError, ValueError, UnicodeError) as exc:
        raise _SyntaxError(YamlError(_errors.clip(" ".join(str(exc).split()), 120), None)) from None
    value, position = builder.root if builder.root is not None else (None, None)
    return Loaded(value, position or Position(1, 1), builder.positions)
