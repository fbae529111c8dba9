"""Hypothesis strategies for hostile YAML: what an attacker would feed ``validate`` to crash or stall it.

Explicit tags on text that does not fit them (``!!int "abc"``, the crash of issue 12), unsupported
tags, alias bombs, nesting thousands deep, keys of up to 200,000 characters, duplicate keys, stray
documents and control characters, placed as values, keys, lines or whole documents of the example
plan and fleet.
"""

from __future__ import annotations

from datetime import timedelta

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.support import fleets

TAGS = [
    "!!int", "!!float", "!!bool", "!!null", "!!str", "!!binary", "!!timestamp", "!!set", "!!omap",
    "!!python/object:os.system", "!!python/name:builtins.eval", "!custom", "!", "!<tag:example.com,2026:x>",
]  # fmt: skip
tagged = st.builds(
    lambda tag, text: f"{tag} {text}",
    st.sampled_from(TAGS),
    st.one_of(
        st.sampled_from(["abc", "1", "0x1F", "0o17", "1e999", "-", "", "'5'", "[1, 2]", "{a: 1}", "yes"]),
        st.text(alphabet="0123456789_xob.eE+-", max_size=30),
        st.integers().map(str),
    ),
)
nested = st.builds(
    lambda depth, kind: {"flow": "[" * depth + "]" * depth, "map": "{a: " * depth + "1" + "}" * depth}[kind],
    st.integers(min_value=1, max_value=5000),
    st.sampled_from(["flow", "map"]),
)
bombs = st.builds(
    lambda width, depth: (
        "{a0: &a0 ["
        + ",".join(["x"] * width)
        + "], "
        + ", ".join(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, depth))
        + "}"
    ),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1, max_value=12),
)
huge_keys = st.builds(lambda size: "? " + "k" * size + "\n: 1", st.integers(min_value=1, max_value=200_000))
fragments = st.one_of(
    tagged,
    nested,
    bombs,
    huge_keys,
    st.sampled_from(
        ["*nowhere", "&a [*a]", "{a: 1, a: 1}", "[", "}", "\t", "\x00", "%YAML 1.1", "---", "...", "<<"]
    ),
    st.text(max_size=40),
)
FIELDS = [
    "service",
    "kind",
    "rings",
    "windows",
    "workload",
    "analysis",
    "dataResidency",
    "regions",
    "clusters",
]


@st.composite
def adversarial_documents(draw: st.DrawFn) -> str:
    """A plan or fleet text with adversarial fragments as values, as keys, as whole lines or documents."""
    base = yaml.safe_dump(draw(st.sampled_from([fleets.PLAN_DATA, fleets.FLEET_DATA])), sort_keys=False)
    lines = base.splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        fragment = draw(fragments)
        place = draw(st.sampled_from(["value", "line", "document", "key"]))
        if place == "value":
            lines.append(f"{draw(st.sampled_from(FIELDS))}: {fragment}")
        elif place == "key":
            lines.append(f"? {fragment}\n: x")
        elif place == "line":
            lines.insert(draw(st.integers(min_value=0, max_value=len(lines))), fragment)
        else:
            lines = [fragment]
    return "\n".join(lines) + "\n"


def adversarial(examples: int) -> settings:
    """A fixed budget, and a deadline that only catches hangs (a second is already far too slow)."""
    return settings(
        max_examples=examples,
        deadline=timedelta(seconds=20),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
