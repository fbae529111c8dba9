"""Reading fleet and plan files: every problem of a file reported at once, each with its path.

This is the only module of ``policies`` that touches the file system (``load_fleet``/``load_plan``).
Whatever the input (unreadable file, bad YAML, wrong types, unknown fields, broken references) the
functions here raise :class:`ConfigError` and nothing else; its ``problems`` name the path inside the
file in YAML spelling (``rings[1].strategy.canary.steps[2].setWeight``) and say what is allowed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import ValidationError

from policies import _errors, _yaml, residency
from policies._model import Document
from policies.fleet import Fleet
from policies.plan import ReleasePlan

_DocumentT = TypeVar("_DocumentT", bound=Document)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where (a path in YAML spelling, empty for the whole file) and what.

    ``source`` names the file when it differs from its error's (an error combining several files).
    """

    path: str
    message: str
    source: str = ""


class ConfigError(Exception):
    """A fleet or plan file is invalid; ``problems`` lists everything wrong with it."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        super().__init__(source, problems)
        self.source = source
        self.problems = problems

    @classmethod
    def combine(cls, errors: Sequence[ConfigError]) -> ConfigError:
        """One error holding every problem of ``errors`` (several files), each naming its own file."""
        if len(errors) == 1:
            return errors[0]
        return cls(
            ", ".join(e.source for e in errors),
            [replace(p, source=e.source_of(p)) for e in errors for p in e.problems],
        )

    def source_of(self, problem: Problem) -> str:
        """The file ``problem`` (one of ``problems``) is about."""
        return problem.source or self.source

    def __str__(self) -> str:
        return "\n".join(
            ": ".join(part for part in (self.source_of(p), p.path, p.message) if part) for p in self.problems
        )


@dataclass(frozen=True)
class Text:
    """A document as its caller read it: the name errors give it (usually its path) and its content.

    ``unreadable`` says why there is no content (a missing file, not UTF-8): parsing such a text
    reports that problem beside the other file's, so one run shows everything wrong.
    """

    source: str
    content: str
    unreadable: Problem | None = None


def read(path: str | os.PathLike[str]) -> Text:
    """The text of the file at ``path``; never raises (an unreadable file is a ``Text`` saying why)."""
    try:
        return Text(str(path), _read(path))
    except ConfigError as err:
        return Text(str(path), "", err.problems[0])


def parse(text: Text, model: type[_DocumentT]) -> _DocumentT:
    """Validate ``text`` as a fleet or a release plan (``model``); ConfigError if it is unreadable."""
    if text.unreadable is not None:
        raise ConfigError(text.source, [text.unreadable])
    return _parse(text.content, text.source, model)


def parse_fleet(text: str, source: str) -> Fleet:
    """Validate fleet YAML ``text``; ``source`` names it in errors (usually the file path)."""
    return _parse(text, source, Fleet)


def parse_plan(text: str, source: str) -> ReleasePlan:
    """Validate release-plan YAML ``text``; ``source`` names it in errors (usually the file path)."""
    return _parse(text, source, ReleasePlan)


def load_fleet(path: str | os.PathLike[str]) -> Fleet:
    """Read and validate a fleet file."""
    return parse_fleet(_read(path), str(path))


def load_plan(path: str | os.PathLike[str]) -> ReleasePlan:
    """Read and validate a release-plan file (on its own; see :func:`check_plan_against_fleet`)."""
    return parse_plan(_read(path), str(path))


def check_plan_against_fleet(plan: ReleasePlan, fleet: Fleet, source: str) -> None:
    """Raise ConfigError listing every reference from ``plan`` (file ``source``) the fleet cannot honour.

    Unknown clusters, regions and jurisdictions, selectors that select nothing, a cluster in two
    rings, and clusters outside ``allowedJurisdictions`` (rule ``jurisdiction-scope``).
    """
    problems = _ring_problems(plan, fleet) + _window_problems(plan, fleet) + _residency_problems(plan, fleet)
    if problems:
        raise ConfigError(source, problems)


def _read(path: str | os.PathLike[str]) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), [Problem("", "the file is not UTF-8 text")]) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(str(path), [Problem("", f"cannot read the file: {reason}")]) from None


def _parse(text: str, source: str, model: type[_DocumentT]) -> _DocumentT:
    kind = model.__name__
    try:
        data = _yaml.load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [Problem("", _yaml.describe_error(exc))]) from None
    except RecursionError:
        raise ConfigError(source, [Problem("", "the YAML is nested too deeply")]) from None
    if data is None:
        raise ConfigError(source, [Problem("", f"the file is empty; expected a {kind} document")])
    if not isinstance(data, dict):
        got = _errors.type_name(data)
        raise ConfigError(
            source, [Problem("", f"the top level must be a mapping (a {kind} document), got {got}")]
        )
    try:
        document = model.model_validate(data, context={"collect_problems": True})
    except ValidationError as exc:
        problems = [Problem(path, message) for path, message in _errors.describe(exc, model)]
        raise ConfigError(source, problems) from None
    found = document.problems()
    if found:
        raise ConfigError(source, [Problem(path, message) for path, message in found])
    return document


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{hint}; known: {', '.join(known)}"


def _ring_problems(plan: ReleasePlan, fleet: Fleet) -> list[Problem]:
    problems: list[Problem] = []
    known = [c.name for c in fleet.clusters]
    owner: dict[str, str] = {}
    allowed = plan.data_residency.allowed_jurisdictions
    for i, ring in enumerate(plan.rings):
        members: list[tuple[str, str]] = []
        if ring.cluster_selector is not None:
            path = f"rings[{i}].clusterSelector"
            selected = fleet.select(ring.cluster_selector)
            if not selected:
                labels = ", ".join(f"{k}={v}" for k, v in ring.cluster_selector.items())
                problems.append(Problem(path, f"selects no cluster of the fleet (none has all of {labels})"))
            members = [(c.name, path) for c in selected]
        for j, name in enumerate(ring.clusters or []):
            path = f"rings[{i}].clusters[{j}]"
            if name in known:
                members.append((name, path))
            else:
                problems.append(Problem(path, f"unknown cluster {name!r}{_suggest(name, known)}"))
        for name, path in members:
            if name in owner:
                problems.append(
                    Problem(
                        path, f"cluster {name!r} is already in ring {owner[name]!r}; a cluster joins one ring"
                    )
                )
            owner.setdefault(name, ring.name)
            jurisdiction = fleet.region_of(name).jurisdiction
            if allowed is not None and jurisdiction not in allowed:
                problems.append(
                    Problem(
                        path,
                        f"cluster {name!r} is in jurisdiction {jurisdiction}, outside "
                        f"dataResidency.allowedJurisdictions [{', '.join(allowed)}] "
                        f"(rule {residency.JURISDICTION_SCOPE})",
                    )
                )
    return problems


def _window_problems(plan: ReleasePlan, fleet: Fleet) -> list[Problem]:
    known = [r.name for r in fleet.regions]
    return [
        Problem(f"windows[{i}].regions[{j}]", f"unknown region {name!r}{_suggest(name, known)}")
        for i, window in enumerate(plan.windows)
        for j, name in enumerate(window.regions or [])
        if name not in known
    ]


def _residency_problems(plan: ReleasePlan, fleet: Fleet) -> list[Problem]:
    known = fleet.jurisdictions()
    residency_ = plan.data_residency
    problems = [
        Problem(
            f"dataResidency.allowedJurisdictions[{j}]",
            f"no region is in jurisdiction {name!r}{_suggest(name, known)}",
        )
        for j, name in enumerate(residency_.allowed_jurisdictions or [])
        if name not in known
    ]
    problems += [
        Problem(
            _errors.render_path(("dataResidency", "dataEndpoints", name)),
            f"no region is in jurisdiction {name!r}{_suggest(name, known)}",
        )
        for name in residency_.data_endpoints
        if name not in known
    ]
    return problems
