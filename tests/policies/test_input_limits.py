"""Bounded input: file size, problem count and suggestions have limits, and every problem has a position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import _errors, judgement, loading
from policies.plan import ReleasePlan
from tests.policies.helpers import dump, make_fleet, problems
from tests.policies.test_fuzz import fuzz


def _unknown_keys(count: int) -> str:
    return "".join(f"k{i:07d}: 1\n" for i in range(count))


class TestFileSize:
    @pytest.mark.timeout(60)
    def test_a_50_mb_file_of_unknown_keys_is_refused_unread(self, tmp_path: Path) -> None:
        """A file over MAX_FILE_BYTES (here 50 MB of unknown keys) is one problem naming the limit."""
        path = tmp_path / "plan.yaml"
        path.write_text(_unknown_keys(50 * 1024 * 1024 // 10))
        text = loading.read(path)
        assert text.content == ""
        with pytest.raises(loading.ConfigError) as caught:
            loading.parse(text, ReleasePlan)
        assert [p.message for p in caught.value.problems] == [
            "the file is larger than 2 MiB (2,097,152 bytes), the most ringmaster reads"
        ]

    def test_text_over_the_limit_is_refused(self) -> None:
        """Text handed in directly (a submitted plan) has the same limit, counted in UTF-8 bytes."""
        text = "service: " + "é" * (loading.MAX_FILE_BYTES // 2) + "\n"
        assert len(text) < loading.MAX_FILE_BYTES
        assert problems(text) == [
            ("", "the file is larger than 2 MiB (2,097,152 bytes), the most ringmaster reads")
        ]


class TestProblemCount:
    @pytest.mark.timeout(120)
    def test_unknown_top_level_keys_are_counted_not_listed(self) -> None:
        """150,000 unknown top-level keys: MAX_PROBLEMS problems at their lines, a note counts the rest."""
        with pytest.raises(loading.ConfigError) as caught:
            loading.parse_plan(_unknown_keys(150_000), "plan.yaml")
        found = caught.value.problems
        assert len(found) == loading.MAX_PROBLEMS + 1
        assert found[0] == loading.Problem("k0000000", found[0].message, line=1, column=1)
        assert found[99].line == 100
        assert found[-1].message.startswith("149900 more problem(s) not shown: at most 100 are reported")
        assert len(str(caught.value)) < 30_000

    def test_validation_problems_are_bounded(self, plan_data: dict[str, Any]) -> None:
        """Many wrong values in one file are reported up to MAX_PROBLEMS, the rest counted."""
        plan_data["rings"] = [{"name": f"r{i}", "clusters": ["a"], "strategy": {}} for i in range(300)]
        with pytest.raises(loading.ConfigError) as caught:
            loading.parse_plan(dump(plan_data), "plan.yaml")
        assert len(caught.value.problems) == loading.MAX_PROBLEMS + 1
        assert caught.value.omitted == 200
        assert caught.value.problems[-1].message.startswith("200 more problem(s) not shown")

    def test_combined_files_keep_the_count(self) -> None:
        """Problems of two files together stay within MAX_PROBLEMS, and the note counts both files' rest."""
        many = [loading.Problem(f"p{i}", "wrong") for i in range(150)]
        combined = loading.ConfigError.combine(
            [loading.ConfigError("a.yaml", many), loading.ConfigError("b.yaml", many)]
        )
        assert len(combined.problems) == loading.MAX_PROBLEMS + 1
        assert combined.omitted == 200
        assert combined.problems[-1].message.startswith("200 more problem(s)")


class TestSuggestions:
    @pytest.mark.timeout(120)
    def test_a_thousand_unknown_clusters_print_little(self, plan_data: dict[str, Any]) -> None:
        """1,000 unknown cluster names, 2,000 known: at most three suggestions each, and no list of names."""
        fleet = make_fleet(
            [("eu-west-1", "EU", None)], [(f"cluster-{i:04d}", "eu-west-1", {}) for i in range(2000)]
        )
        plan_data["rings"] = [
            {
                "name": "all",
                "clusters": [f"clustre-{i:04d}" for i in range(1000)],
                "strategy": {"rolling": {}},
            }
        ]
        plan_data["windows"] = []
        text = loading.Text("plan.yaml", dump(plan_data))
        with pytest.raises(loading.ConfigError) as caught:
            judgement.judge(text, fleet, "1.0.0")
        error = caught.value
        assert len(error.problems) == loading.MAX_PROBLEMS + 1
        first = error.problems[0]
        assert first.message.startswith("unknown cluster 'clustre-0000' (did you mean 'cluster-0000'")
        assert "known:" not in first.message
        assert first.message.count("'cluster-") <= 3
        assert (first.line, first.column) == (dump(plan_data).splitlines().index("  - clustre-0000") + 1, 5)
        assert len(str(error)) < 30_000

    def test_a_small_fleet_lists_its_names(self) -> None:
        """With a handful of known names, the message lists them after the closest one."""
        assert _errors.suggest("eu-west-l", ["eu-west-1", "ap-south-2"]) == (
            " (did you mean 'eu-west-1'?); known: eu-west-1, ap-south-2"
        )


class TestPositions:
    def test_a_missing_field_is_placed_at_its_mapping(self) -> None:
        """A required field that is absent is reported where the mapping lacking it is written."""
        with pytest.raises(loading.ConfigError) as caught:
            loading.parse_plan("kind: ReleasePlan\nworkload:\n  namespace: api\n", "plan.yaml")
        placed = {p.path: (p.line, p.column) for p in caught.value.problems}
        assert placed["workload.container"] == (2, 1)
        assert placed["service"] == (1, 1)

    def test_top_level_shape_problems_are_placed(self) -> None:
        """A document that is no mapping is reported at its first line."""
        with pytest.raises(loading.ConfigError) as caught:
            loading.parse_plan("\n\n- a\n", "plan.yaml")
        assert (caught.value.problems[0].line, caught.value.problems[0].column) == (3, 1)

    @fuzz(200)
    @given(
        st.lists(
            st.one_of(
                st.integers(min_value=0, max_value=10**6), st.text(min_size=1, max_size=_errors.ECHO_LIMIT)
            ),
            max_size=6,
        )
    )
    def test_paths_parse_back(self, loc: list[int | str]) -> None:
        """Every path the loader writes (keys up to ECHO_LIMIT characters) reads back as its parts."""
        if loc and isinstance(loc[0], int):
            loc = ["root", *loc]
        assert _errors.parse_path(_errors.render_path(loc)) == loc
