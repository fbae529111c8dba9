"""Loading plans: every mistake reported at once, at its YAML path, saying what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from policies import _yaml, loading
from policies.fleet import Fleet
from policies.plan import ReleasePlan
from tests.policies.helpers import drop_path, dump, problems, set_path
from tests.support import fleets

Mutation = Callable[[dict[str, Any]], None]


STEPS = "rings.0.strategy.canary.steps"
METRIC = "analysis.metrics"


class TestPlanValidation:
    def test_example_plan_loads(self, plan: ReleasePlan) -> None:
        """The committed example plan is valid as written."""
        assert [r.name for r in plan.rings] == ["internal", "beta", "broad"]
        assert plan.analysis.metrics[2].baseline is not None
        assert plan.analysis.metrics[2].baseline.max_degradation == 50

    @pytest.mark.parametrize(
        ("mutation", "path", "message"),
        [
            (
                set_path(f"{STEPS}.2.setWeight", 125),
                "rings[0].strategy.canary.steps[2].setWeight",
                "less than or equal to 100",
            ),
            (
                set_path(f"{STEPS}.2.setWeight", -1),
                "rings[0].strategy.canary.steps[2].setWeight",
                "greater than or equal to 0",
            ),
            (
                set_path(f"{STEPS}.2.setWeight", True),
                "rings[0].strategy.canary.steps[2].setWeight",
                "whole number",
            ),
            (
                set_path(f"{STEPS}.2.setWeight", 2.5),
                "rings[0].strategy.canary.steps[2].setWeight",
                "whole number",
            ),
            (
                set_path(f"{STEPS}.1.pause", {"duration": "soon"}),
                "rings[0].strategy.canary.steps[1].pause.duration",
                "not a duration",
            ),
            (
                set_path(f"{STEPS}.1.pause", {"duration": "0s"}),
                "rings[0].strategy.canary.steps[1].pause.duration",
                "pause: {}",
            ),
            (
                set_path(f"{STEPS}.1", {"setWeight": 5, "pause": {}}),
                "rings[0].strategy.canary.steps[1]",
                "exactly one of setWeight, pause",
            ),
            (set_path(f"{STEPS}.1", {}), "rings[0].strategy.canary.steps[1]", "got none"),
            (set_path(STEPS, []), "rings[0].strategy.canary.steps", "at least 1"),
            (set_path("rings.0.bakeTim", "30m"), "rings[0].bakeTim", "did you mean 'bakeTime'"),
            (
                set_path("rings.0.strategy.rolling", {}),
                "rings[0].strategy",
                "exactly one of canary, blueGreen, rolling; got canary and rolling",
            ),
            (set_path("rings.0.strategy", {}), "rings[0].strategy", "got none"),
            (
                set_path("rings.0.strategy.canary.trafficRouting", {"httpRoute": "Bad_Route"}),
                "rings[0].strategy.canary.trafficRouting.httpRoute",
                "lowercase",
            ),
            (
                set_path("rings.0.clusterSelector", {"audience": "internal"}),
                "rings[0]",
                "exactly one of clusters, clusterSelector",
            ),
            (drop_path("rings.0.clusters"), "rings[0]", "got none"),
            (set_path("rings.0.clusters", []), "rings[0].clusters", "at least 1"),
            (set_path("rings.0.maxParallel", 0), "rings[0].maxParallel", "greater than or equal to 1"),
            (set_path("rings.0.maxParallel", 2001), "rings[0].maxParallel", "less than or equal to 2000"),
            (
                set_path("rings.0.bakeTime", "1" * 10_000 + "x"),
                "rings[0].bakeTime",
                "'" + "1" * 39 + "'… is not a duration; write",
            ),
            (set_path("rings.1.approval.required", "yes"), "rings[1].approval.required", "true or false"),
            (set_path("rings.1.approval.required", 1), "rings[1].approval.required", "true or false"),
            (
                set_path("rings.1.strategy.blueGreen.autoPromotionEnabled", "false"),
                "rings[1].strategy.blueGreen.autoPromotionEnabled",
                "must be true or false, got text",
            ),
            (set_path("rings.0.bakeTime", "forever"), "rings[0].bakeTime", "not a duration"),
            (
                set_path("rings.1.approval", {"fourEyes": True}),
                "rings[1].approval",
                "fourEyes: true needs required: true",
            ),
            (set_path("rings.1.name", "internal"), "rings[1].name", "already at rings[0]"),
            (
                set_path("rings.1.strategy.blueGreen.scaleDownDelaySeconds", -5),
                "rings[1].strategy.blueGreen.scaleDownDelaySeconds",
                "greater than or equal to 0",
            ),
            (set_path("rings", []), "rings", "at least 1"),
            (set_path("analysis.noData", "maybe"), "analysis.noData", "'inconclusive' or 'fail'"),
            (set_path("analysis.threshold", 0), "analysis.threshold", "greater than or equal to 1"),
            (set_path("analysis.interval", "0s"), "analysis.interval", "at least 1s"),
            (set_path("analysis.minDataPoints", -1), "analysis.minDataPoints", "greater than or equal to 0"),
            (
                set_path(f"{METRIC}.0.thresholdRange", {}),
                "analysis.metrics[0].thresholdRange",
                "needs min, max or both",
            ),
            (
                set_path(f"{METRIC}.0.thresholdRange", {"min": 5, "max": 1}),
                "analysis.metrics[0].thresholdRange",
                "min must not be greater",
            ),
            (
                set_path(f"{METRIC}.0.thresholdRange", {"min": "0.99"}),
                "analysis.metrics[0].thresholdRange.min",
                "must be a number, got text (write it without quotes)",
            ),
            (
                set_path(f"{METRIC}.0.thresholdRange", {"max": True}),
                "analysis.metrics[0].thresholdRange.max",
                "must be a number, got true/false",
            ),
            (
                set_path(
                    f"{METRIC}.2.baseline",
                    {"judge": "mannWhitney", "direction": "lowerIsWorse", "tolerance": "0.1"},
                ),
                "analysis.metrics[2].baseline.tolerance",
                "must be a number, got text",
            ),
            (set_path(f"{METRIC}.1.query", "   \n\t"), "analysis.metrics[1].query", "not blank"),
            (
                set_path(f"{METRIC}.0.thresholdRange", {"min": float("nan")}),
                "analysis.metrics[0].thresholdRange.min",
                "finite",
            ),
            (
                set_path(f"{METRIC}.0.baseline", {"maxDegradation": "5%", "direction": "lowerIsWorse"}),
                "analysis.metrics[0]",
                "exactly one of thresholdRange, baseline",
            ),
            (
                drop_path(f"{METRIC}.2.baseline.direction"),
                "analysis.metrics[2].baseline.direction",
                "required",
            ),
            (
                set_path(f"{METRIC}.2.baseline.direction", "up"),
                "analysis.metrics[2].baseline.direction",
                "'lowerIsWorse' or 'higherIsWorse'",
            ),
            (
                set_path(f"{METRIC}.2.baseline.maxDegradation", "fifty"),
                "analysis.metrics[2].baseline.maxDegradation",
                "50%",
            ),
            (
                set_path(f"{METRIC}.2.baseline.maxDegradation", "150%"),
                "analysis.metrics[2].baseline",
                "at most 100%",
            ),
            (
                set_path(f"{METRIC}.2.baseline.classifier", "mannWhitney"),
                "analysis.metrics[2].baseline.classifier",
                "unknown field",
            ),
            (
                set_path(f"{METRIC}.1.query", 'rate(x{pod="{{pod}}"}[1m])'),
                "analysis.metrics[1].query",
                "unknown placeholder {{pod}}",
            ),
            (
                set_path(f"{METRIC}.1.query", 'rate(x{a="{{cluster"}[1m])'),
                "analysis.metrics[1].query",
                "never closed",
            ),
            (
                set_path(f"{METRIC}.1.name", "request-success-rate"),
                "analysis.metrics[1].name",
                "already at analysis.metrics[0]",
            ),
            (set_path("windows.0.weekly.0.days", ["Funday"]), "windows[0].weekly[0].days[0]", "'Mon'"),
            (set_path("windows.0.weekly.0.start", "25:00"), "windows[0].weekly[0].start", "HH:MM"),
            (set_path("windows.0.weekly.0.end", "09:00"), "windows[0].weekly[0]", "start and end are equal"),
            (
                set_path("windows.0.freeze", {"from": "2026-12-20T00:00:00Z", "to": "2027-01-04T00:00:00Z"}),
                "windows[0]",
                "exactly one of weekly, freeze",
            ),
            (
                set_path("windows.1.freeze.from", "2026-12-20T00:00:00"),
                "windows[1].freeze.from",
                "UTC offset",
            ),
            (
                set_path("windows.1.freeze.to", "2026-12-01T00:00:00Z"),
                "windows[1].freeze",
                "'to' must be after 'from'",
            ),
            (set_path("windows.1.freeze.until", "x"), "windows[1].freeze.until", "allowed: from, to, reason"),
            (set_path("rollback.scope", "everything"), "rollback.scope", "'cluster', 'ring' or 'release'"),
            (
                set_path("dataResidency.dataClass", "secret"),
                "dataResidency.dataClass",
                "'personal', 'pseudonymous' or 'none'",
            ),
            (drop_path("dataResidency"), "dataResidency", "required"),
            (
                set_path("dataResidency.dataEndpoints.EU", ["postgres://app:pw@db.eu.example.com/x"]),
                "dataResidency.dataEndpoints.EU[0]",
                "credentials",
            ),
            (
                set_path("dataResidency.dataEndpoints.EU", ["orders.db.eu.example.com:65536"]),
                "dataResidency.dataEndpoints.EU[0]",
                "a port is a whole number from 1 to 65535",
            ),
            (
                set_path("dataResidency.dataEndpoints.EU", ["postgres://orders.db.eu.example.com:99999/x"]),
                "dataResidency.dataEndpoints.EU[0]",
                "from 1 to 65535",
            ),
            (
                set_path("windows.1.freeze.from", "0001-01-01T00:00:00+05:00"),
                "windows[1].freeze",
                "from 1970-01-01 to 9000-01-01",
            ),
            (
                set_path("windows.1.freeze.to", "9999-12-31T23:59:59-05:00"),
                "windows[1].freeze",
                "from 1970-01-01 to 9000-01-01",
            ),
            (
                set_path("dataResidency.allowedJurisdictions", []),
                "dataResidency.allowedJurisdictions",
                "at least 1",
            ),
            (set_path("workload.namespace", "Api"), "workload.namespace", "lowercase"),
            (drop_path("workload.container"), "workload.container", "required"),
            (set_path("service", ["api"]), "service", "must be text, got a list"),
            (set_path("kind", "Fleet"), "kind", "'ReleasePlan'"),
            (set_path("spec", {}), "spec", "unknown field 'spec'"),
        ],
    )
    def test_problems_name_the_path(
        self, plan_data: dict[str, Any], mutation: Mutation, path: str, message: str
    ) -> None:
        """Each kind of mistake is reported at its YAML path with a message saying what is allowed."""
        mutation(plan_data)
        found = problems(dump(plan_data))
        assert any(p == path and message in m for p, m in found), found

    def test_reports_every_problem_at_once(self, plan_data: dict[str, Any]) -> None:
        """Independent mistakes in one file are all reported by a single load."""
        plan_data["rings"][0]["strategy"]["canary"]["steps"][0]["setWeight"] = 101
        plan_data["rings"][1]["bakeTime"] = "soon"
        plan_data["analysis"]["noData"] = "maybe"
        plan_data["rollback"]["scop"] = "ring"
        assert len(problems(dump(plan_data))) == 4

    def test_error_lists_source_path_and_message(self, plan_data: dict[str, Any]) -> None:
        """str(ConfigError) gives one ``SOURCE:LINE:COLUMN: PATH: MESSAGE`` line per problem."""
        plan_data["rings"][0]["maxParallel"] = 0
        plan_data["analysis"]["threshold"] = 0
        with pytest.raises(loading.ConfigError) as caught:
            loading.parse_plan(dump(plan_data), "plans/api.yaml")
        lines = str(caught.value).splitlines()
        line = dump(plan_data).splitlines().index("  maxParallel: 0") + 1
        assert lines[0].startswith(f"plans/api.yaml:{line}:3: rings[0].maxParallel: ")
        assert lines[1].startswith("plans/api.yaml:") and ": analysis.threshold: " in lines[1]
        assert caught.value.source == "plans/api.yaml"

    def test_unusual_keys_are_quoted_in_paths(self, plan_data: dict[str, Any]) -> None:
        """A path through a key that is no plain name quotes it, so it stays unambiguous."""
        plan_data["rings"][1]["clusterSelector"] = {"topology.kubernetes.io/zone": 3}
        assert (
            'rings[1].clusterSelector["topology.kubernetes.io/zone"]',
            "must be text, got a whole number (put it in quotes to make it text)",
        ) in problems(dump(plan_data))

    def test_direct_validation_rejects_duplicate_rings(self, plan_data: dict[str, Any]) -> None:
        """Validating a ReleasePlan outside the loader still refuses inconsistent plans."""
        plan_data["rings"][1]["name"] = "internal"
        with pytest.raises(ValidationError, match="already at rings"):
            ReleasePlan.model_validate(plan_data)


class TestYamlReading:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "the file is empty"),
            ("# only a comment\n", "the file is empty"),
            ("- a\n- b\n", "top level must be a mapping"),
            ("just text", "top level must be a mapping"),
            ("a: [1", "plan.yaml:1:6: invalid YAML: expected ',' or ']'"),
            ("a: 1\na: 2\n", "the key 'a' appears twice"),
            ("x: !!python/object:os.system 1", "invalid YAML"),
            ("a: 1\n---\nb: 2\n", "invalid YAML"),
            ("\x00", "invalid YAML"),
            ("? [a, b]\n: 1\n", "invalid YAML"),
            ("1: a\n", "keys must be text"),
            (
                'service: !!int "abc"\n',
                "plan.yaml:1:10: invalid YAML: a value tagged !!int must be a whole number",
            ),
            ("service: !!int 1e5\n", "a value tagged !!int must be a whole number"),
            ("service: !!int " + "9" * 5000 + "\n", "a value tagged !!int must be a whole number"),
            ("service: !!float abc\n", "a value tagged !!float must be a number"),
            ("service: !!bool yes\n", "a value tagged !!bool must be true or false"),
            ("service: !!null x\n", "a value tagged !!null must be null"),
            ("service: !!binary YXBp\n", "plan.yaml:1:10: invalid YAML: the tag !!binary is not supported"),
            ("service: !!set {a: null}\n", "the tag !!set is not supported"),
            ("service: !custom x\n", "the tag !custom is not supported"),
            ("a: &x [1]\nb: *y\n", "plan.yaml:2:4: invalid YAML: the alias *y has no anchor"),
            ("a: &x [*x]\n", "the alias *x has no anchor"),
            (
                "[" * 100_000 + "]" * 100_000,
                "plan.yaml:1:65: invalid YAML: lists and mappings nest more than 64",
            ),
            ("- " * 100_000 + "a\n", "nest more than 64 levels deep"),
            (
                "a: &a ['x','x','x','x','x','x','x','x','x','x']\n"
                + "".join(
                    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
                    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
                ),
                "more than 500,000 values (an alias counts every value it repeats)",
            ),
            ("a: 1\nb: 2\na: 3\n", "plan.yaml:3:1: invalid YAML: the key 'a' appears twice"),
            (
                "? " + "k" * 10_000 + "\n: 1\n? " + "k" * 10_000 + "\n: 2\n",
                "plan.yaml:3:3: invalid YAML: the key '" + "k" * 39 + "'… appears twice",
            ),
        ],
    )
    def test_bad_yaml_is_a_config_error(self, text: str, message: str) -> None:
        """Syntax errors, empty files, non-mapping roots and duplicate keys become one clear problem."""
        with pytest.raises(loading.ConfigError) as caught:
            loading.parse_plan(text, "plan.yaml")
        assert message in str(caught.value)

    def test_times_of_day_need_no_quotes(self, plan_data: dict[str, Any]) -> None:
        """An unquoted 10:00 is a time of day, not YAML 1.1's sexagesimal 600."""
        text = (
            dump(plan_data).replace("start: 09:00", "start: 10:00").replace("start: '09:00'", "start: 10:00")
        )
        assert "start: 10:00" in text
        assert loading.parse_plan(text, "plan.yaml").windows[0].weekly[0].start == "10:00"  # type: ignore[index]

    def test_times_in_flow_style_read_as_yaml_1_2(self, plan_data: dict[str, Any]) -> None:
        """A time of day inside a flow mapping (which libyaml refuses) reads as YAML 1.2 says: text."""
        del plan_data["windows"]
        text = (
            dump(plan_data)
            + "windows: [{regions: [eu-west-1], weekly: [{days: [Mon], start: 09:00, end: 16:00}]}]\n"
        )
        window = loading.parse_plan(text, "plan.yaml").windows[0]
        assert window.weekly is not None
        assert (window.weekly[0].start, window.weekly[0].end) == ("09:00", "16:00")

    @pytest.mark.parametrize("content", [None, b"\xff\xfe\x00bad", "directory"])
    def test_unreadable_files_are_config_errors(self, tmp_path: Path, content: bytes | str | None) -> None:
        """A missing file, a non-UTF-8 file or a directory is reported, never raised as OSError."""
        path = tmp_path / "plan.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content == "directory":
            path.mkdir()
        with pytest.raises(loading.ConfigError) as caught:
            loading.load_plan(path)
        assert caught.value.source == str(path)
        assert caught.value.problems[0].path == ""


class TestPlanAgainstFleet:
    @pytest.mark.parametrize(
        ("mutation", "path", "message"),
        [
            (
                set_path("rings.0.clusters", ["euw1-internl"]),
                "rings[0].clusters[0]",
                "unknown cluster 'euw1-internl' (did you mean 'euw1-internal'?)",
            ),
            (
                set_path("rings.1.clusterSelector", {"audience": "nobody"}),
                "rings[1].clusterSelector",
                "selects no cluster",
            ),
            (
                set_path("rings.0.clusters", ["euw1-internal", "euc1-beta"]),
                "rings[1].clusterSelector",
                "already in ring 'internal'",
            ),
            (
                set_path("windows.0.regions", ["eu-west-1", "eu-north-7"]),
                "windows[0].regions[1]",
                "unknown region 'eu-north-7'",
            ),
            (
                set_path("dataResidency.allowedJurisdictions", ["EU"]),
                "rings[1].clusterSelector",
                "jurisdiction US, outside dataResidency.allowedJurisdictions [EU] (rule jurisdiction-scope)",
            ),
            (
                set_path("dataResidency.allowedJurisdictions", ["EU", "UK"]),
                "dataResidency.allowedJurisdictions[1]",
                "no region is in jurisdiction 'UK'",
            ),
            (
                set_path("dataResidency.dataEndpoints.CH", ["db.ch.example.com"]),
                "dataResidency.dataEndpoints.CH",
                "no region is in jurisdiction 'CH'",
            ),
        ],
    )
    def test_cross_file_problems_name_the_plan_path(
        self, plan_data: dict[str, Any], fleet: Fleet, mutation: Mutation, path: str, message: str
    ) -> None:
        """References the fleet cannot honour are reported at the plan path that makes them."""
        mutation(plan_data)
        release = loading.parse_plan(dump(plan_data), "plan.yaml")
        with pytest.raises(loading.ConfigError) as caught:
            loading.check_plan_against_fleet(release, fleet, "plan.yaml")
        found = [(p.path, p.message) for p in caught.value.problems]
        assert any(p == path and message in m for p, m in found), found

    def test_example_plan_fits_example_fleet(self, plan: ReleasePlan, fleet: Fleet) -> None:
        """The committed examples are consistent with each other."""
        loading.check_plan_against_fleet(plan, fleet, "plan.yaml")


class TestPureParser:
    @pytest.mark.parametrize(
        "text",
        [
            fleets.EXAMPLE_PLAN.read_text(),
            fleets.EXAMPLE_FLEET.read_text(),
            "a: [1, 0x1F, 0o17, 1_000, .inf, ~, NO, 10:00, 2026-01-01, '5', true]\nb: &x {c: d}\ne: *x\n",
            "a: !!int abc\n",
            "a: 1\na: 2\n",
            "a: [1\n",
            "[" * 200 + "]" * 200,
            "a: *nowhere\n",
            "\x00",
        ],
        ids=["plan", "fleet", "scalars", "int-tag", "duplicate", "unclosed", "deep", "alias", "binary"],
    )
    def test_pure_parser_reads_like_the_c_parser(self, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
        """Without the C parser (another platform), the pure-Python one gives the same values and errors."""

        def read() -> tuple[object, object]:
            try:
                loaded = _yaml.load(text)
            except _yaml.YamlError as exc:
                return "error", (exc.message.split(":")[0], exc.position and exc.position.line)
            return loaded.data, loaded.position(["rings", 1, "maxParallel"])

        with_c = read()
        monkeypatch.setattr(_yaml, "CParser", None)
        assert read() == with_c
