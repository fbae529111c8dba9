"""Random input never crashes the loader: it loads, or it fails with a ConfigError naming paths.

Adversarial YAML (``tests.support.yaml_attacks``: explicit tags on any text, alias bombs, deep
nesting, huge and duplicate keys, stray documents) loads or gives a bounded list of problems;
``tests/cli/test_validate_plan.py`` sends the same texts through ``ringmaster validate``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import _errors, loading, residency, schedule
from policies.fleet import Fleet
from tests.support import fleets
from tests.support.yaml_attacks import adversarial, adversarial_documents

FLEET = fleets.example_fleet()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["5m", "soon", "50%", "Mon", "09:00", "24:00", "EU", "euw1-prod", "canary", "{{pod}}"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with up to three values replaced, deleted, or given an extra key."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(data)
        if not paths:
            break
        *parents, last = draw(st.sampled_from(paths))
        target: Any = data
        for part in parents:
            target = target[part]
        action = draw(st.sampled_from(["replace", "delete", "extra"]))
        if action == "replace" or (action == "extra" and not isinstance(target[last], dict)):
            target[last] = draw(values)
        elif action == "delete":
            del target[last]
        else:
            target[last][draw(st.text(min_size=1, max_size=8))] = draw(values)
    return data


def _attempt(call: Callable[[], Any]) -> tuple[Any, loading.ConfigError | None]:
    """Run ``call``; a ConfigError is returned rather than raised, any other exception propagates."""
    try:
        return call(), None
    except loading.ConfigError as error:
        return None, error


def _load_or_config_error(text: str, kind: str, *, paths: bool = False) -> None:
    parse = loading.parse_plan if kind == "plan" else loading.parse_fleet
    document, error = _attempt(lambda: parse(text, f"{kind}.yaml"))
    if error is not None:
        assert error.problems
        assert all(p.message and (p.path or not paths) for p in error.problems), str(error)
    elif kind == "plan":
        _use(document, FLEET)


def _use(plan: Any, fleet: Fleet) -> None:
    """A plan that loads can be checked, scheduled and judged without any other exception."""
    _, error = _attempt(lambda: loading.check_plan_against_fleet(plan, fleet, "plan.yaml"))
    if error is not None:
        assert all(p.path for p in error.problems), str(error)
        return
    built = schedule.build(plan, fleet, "1.0.0")
    residency.static_decisions(plan, fleet, built)


def fuzz(examples: int) -> settings:
    """Hypothesis settings: modest example counts keep the suite fast; no deadline on slow CI."""
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestLoaderNeverCrashes:
    @fuzz(200)
    @given(st.text(max_size=200))
    def test_random_text(self, text: str) -> None:
        """Arbitrary text is a plan, or a ConfigError."""
        _load_or_config_error(text, "plan")

    @fuzz(100)
    @given(values)
    def test_random_yaml_documents(self, data: Any) -> None:
        """Any YAML document (any shape of values) is a plan or fleet, or a ConfigError."""
        text = yaml.safe_dump(data)
        _load_or_config_error(text, "plan")
        _load_or_config_error(text, "fleet")

    @fuzz(40)
    @given(mutated(fleets.PLAN_DATA))
    def test_mutated_plans_fail_with_paths(self, data: dict[str, Any]) -> None:
        """A damaged example plan loads, or every problem names a path inside the file."""
        _load_or_config_error(yaml.safe_dump(data), "plan", paths=True)

    @fuzz(40)
    @given(mutated(fleets.FLEET_DATA))
    def test_mutated_fleets_fail_with_paths(self, data: dict[str, Any]) -> None:
        """A damaged example fleet loads, or every problem names a path inside the file."""
        _load_or_config_error(yaml.safe_dump(data), "fleet", paths=True)


# --- adversarial YAML ---------------------------------------------------------------------------------


def _check_bounded(error: loading.ConfigError) -> None:
    assert 0 < len(error.problems) <= loading.MAX_PROBLEMS + 1
    for problem in error.problems:
        # A message repeats at most a clipped name or key, never a whole value.
        assert len(problem.message) <= 400, problem.message[:200]
        assert len(problem.path) <= 20 * (_errors.ECHO_LIMIT + 4), problem.path[:200]


class TestAdversarialYaml:
    @adversarial(150)
    @given(adversarial_documents(), st.sampled_from(["plan", "fleet"]))
    def test_loading_never_crashes(self, text: str, kind: str) -> None:
        """Tags, bombs, deep nesting, huge and duplicate keys: a document, or a bounded list of problems."""
        parse = loading.parse_plan if kind == "plan" else loading.parse_fleet
        _, error = _attempt(lambda: parse(text, f"{kind}.yaml"))
        if error is not None:
            _check_bounded(error)
            assert all(p.line is None or p.line >= 1 for p in error.problems)
