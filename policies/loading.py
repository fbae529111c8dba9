"""Reading fleet, plan and identity- and authorization-policy files: every problem of a file reported
at once, with its path.

This is the only module of ``policies`` that touches the file system (``load_fleet``/``load_plan``/
``load_identity_policy``/``load_authorization_policy``).
Whatever the input (unreadable file, bad YAML, wrong types, unknown fields, broken references) the
functions here raise :class:`ConfigError` and nothing else; its ``problems`` name the path inside the
file in YAML spelling (``rings[1].strategy.canary.steps[2].setWeight``) with its line and column, and
say what is allowed.

Input is bounded so that no file, however large or hostile, costs more than a second or two: a file
is at most :data:`MAX_FILE_BYTES`, its YAML at most ``_yaml.MAX_VALUES`` values nested at most
``_yaml.MAX_DEPTH`` deep, and at most :data:`MAX_PROBLEMS` problems are reported (the rest counted).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from policies import _errors, _yaml, residency
from policies._model import Document
from policies.authz import AuthorizationPolicy
from policies.fleet import Fleet
from policies.identity import IdentityPolicy
from policies.plan import ReleasePlan

_DocumentT = TypeVar("_DocumentT", bound=Document)

MAX_FILE_BYTES = 2 * 1024 * 1024
"""The largest fleet or plan read, in bytes (2 MiB; a fleet of 2,000 clusters is about 300 KB).

A bound on time as much as on memory: a syntax error at the end of a file this large costs a
second or two, because the pure-Python parser re-reads it (see ``_yaml.load``).
"""
MAX_PROBLEMS = _errors.MAX_PROBLEMS
"""At most this many problems are reported per run; a last line counts the ones left out."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where (a path in YAML spelling, empty for the whole file) and what.

    ``source`` names the file when it differs from its error's (an error combining several files);
    ``line`` and ``column`` (1-based) locate the path in the file when it is known.
    """

    path: str
    message: str
    source: str = ""
    line: int | None = None
    column: int | None = None


class ConfigError(Exception):
    """A fleet or plan file is invalid; ``problems`` lists what is wrong with it (at most MAX_PROBLEMS).

    ``omitted`` counts the problems found beyond that; ``problems`` then ends with a note saying so.
    """

    def __init__(self, source: str, problems: list[Problem], omitted: int = 0) -> None:
        shown = problems[:MAX_PROBLEMS]
        omitted += len(problems) - len(shown)
        if omitted:
            shown.append(
                Problem(
                    "",
                    f"{omitted} more problem(s) not shown: at most {MAX_PROBLEMS} are reported; "
                    "fix these and run again",
                )
            )
        super().__init__(source, shown)
        self.source = source
        self.problems = shown
        self.omitted = omitted

    @property
    def found(self) -> list[Problem]:
        """``problems`` without the closing note on omitted ones."""
        return self.problems[:-1] if self.omitted else self.problems

    @classmethod
    def combine(cls, errors: Sequence[ConfigError]) -> ConfigError:
        """One error holding every problem of ``errors`` (several files), each naming its own file."""
        if len(errors) == 1:
            return errors[0]
        return cls(
            ", ".join(e.source for e in errors),
            [replace(p, source=e.source_of(p)) for e in errors for p in e.found],
            omitted=sum(e.omitted for e in errors),
        )

    def source_of(self, problem: Problem) -> str:
        """The file ``problem`` (one of ``problems``) is about."""
        return problem.source or self.source

    def where(self, problem: Problem) -> str:
        """``FILE:LINE:COLUMN`` of ``problem`` (``FILE`` alone when its position is unknown)."""
        source = self.source_of(problem)
        if problem.line is None or not source:
            return source
        return f"{source}:{problem.line}:{problem.column}"

    def __str__(self) -> str:
        return "\n".join(
            ": ".join(part for part in (self.where(p), p.path, p.message) if part) for p in self.problems
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


def located(error: ConfigError, text: Text) -> ConfigError:
    """``error`` (problems of ``text``, such as :func:`check_plan_against_fleet`'s) with lines and columns."""
    try:
        loaded = _yaml.load(text.content)
    except _yaml.YamlError:
        return error
    return ConfigError(error.source, [_at(loaded, p) for p in error.found], omitted=error.omitted)


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


def load_identity_policy(path: str | os.PathLike[str]) -> IdentityPolicy:
    """Read and validate the worker's identity policy (``RINGMASTER_IDENTITY_POLICY``).

    A relative ``allowedSigners`` is resolved against the policy file's folder, so the policy and
    its signers file move together wherever the worker's working directory is.
    """
    policy = _parse(_read(path), str(path), IdentityPolicy)
    signers = policy.allowed_signers
    if signers is not None and not signers.is_absolute():
        policy = policy.model_copy(update={"allowed_signers": Path(path).parent / signers})
    return policy


def load_authorization_policy(path: str | os.PathLike[str]) -> AuthorizationPolicy:
    """Read and validate the worker's authorization policy (``RINGMASTER_AUTHORIZATION_POLICY``)."""
    return _parse(_read(path), str(path), AuthorizationPolicy)


def check_plan_against_fleet(plan: ReleasePlan, fleet: Fleet, source: str) -> None:
    """Raise ConfigError listing every reference from ``plan`` (file ``source``) the fleet cannot honour.

    Unknown clusters, regions and jurisdictions, selectors that select nothing, a cluster in two
    rings, clusters outside ``allowedJurisdictions`` (rule ``jurisdiction-scope``), and a flag moved
    in a region whose fleet entry names no flag server.
    """
    suggest = _errors.Suggestions()
    problems = (
        _ring_problems(plan, fleet, suggest)
        + _window_problems(plan, fleet, suggest)
        + _residency_problems(plan, fleet, suggest)
        + _flag_problems(plan, fleet)
    )
    if problems:
        raise ConfigError(source, problems)


_TOO_LARGE = (
    f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB ({MAX_FILE_BYTES:,} bytes), "
    "the most ringmaster reads"
)


def _read(path: str | os.PathLike[str]) -> str:
    try:
        with open(path, "rb") as file:
            content = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(str(path), [Problem("", f"cannot read the file: {reason}")]) from None
    if len(content) > MAX_FILE_BYTES:
        raise ConfigError(str(path), [Problem("", _TOO_LARGE)])
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), [Problem("", "the file is not UTF-8 text")]) from None


def _too_large(text: str) -> bool:
    return len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES


def _at(loaded: _yaml.Loaded, problem: Problem, loc: Sequence[object] | None = None) -> Problem:
    """``problem`` with the line and column of its path (of ``loc`` when given) in ``loaded``."""
    found = loaded.position(_errors.parse_path(problem.path) if loc is None else loc)
    return replace(problem, line=found.line, column=found.column)


def _parse(text: str, source: str, model: type[_DocumentT]) -> _DocumentT:
    kind = model.__name__
    if _too_large(text):
        raise ConfigError(source, [Problem("", _TOO_LARGE)])
    try:
        loaded = _yaml.load(text)
    except _yaml.YamlError as exc:
        where = exc.position
        problem = Problem("", f"invalid YAML: {exc.message}")
        if where is not None:
            problem = replace(problem, line=where.line, column=where.column)
        raise ConfigError(source, [problem]) from None
    data = loaded.data
    if data is None:
        raise ConfigError(source, [Problem("", f"the file is empty; expected a {kind} document")])
    if not isinstance(data, dict):
        got = _errors.type_name(data)
        problem = Problem("", f"the top level must be a mapping (a {kind} document), got {got}")
        raise ConfigError(source, [_at(loaded, problem)])
    unknown = _unknown_top_level(data, model)
    if len(unknown) > MAX_PROBLEMS:
        # Hundreds of thousands of stray keys would each become a validation error; stop here.
        allowed = ", ".join(field.alias or key for key, field in model.model_fields.items())
        problems = [
            _at(
                loaded,
                Problem(
                    _errors.render_path([str(key)]), f"unknown field {_errors.quote(key)}; allowed: {allowed}"
                ),
                [key],
            )
            for key in unknown[:MAX_PROBLEMS]
        ]
        raise ConfigError(source, problems, omitted=len(unknown) - MAX_PROBLEMS)
    try:
        document = model.model_validate(data, context={"collect_problems": True})
    except ValidationError as exc:
        problems = [
            _at(loaded, Problem(path, message), loc)
            for loc, path, message in _errors.describe(exc, model, limit=MAX_PROBLEMS)
        ]
        raise ConfigError(source, problems, omitted=exc.error_count() - len(problems)) from None
    found = document.problems()
    if found:
        problems = [_at(loaded, Problem(path, message)) for path, message in found[:MAX_PROBLEMS]]
        raise ConfigError(source, problems, omitted=len(found) - len(problems))
    return document


def _unknown_top_level(data: dict[object, object], model: type[Document]) -> list[object]:
    """The top-level keys ``model`` has no field for."""
    names = {name for key, field in model.model_fields.items() for name in (key, field.alias) if name}
    return [key for key in data if key not in names]


def _ring_problems(plan: ReleasePlan, fleet: Fleet, suggest: _errors.Suggestions) -> list[Problem]:
    problems: list[Problem] = []
    known = [c.name for c in fleet.clusters]
    known_set = set(known)
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
            if name in known_set:
                members.append((name, path))
            else:
                problems.append(Problem(path, f"unknown cluster {_errors.quote(name)}{suggest(name, known)}"))
        for name, path in members:
            if name in owner:
                problems.append(
                    Problem(
                        path,
                        f"cluster {_errors.quote(name)} is already in ring {_errors.quote(owner[name])}; "
                        "a cluster joins one ring",
                    )
                )
            owner.setdefault(name, ring.name)
            jurisdiction = fleet.region_of(name).jurisdiction
            if allowed is not None and jurisdiction not in allowed:
                problems.append(
                    Problem(
                        path,
                        f"cluster {_errors.quote(name)} is in jurisdiction {jurisdiction}, outside "
                        f"dataResidency.allowedJurisdictions [{', '.join(allowed)}] "
                        f"(rule {residency.JURISDICTION_SCOPE})",
                    )
                )
    return problems


def _window_problems(plan: ReleasePlan, fleet: Fleet, suggest: _errors.Suggestions) -> list[Problem]:
    known = [r.name for r in fleet.regions]
    known_set = set(known)
    return [
        Problem(f"windows[{i}].regions[{j}]", f"unknown region {_errors.quote(name)}{suggest(name, known)}")
        for i, window in enumerate(plan.windows)
        for j, name in enumerate(window.regions or [])
        if name not in known_set
    ]


def _residency_problems(plan: ReleasePlan, fleet: Fleet, suggest: _errors.Suggestions) -> list[Problem]:
    known = fleet.jurisdictions()
    residency_ = plan.data_residency
    problems = [
        Problem(
            f"dataResidency.allowedJurisdictions[{j}]",
            f"no region is in jurisdiction {_errors.quote(name)}{suggest(name, known)}",
        )
        for j, name in enumerate(residency_.allowed_jurisdictions or [])
        if name not in known
    ]
    problems += [
        Problem(
            _errors.render_path(("dataResidency", "dataEndpoints", name)),
            f"no region is in jurisdiction {_errors.quote(name)}{suggest(name, known)}",
        )
        for name in residency_.data_endpoints
        if name not in known
    ]
    return problems


def _flag_problems(plan: ReleasePlan, fleet: Fleet) -> list[Problem]:
    """Rings moving a flag into clusters of a region with no flag server (``regions[].flags``)."""
    problems: list[Problem] = []
    known = {c.name for c in fleet.clusters}
    for i, ring in enumerate(plan.rings):
        flag = ring.strategy.feature_flag
        if flag is None:
            continue
        if ring.clusters is None:
            clusters = fleet.select(ring.cluster_selector or {})
        else:  # unknown names are _ring_problems' to report
            clusters = [fleet.cluster(name) for name in ring.clusters if name in known]
        lacking: dict[str, list[str]] = {}
        for cluster in clusters:
            if fleet.region(cluster.region).flags is None:
                lacking.setdefault(cluster.region, []).append(cluster.name)
        if lacking:
            where = "; ".join(
                f"{_errors.quote(region)} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                for region, names in lacking.items()
            )
            problems.append(
                Problem(
                    f"rings[{i}].strategy.featureFlag",
                    f"moves flag {_errors.quote(flag.flag)} in region(s) whose fleet entry names no flag "
                    f"server: {where}; add regions[].flags {{url, project, environment}} to the fleet, "
                    "or move no flag in this ring",
                )
            )
    return problems
