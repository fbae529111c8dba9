"""Label and field selectors, parsed and matched as the API server does.

Label selectors accept the full string grammar of ``labels.Parse`` (``a=b``, ``a==b``, ``a!=b``,
``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``, and the numeric ``a>1``/``a<1``); field selectors
accept ``path=value``, ``path==value`` and ``path!=value`` over the paths a resource supports,
and reject any other path with the server's 400. ``LabelSelector`` objects (``matchLabels`` and
``matchExpressions``) are matched by :func:`selector_matches` and printed by
:func:`selector_string` (the ``status.selector`` of a Scale).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.apiserver.errors import bad_request
from sandbox.apiserver.resources import ResourceType

_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|>|<|[^\s!=(),<>]+)")


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this clause."""
        has = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "==", "in"):
            return has and value in self.values
        if self.op in ("!=", "notin"):
            return not has or value not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if value is None or not value.lstrip("-").isdigit():
            return False
        bound = int(self.values[0])
        return int(value) > bound if self.op == ">" else int(value) < bound


LabelSelector = tuple[Requirement, ...]


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            break
        tokens.append(match.group(1))
        pos = match.end()
        if not text[pos:].strip():
            break
    return tokens


def parse_labels(text: str | None) -> LabelSelector:
    """Parse a label selector string; 400 with the server's wording when it is malformed."""
    if not text or not text.strip():
        return ()
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    i = 0

    def fail(why: str) -> Exception:
        return bad_request(f"unable to parse requirement: {why}")

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise fail(f"found '', expected: identifier in {text!r}")
        i += 1
        return tokens[i - 1]

    while i < len(tokens):
        word = take()
        if word == "!":
            key = take()
            op, values = "!", tuple[str, ...]()
        else:
            key = word
            op = tokens[i] if i < len(tokens) else ","
            if op == ",":
                op, values = "exists", ()
            elif op in ("=", "==", "!=", ">", "<"):
                i += 1
                value = tokens[i] if i < len(tokens) and tokens[i] != "," else ""
                i += 1 if value else 0
                values = (value,)
            elif op in ("in", "notin"):
                i += 1
                if take() != "(":
                    raise fail(f"found {tokens[i - 1]!r}, expected: '(' in {text!r}")
                collected: list[str] = []
                while True:
                    item = take()
                    if item == ")":
                        break
                    if item != ",":
                        collected.append(item)
                values = tuple(collected)
            else:
                raise fail(f"found {op!r}, expected: in, notin, =, ==, !=, gt, lt in {text!r}")
        if not _KEY.match(key):
            raise fail(f"invalid label key {key!r}: name part must consist of alphanumeric characters")
        for value in values:
            if op in (">", "<") and not value.lstrip("-").isdigit():
                raise fail(f"for 'gt', 'lt' operators, the value must be an integer: {value!r}")
            if not _VALUE.match(value) or len(value) > 63:
                raise fail(f"invalid label value: {value!r}: must be 63 characters or less and alphanumeric")
        requirements.append(Requirement(key, op, values))
        if i < len(tokens):
            if tokens[i] != ",":
                raise fail(f"found {tokens[i]!r}, expected: ',' or 'end of string' in {text!r}")
            i += 1
    return tuple(requirements)


def labels_match(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    """Whether every clause of ``selector`` holds for ``labels``."""
    found = labels or {}
    return all(r.matches(found) for r in selector)


@dataclass(frozen=True)
class FieldRequirement:
    """One ``path=value`` / ``path!=value`` clause of a field selector."""

    path: str
    value: str
    negated: bool


FieldSelector = tuple[FieldRequirement, ...]


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_fields(text: str | None, rt: ResourceType) -> FieldSelector:
    """Parse a field selector for ``rt``; 400 for syntax errors and unsupported paths."""
    if not text or not text.strip():
        return ()
    allowed = ("metadata.name", "metadata.namespace", *rt.field_selectors)
    clauses = [c for c in re.split(r"(?<!\\),", text) if c.strip()]
    parsed: list[FieldRequirement] = []
    for clause in clauses:
        match = re.match(r"^\s*([^!=\s]+)\s*(!=|==|=)(.*)$", clause)
        if match is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{clause}'")
        path, op, value = match.group(1), match.group(2), _unescape(match.group(3).strip())
        if path not in allowed:
            quoted = ", ".join(f'"{p}"' for p in allowed)
            raise bad_request(f"field label not supported: {path} (supported: {quoted})")
        parsed.append(FieldRequirement(path, value, op == "!="))
    return tuple(parsed)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string a field selector compares for ``path`` (``""`` when absent, booleans lower-case)."""
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:
        return "false" if path == "spec.unschedulable" else ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def fields_match(selector: FieldSelector, obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` satisfies every clause of ``selector``."""
    return all((field_value(obj, r.path) == r.value) != r.negated for r in selector)


def object_matcher(labels: LabelSelector, fields: FieldSelector) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate applying both selectors to an object."""

    def matches(obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        return labels_match(labels, meta.get("labels")) and fields_match(fields, obj)

    return matches


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Whether a ``LabelSelector`` object selects ``labels`` (an empty selector selects everything)."""
    return labels_match(selector_requirements(selector), labels)


def selector_requirements(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A ``LabelSelector`` object as parsed requirements."""
    if not selector:
        return ()
    found = [Requirement(k, "=", (str(v),)) for k, v in sorted((selector.get("matchLabels") or {}).items())]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(str(expr.get("operator")), "in")
        found.append(Requirement(str(expr.get("key")), op, tuple(str(v) for v in expr.get("values") or [])))
    return tuple(found)


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A ``LabelSelector`` object in string form, as ``Scale.status.selector`` carries it."""
    parts: list[str] = []
    for r in selector_requirements(selector):
        if r.op == "=":
            parts.append(f"{r.key}={r.values[0]}")
        elif r.op in ("in", "notin"):
            parts.append(f"{r.key} {r.op} ({','.join(r.values)})")
        else:
            parts.append(r.key if r.op == "exists" else f"!{r.key}")
    return ",".join(parts)
