"""``ringmaster validate`` and ``ringmaster plan``: exit codes, messages naming paths, the JSON shape.

The documented behaviours run the real CLI as a subprocess (started together, so the suite stays
fast); variations of output run the same commands in-process on an app holding only these commands.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import typer
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from policies import judgement, loading
from ringmaster import cli
from ringmaster.cli import plans
from tests.support import fleets
from tests.support.cli import Run
from tests.support.yaml_attacks import adversarial, adversarial_documents

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
PLAN = (EXAMPLES / "plan.yaml").read_text()
FLEET = str(EXAMPLES / "fleet.yaml")
AT = "2026-03-27T18:00:00Z"  # a Friday evening, two days before Europe's clocks change


def _edit(text: str, *replacements: tuple[str, str]) -> str:
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


STRUCTURAL = _edit(
    PLAN,
    ("- setWeight: 25", "- setWeight: 125"),
    ("pause: {duration: 5m}", "pause: {duration: soon}"),
    ("bakeTime: 30m", "bakeTim: 30m"),
)
CROSS_FILE = _edit(
    PLAN,
    ("clusters: [euw1-internal]", "clusters: [euw1-internl]"),
    ("  dataClass: personal\n", "  dataClass: personal\n  allowedJurisdictions: [EU]\n"),
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every subprocess invocation, started at once and awaited together."""
    folder = tmp_path_factory.mktemp("cli")
    (folder / "structural.yaml").write_text(STRUCTURAL)
    (folder / "cross.yaml").write_text(CROSS_FILE)
    (folder / "broken-fleet.yaml").write_text("regions: [unclosed\n")
    plan = str(EXAMPLES / "plan.yaml")
    commands = {
        "valid": ["validate", plan, "--fleet", FLEET],
        "structural": [
            "validate",
            str(folder / "structural.yaml"),
            "--fleet",
            str(folder / "broken-fleet.yaml"),
        ],
        "cross": ["validate", str(folder / "cross.yaml"), "--fleet", FLEET],
        "plan-json": ["plan", plan, "--fleet", FLEET, "--version", "1.4.2", "--output", "json", "--at", AT],
    }
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "ringmaster.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in commands.items()
    }
    results = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=120)
        results[name] = Run(process.returncode, stdout, stderr)
    return results


def _invoke(*args: str) -> Run:
    """Run a command in-process on an app holding only validate and plan."""
    app = typer.Typer(pretty_exceptions_enable=False)
    for command in plans.COMMANDS:
        app.command()(command)
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


class TestValidate:
    def test_examples_are_valid(self, runs: dict[str, Run]) -> None:
        """The committed example plan validates against the example fleet with exit code 0."""
        assert runs["valid"].code == 0, runs["valid"].stderr
        assert "valid" in runs["valid"].stdout

    @pytest.mark.parametrize(
        "line",
        [
            "18:13: rings[0].strategy.canary.steps[2].setWeight: must be less than or equal to 100",
            "17:21: rings[0].strategy.canary.steps[1].pause.duration: 'soon' is not a duration; write 30s",
            "22:5: rings[0].bakeTim: unknown field 'bakeTim' (did you mean 'bakeTime'?); allowed: name,",
        ],
    )
    def test_structural_problems_exit_2_naming_path_and_rule(self, runs: dict[str, Run], line: str) -> None:
        """A weight over 100, an unparsable duration and a misspelt field are all reported at their line
        and column, with exit code 2 (alongside the fleet's own YAML error: every problem of both files)."""
        run = runs["structural"]
        assert run.code == 2
        assert f"structural.yaml:{line}" in run.stderr

    @pytest.mark.parametrize(
        "line",
        [
            "13:16: rings[0].clusters[0]: unknown cluster 'euw1-internl' (did you mean 'euw1-internal'?)",
            "25:5: rings[1].clusterSelector: cluster 'use1-beta' is in jurisdiction US, outside "
            "dataResidency.allowedJurisdictions [EU] (rule jurisdiction-scope)",
        ],
    )
    def test_cross_file_problems_exit_2_naming_path_and_rule(self, runs: dict[str, Run], line: str) -> None:
        """An unknown cluster and a cluster outside allowedJurisdictions exit 2, at line, path and rule."""
        run = runs["cross"]
        assert run.code == 2
        assert f"cross.yaml:{line}" in run.stderr

    def test_broken_yaml_never_prints_a_traceback(self, runs: dict[str, Run]) -> None:
        """Unparsable fleet YAML is reported plainly beside the plan's problems, with exit code 2."""
        run = runs["structural"]
        assert run.code == 2
        assert "Traceback" not in run.stderr + run.stdout
        assert "broken-fleet.yaml:2:1: invalid YAML: " in run.stderr

    @pytest.mark.parametrize("missing", ["plan", "fleet", "both"])
    def test_missing_files_are_reported(self, tmp_path: Path, missing: str) -> None:
        """A file that cannot be read is named with the reason, and the command exits 2."""
        plan = (
            str(tmp_path / "nope-plan.yaml") if missing in ("plan", "both") else str(EXAMPLES / "plan.yaml")
        )
        fleet = str(tmp_path / "nope-fleet.yaml") if missing in ("fleet", "both") else FLEET
        run = _invoke("validate", plan, "--fleet", fleet)
        assert run.code == 2
        assert run.stderr.count("cannot read the file: No such file or directory") == (
            2 if missing == "both" else 1
        )

    @pytest.mark.parametrize(
        ("plan_text", "fleet_text", "code"),
        [
            (PLAN, None, 0),
            (STRUCTURAL, None, 2),
            ("rings: 7\n", None, 2),
            ("- just\n- a list\n", "kind: [Fleet]\n", 2),
            ("\x00\x01", "", 2),
        ],
        ids=["valid", "structural", "wrong-types", "wrong-shapes", "binary-and-empty"],
    )
    def test_json_output(self, tmp_path: Path, plan_text: str, fleet_text: str | None, code: int) -> None:
        """--output json prints {valid, problems[{source, path, line, column, message}], denials} and the
        same exit code."""
        (tmp_path / "p.yaml").write_text(plan_text)
        fleet = FLEET
        if fleet_text is not None:
            (tmp_path / "f.yaml").write_text(fleet_text)
            fleet = str(tmp_path / "f.yaml")
        run = _invoke("validate", str(tmp_path / "p.yaml"), "--fleet", fleet, "--output", "json")
        document = run.json()
        assert run.code == code
        assert document["valid"] is (code == 0)
        assert bool(document["problems"]) is (code != 0)
        assert all(set(p) == {"source", "path", "line", "column", "message"} for p in document["problems"])
        assert document["denials"] == []

    def test_static_residency_denial_exits_2(self, tmp_path: Path) -> None:
        """A plan whose declared endpoints leave the jurisdiction is statically denied: exit 2, rule named."""
        (tmp_path / "p.yaml").write_text(
            _edit(PLAN, ("EU: [orders.db.eu.example.com", "EU: [orders.db.us.example.com"))
        )
        run = _invoke("validate", str(tmp_path / "p.yaml"), "--fleet", FLEET)
        assert run.code == 2
        assert "euw1-internal: data-endpoints: personal data must stay in EU" in run.stderr


class TestPlan:
    def test_json_shape_and_example_waves(self, runs: dict[str, Run]) -> None:
        """The JSON carries service, version, minimum duration and rings/waves/clusters with residency."""
        run = runs["plan-json"]
        assert run.code == 0, run.stderr
        document = run.json()
        assert (document["service"], document["version"], document["minimumDurationSeconds"]) == (
            "api",
            "1.4.2",
            17700,
        )
        broad = next(r for r in document["rings"] if r["name"] == "broad")
        waves = [[c["name"] for c in w["clusters"]] for w in broad["waves"]]
        wave_of = {name: i for i, names in enumerate(waves) for name in names}
        assert wave_of["euw1-prod"] < wave_of["euc1-prod"]
        assert max(len(w) for w in waves) <= 2
        for ring in document["rings"]:
            for wave in ring["waves"]:
                for cluster in wave["clusters"]:
                    assert {"name", "region", "jurisdiction", "strategy", "residency"} <= set(cluster)
                    assert all({"rule", "verdict", "reason"} <= set(d) for d in cluster["residency"])
                    assert all(d["verdict"] in ("allow", "deny") for d in cluster["residency"])

    def test_json_next_window_is_dst_aware(self, runs: dict[str, Run]) -> None:
        """From a Friday evening before the clocks change, Dublin opens Monday 09:00 IST (08:00Z)."""
        document = runs["plan-json"].json()
        clusters = {c["name"]: c for r in document["rings"] for w in r["waves"] for c in w["clusters"]}
        assert clusters["euw1-internal"]["window"]["nextOpen"] == "2026-03-30T08:00:00Z"
        assert clusters["euc1-prod"]["window"]["nextOpen"] == "2026-03-30T07:00:00Z"
        assert clusters["use1-prod"]["window"]["open"] is True

    def test_table_lists_every_cluster(self) -> None:
        """The table shows each cluster with its region, jurisdiction, residency and next window."""
        run = _invoke("plan", str(EXAMPLES / "plan.yaml"), "--fleet", FLEET, "--version", "1.4.2", "--at", AT)
        assert run.code == 0, run.stderr
        for text in (
            "euw1-internal",
            "euc1-prod (regulated)",
            "usw2-prod",
            "Mon 30 Mar 09:00 IST",
            "4h55m",
            "allow",
        ):
            assert text in run.stdout

    def test_denied_plan_shows_the_schedule_and_exits_2(self, tmp_path: Path) -> None:
        """A statically denied plan still prints its schedule, marks the denial and exits 2."""
        (tmp_path / "p.yaml").write_text(
            _edit(PLAN, ("US: [orders.db.us.example.com]", "US: [orders.db.example.org]"))
        )
        run = _invoke("plan", str(tmp_path / "p.yaml"), "--fleet", FLEET, "--version", "1", "-o", "json")
        document = run.json()
        assert run.code == 2
        assert document["denied"] is True
        verdicts = {
            c["name"]: c["residency"][1]["verdict"]
            for r in document["rings"]
            for w in r["waves"]
            for c in w["clusters"]
        }
        assert verdicts["use1-prod"] == "deny"
        assert verdicts["euw1-prod"] == "allow"

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--version", "1", "--at", "2026-03-27T18:00:00"], "has no UTC offset"),
            (["--version", "1", "--at", "friday"], "not an ISO 8601 instant"),
            (["--version", "1", "--at", "0001-01-01T00:00:00Z"], "out of range: instants must be from 1970"),
            (["--version", "1", "--at", "0001-01-01T00:00:00+05:00"], "out of range"),
            (["--version", "1", "--at", "9999-12-31T23:59:59Z"], "out of range"),
            (["--version", "1", "--at", "9999-12-31T23:59:59-05:00", "-o", "json"], "out of range"),
            (["--version", 'v1"}'], "letters, digits"),
        ],
    )
    def test_bad_arguments_exit_2(self, args: list[str], message: str) -> None:
        """A naive, unparsable or off-calendar --at and an unsafe --version are refused with exit code 2."""
        run = _invoke("plan", str(EXAMPLES / "plan.yaml"), "--fleet", FLEET, *args)
        assert run.code == 2
        assert message in run.stderr + run.stdout
        assert "internal error" not in run.stderr

    def test_invalid_files_as_json(self, tmp_path: Path) -> None:
        """plan --output json on an invalid plan prints the problems document and exits 2."""
        (tmp_path / "p.yaml").write_text(STRUCTURAL)
        run = _invoke("plan", str(tmp_path / "p.yaml"), "--fleet", FLEET, "--version", "1", "-o", "json")
        assert run.code == 2
        assert len(run.json()["problems"]) == 3


class TestSafetyNet:
    def test_unexpected_errors_exit_2_without_traceback(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bug below the CLI still ends in one plain line and exit code 2, never a traceback."""

        def broken(*_: object) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(judgement.residency, "static_decisions", broken)
        run = _invoke("validate", str(EXAMPLES / "plan.yaml"), "--fleet", FLEET)
        assert run.code == 2
        assert "internal error (RuntimeError: boom)" in run.stderr
        assert "Traceback" not in run.stderr

    @pytest.mark.parametrize(
        ("replacement", "code", "message"),
        [
            (
                ("    US: [orders.db.us.example.com]\n", ""),
                2,
                "use1-prod: data-endpoints: personal data must stay in US: dataEndpoints declares nothing",
            ),
            (("US: [orders.db.us.example.com]", "US: []"), 0, ""),
            (("EU: [orders.db.eu.example.com", "EU: ['878636280'"), 2, "52.94.236.248 is in no known"),
            (
                ("EU: [orders.db.eu.example.com", "EU: ['postgres://0x345eecf8:5432/orders'"),
                2,
                "52.94.236.248 is in no known jurisdiction",
            ),
            (
                ("EU: [orders.db.eu.example.com", 'EU: ["http://db.us.example.com\\\\x.eu.example.com/"'),
                2,
                "dataResidency.dataEndpoints.EU[0]: must be a host name, an IP address or a URL: urllib",
            ),
        ],
        ids=["jurisdiction-missing", "explicit-empty-list", "numeric-host", "hex-url", "parsers-disagree"],
    )
    def test_personal_data_endpoints_fail_closed(
        self, tmp_path: Path, replacement: tuple[str, str], code: int, message: str
    ) -> None:
        """A jurisdiction without declared endpoints, a numeric host and an ambiguous URL never pass."""
        (tmp_path / "p.yaml").write_text(_edit(PLAN, replacement))
        run = _invoke("validate", str(tmp_path / "p.yaml"), "--fleet", FLEET)
        assert run.code == code, run.stderr
        assert message in run.stderr


class TestValidateFuzz:
    @adversarial(40)
    @given(adversarial_documents(), st.booleans())
    def test_validate_command_never_crashes(self, text: str, as_fleet: bool) -> None:
        """``ringmaster validate`` on such a file exits 0 or 2 with plain messages, never internal errors."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "input.yaml"
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            plan, fleet = (
                (str(fleets.EXAMPLE_PLAN), str(path)) if as_fleet else (str(path), str(fleets.EXAMPLE_FLEET))
            )
            result = CliRunner().invoke(cli.app, ["validate", plan, "--fleet", fleet, "--output", "json"])
        assert result.exit_code in (0, 2), result.output[:500]
        assert "internal error" not in result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        document = yaml.safe_load(result.stdout)
        assert len(document["problems"]) <= 2 * (loading.MAX_PROBLEMS + 1)


FLAG_PLAN_FILE = EXAMPLES / "flag-plan.yaml"
FLAG_PLAN = FLAG_PLAN_FILE.read_text()
FLEET_TEXT = Path(FLEET).read_text()
US_EAST_FLAGS = (
    '     flags: {url: "https://unleash.us.example.com/api", project: default, environment: us-east-1}}'
)


def _line_of(text: str, pattern: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line matching the regular expression ``pattern``."""
    found = [i for i, line in enumerate(text.splitlines(), start=1) if re.search(pattern, line)]
    return found[occurrence - 1]


class TestFeatureFlags:
    def test_the_example_flag_plan_is_valid(self) -> None:
        """The committed flag plan validates against the example fleet with exit code 0."""
        run = _invoke("validate", str(FLAG_PLAN_FILE), "--fleet", FLEET)
        assert run.code == 0, run.stderr
        assert "valid against" in run.stdout

    def test_a_region_without_flag_server_is_named_at_the_ring_with_its_line(self, tmp_path: Path) -> None:
        """validate exits 2 naming file, line, ring path, the region and cluster lacking a flag server."""
        (tmp_path / "fleet.yaml").write_text(_edit(FLEET_TEXT, (US_EAST_FLAGS, "     }")))
        run = _invoke("validate", str(FLAG_PLAN_FILE), "--fleet", str(tmp_path / "fleet.yaml"))
        assert run.code == 2
        line = _line_of(FLAG_PLAN, "featureFlag:", occurrence=2)
        expected = (
            f"{FLAG_PLAN_FILE}:{line}:7: rings[1].strategy.featureFlag: moves flag 'checkout-v2' in "
            "region(s) whose fleet entry names no flag server: 'us-east-1' (use1-beta)"
        )
        assert expected in run.stderr

    def test_a_bad_percentage_names_file_line_and_field(self, tmp_path: Path) -> None:
        """A setRollout outside 1-100 is reported at its line with the range allowed."""
        (tmp_path / "p.yaml").write_text(_edit(FLAG_PLAN, ("- setRollout: 5\n", "- setRollout: 0\n")))
        run = _invoke("validate", str(tmp_path / "p.yaml"), "--fleet", FLEET, "--output", "json")
        assert run.code == 2
        (problem,) = run.json()["problems"]
        assert problem["path"] == "rings[2].strategy.featureFlag.steps[0].setRollout"
        assert problem["line"] == _line_of(FLAG_PLAN, r"- setRollout: 5$")
        assert problem["message"] == "must be greater than or equal to 1"

    def test_a_flag_server_outside_the_jurisdiction_is_denied(self, tmp_path: Path) -> None:
        """telemetry-locality denies the flag rings' clusters of a region whose Unleash is elsewhere."""
        edited = _edit(
            FLEET_TEXT,
            (
                'url: "https://unleash.eu.example.com/api", project: default, environment: eu-w',
                'url: "https://unleash.us.example.com/api", project: default, environment: eu-w',
            ),
        )
        (tmp_path / "fleet.yaml").write_text(edited)
        run = _invoke("validate", str(FLAG_PLAN_FILE), "--fleet", str(tmp_path / "fleet.yaml"), "-o", "json")
        assert run.code == 2
        assert run.json()["denials"] == [
            {
                "cluster": name,
                "rule": "telemetry-locality",
                "reason": "flag server unleash.us.example.com is in US, not EU",
            }
            for name in ("euw1-internal", "euw1-prod")
        ]

    def test_plan_json_shows_each_clusters_flag_strategy(self) -> None:
        """Each flag ring lists its steps and percentages; each cluster the Unleash, environment and a
        constraint naming that cluster alone, so an internal step cannot reach broad customers."""
        run = _invoke(
            "plan", str(FLAG_PLAN_FILE), "--fleet", FLEET, "--version", "v2", "-o", "json", "--at", AT
        )
        assert run.code == 0, run.stderr
        document = run.json()
        assert document["minimumDuration"] == "5h45m"
        assert [r["featureFlag"]["rollouts"] for r in document["rings"]] == [
            [50, 100],
            [10, 50, 100],
            [5, 25, 50, 100],
        ]
        assert document["rings"][1]["featureFlag"]["steps"][3] == {"pause": {}}
        for ring in document["rings"]:
            for wave in ring["waves"]:
                for cluster in wave["clusters"]:
                    flag = cluster["flag"]
                    assert flag["constraint"] == {
                        "contextName": "cluster",
                        "operator": "IN",
                        "values": [cluster["name"]],
                        "inverted": False,
                        "caseInsensitive": False,
                    }
                    assert flag["environment"] == cluster["region"]
                    assert flag["title"] == f"ringmaster:{cluster['name']}"
                    (telemetry,) = [d for d in cluster["residency"] if d["rule"] == "telemetry-locality"]
                    assert telemetry["inputs"]["flagServerHost"] == flag["server"]

    def test_plan_table_has_a_flag_column_only_for_flag_plans(self) -> None:
        """A flag plan's table names the flag and each cluster's constraint; other plans' are as before."""
        flagged = _invoke("plan", str(FLAG_PLAN_FILE), "--fleet", FLEET, "--version", "v2", "--at", AT)
        plain = _invoke("plan", str(EXAMPLES / "plan.yaml"), "--fleet", FLEET, "--version", "v2", "--at", AT)
        assert flagged.code == plain.code == 0
        assert "Flag strategy" in flagged.stdout
        assert "cluster IN [euw1-internal]" in flagged.stdout
        assert "flag checkout-v2 5→25→50→100%" in flagged.stdout
        assert "Flag strategy" not in plain.stdout
        document = _invoke(
            "plan", str(EXAMPLES / "plan.yaml"), "--fleet", FLEET, "--version", "v2", "-o", "json"
        )
        assert {r["featureFlag"] is None for r in document.json()["rings"]} == {True}
