"""``policies.judgement.judge``: the one path from plan text to a judged schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import judgement, loading
from policies.fleet import Fleet
from tests.support.fleets import EXAMPLES

PLAN = (EXAMPLES / "plan.yaml").read_text()
FLEET = (EXAMPLES / "fleet.yaml").read_text()
UNREADABLE = loading.Problem("", "cannot read the file: No such file or directory")


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def _plan(content: str = PLAN, unreadable: loading.Problem | None = None) -> loading.Text:
    return loading.Text("plan.yaml", content, unreadable)


def _fleet(content: str = FLEET, unreadable: loading.Problem | None = None) -> loading.Text:
    return loading.Text("fleet.yaml", content, unreadable)


class TestValidPlans:
    @pytest.mark.parametrize("as_object", [False, True], ids=["fleet-text", "fleet-object"])
    def test_the_example_is_scheduled_and_allowed(self, as_object: bool) -> None:
        """The example plan schedules all 3 rings and 7 clusters, each with decisions, and nothing denies."""
        fleet: loading.Text | Fleet = loading.parse(_fleet(), Fleet) if as_object else _fleet()
        judged = judgement.judge(_plan(), fleet, "1.4.2")
        clusters = [c.name for c in judged.schedule.all_clusters()]
        assert (len(judged.schedule.rings), len(clusters)) == (3, 7)
        assert judged.schedule.version == "1.4.2"
        assert set(judged.decisions) == set(clusters)
        assert all(judged.decisions[name] for name in clusters)
        assert judged.denials == ()

    @pytest.mark.parametrize(
        ("old", "new", "denied"),
        [
            ("EU: [orders.db.eu.example.com", "EU: [orders.db.us.example.com", "euw1-internal"),
            ("US: [orders.db.us.example.com]", "US: [orders.db.example.org]", "use1-prod"),
        ],
        ids=["eu-data-in-us", "us-data-unknown-host"],
    )
    def test_residency_denials_are_part_of_the_judgement(self, old: str, new: str, denied: str) -> None:
        """A statically denied plan is judged, not rejected: the denial names the cluster and its rule."""
        judged = judgement.judge(_plan(_edit(PLAN, old, new)), _fleet(), "v1")
        assert denied in {d.cluster for d in judged.denials}
        assert all(d.verdict == "deny" for d in judged.denials)
        assert {d.rule for d in judged.denials} == {"data-endpoints"}


class TestProblems:
    @pytest.mark.parametrize(
        ("plan", "fleet", "version", "expected"),
        [
            pytest.param(
                _plan(_edit(PLAN, "- setWeight: 25", "- setWeight: 125")),
                _fleet("regions: [unclosed\n"),
                "v1",
                [("fleet.yaml", ""), ("plan.yaml", "rings[0].strategy.canary.steps[2].setWeight")],
                id="both-files-at-once",
            ),
            pytest.param(
                _plan(unreadable=UNREADABLE),
                _fleet(),
                "v1",
                [("plan.yaml", "")],
                id="unreadable-plan",
            ),
            pytest.param(
                _plan(unreadable=UNREADABLE),
                _fleet(unreadable=UNREADABLE),
                "v1",
                [("fleet.yaml", ""), ("plan.yaml", "")],
                id="both-unreadable",
            ),
            pytest.param(
                _plan(_edit(PLAN, "clusters: [euw1-internal]", "clusters: [euw1-internl]")),
                _fleet(),
                "v1",
                [("plan.yaml", "rings[0].clusters[0]")],
                id="across-the-files",
            ),
            pytest.param(_plan(), _fleet(), 'v1"}', [("", "")], id="unusable-version"),
        ],
    )
    def test_every_problem_is_one_config_error(
        self,
        plan: loading.Text,
        fleet: loading.Text,
        version: str,
        expected: list[tuple[str, str]],
    ) -> None:
        """Every problem of the inputs comes back in one ConfigError, each naming its file and path."""
        with pytest.raises(loading.ConfigError) as caught:
            judgement.judge(plan, fleet, version)
        error = caught.value
        found = [(error.source_of(p), p.path) for p in error.problems]
        assert sorted(set(found)) == sorted(set(expected))

    def test_problems_print_one_line_each_naming_their_file(self) -> None:
        """str() of a combined error gives each problem on its own line, prefixed with its own file."""
        with pytest.raises(loading.ConfigError) as caught:
            judgement.judge(_plan("rings: 7\n"), _fleet("kind: [Fleet]\n"), "v1")
        lines = str(caught.value).splitlines()
        assert len(lines) == len(caught.value.problems) >= 2
        assert any(line.startswith("fleet.yaml:1:1: ") for line in lines)
        assert any(line.startswith("plan.yaml:1:1: ") for line in lines)

    def test_an_unusable_version_says_what_is_allowed(self) -> None:
        """A version the schedule cannot use is a ConfigError naming the rule, not a ValueError."""
        with pytest.raises(loading.ConfigError) as caught:
            judgement.judge(_plan(), _fleet(), "v 1")
        assert "letters, digits" in str(caught.value)
        assert str(caught.value).startswith("version 'v 1'")


class TestReading:
    def test_a_missing_file_reads_as_a_text_saying_why(self, tmp_path: Path) -> None:
        """loading.read never raises: a missing file is a Text whose parse reports that it cannot be read."""
        text = loading.read(f"{tmp_path}/missing.yaml")
        assert text.unreadable is not None
        with pytest.raises(loading.ConfigError) as caught:
            loading.parse(text, Fleet)
        assert "cannot read the file" in str(caught.value)
