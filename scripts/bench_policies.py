"""Wall time of ``ringmaster validate`` and ``ringmaster plan --output json`` on generated large fleets.

Writes a fleet and a release plan per scenario into a temporary directory: ``N`` clusters spread over
``R`` regions (ten jurisdictions, each region paired with its neighbour, one time zone of several per
region), four rings (an explicit list, an explicit list of a tenth of the fleet, two selectors), and
personal data with declared endpoints. Seven jurisdictions have a weekly window listing their regions,
and a weekly window and a freeze list all of those regions (350 of 500); the other three are open
but for a freeze of every region in December. Each ring past the first runs ``maxParallel`` small
(10) or at the limit (2000).

Each command runs through the real entry point as a subprocess (``python -m ringmaster.cli``, so the
figure includes interpreter start and imports, as a user sees it); the median of ``--runs`` runs is
printed. The breakdown times the same steps in this process (median of the same runs): reading and
parsing both files, the checks across them, the schedule, the static residency decisions, and the
windows of every scheduled region; ``startup`` is the subprocess time to import the CLI::

    .venv/bin/python scripts/bench_policies.py                  # every scenario, 3 runs each
    .venv/bin/python scripts/bench_policies.py --only 2000 --runs 5
    .venv/bin/python scripts/bench_policies.py --repo /tmp/older-checkout   # the same on other code
    PYTHONPATH=/tmp/ruamel .venv/bin/python scripts/bench_policies.py --only 2000 --yaml  # and parsers

``--repo`` times another checkout of ringmaster with this interpreter (its source first on the path).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

AT = "2026-03-28T20:00:00Z"
"""Saturday evening before Europe's spring-forward night: windows are closed and open across DST."""
VERSION = "1.2.3"
PLAN_HEADER: dict[str, Any] = {
    "apiVersion": "ringmaster.dev/v1",
    "kind": "ReleasePlan",
    "service": "api",
    "workload": {"namespace": "api", "deployment": "api", "container": "api"},
}
JURISDICTIONS = {
    "EU": ("Europe/Dublin", "Europe/Berlin", "Europe/Paris", "Europe/Helsinki"),
    "US": ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"),
    "UK": ("Europe/London",),
    "JP": ("Asia/Tokyo",),
    "AU": ("Australia/Sydney", "Australia/Perth", "Australia/Adelaide"),
    "BR": ("America/Sao_Paulo",),
    "IN": ("Asia/Kolkata",),
    "CA": ("America/Toronto", "America/Vancouver", "America/St_Johns"),
    "SG": ("Asia/Singapore",),
    "CH": ("Europe/Zurich",),
}


@dataclass(frozen=True)
class Scenario:
    """One generated fleet and plan."""

    clusters: int
    regions: int
    max_parallel: int

    @property
    def label(self) -> str:
        return f"{self.clusters} clusters / {self.regions} regions / maxParallel {self.max_parallel}"


SCENARIOS = (
    Scenario(100, 50, 10),
    Scenario(100, 50, 2000),
    Scenario(1000, 500, 10),
    Scenario(1000, 500, 2000),
    Scenario(2000, 500, 10),
    Scenario(2000, 500, 2000),
)


def _regions(count: int) -> list[dict[str, Any]]:
    """``count`` regions, jurisdictions taking turns in pairs, each pair within one jurisdiction."""
    codes = list(JURISDICTIONS)
    regions: list[dict[str, Any]] = []
    for i in range(count):
        pair_index = i // 2
        code = codes[pair_index % len(codes)]
        zones = JURISDICTIONS[code]
        name = f"{code.lower()}-{pair_index:03d}-{i % 2}"
        partner = f"{code.lower()}-{pair_index:03d}-{1 - i % 2}"
        region = {
            "name": name,
            "jurisdiction": code,
            "timezone": zones[pair_index % len(zones)],
            "prometheus": f"http://prometheus.{name}.{code.lower()}.example.com:9090",
        }
        if i + 1 < count or i % 2 == 1:
            region["pair"] = partner
        regions.append(region)
    return regions


def _fleet(scenario: Scenario) -> dict[str, Any]:
    regions = _regions(scenario.regions)
    clusters = []
    for i in range(scenario.clusters):
        region = regions[i % len(regions)]["name"]
        audience = "internal" if i < 3 else {3: "early", 5: "beta"}.get(i % 10, "public")
        labels = {"audience": audience, "team": f"t{i % 7}"}
        if audience == "public" and i % 10 == 9:
            labels["regulated"] = "true"
        clusters.append(
            {"name": f"c{i:05d}", "region": region, "kubeContext": f"ctx-{i:05d}", "labels": labels}
        )
    return {
        "apiVersion": "ringmaster.dev/v1",
        "kind": "Fleet",
        "regions": regions,
        "clusters": clusters,
        "hosts": [{"match": f"*.{code.lower()}.example.com", "jurisdiction": code} for code in JURISDICTIONS],
    }


def _plan(fleet: dict[str, Any], max_parallel: int) -> dict[str, Any]:
    clusters = fleet["clusters"]
    by_audience = {
        audience: [c["name"] for c in clusters if c["labels"]["audience"] == audience]
        for audience in ("internal", "early")
    }
    canary = {"canary": {"steps": [{"setWeight": 10}, {"pause": {"duration": "5m"}}, {"setWeight": 50}]}}
    windows: list[dict[str, Any]] = []
    windowed: list[str] = []
    for position, code in enumerate(JURISDICTIONS):
        names = [r["name"] for r in fleet["regions"] if r["jurisdiction"] == code]
        if position % 3 == 2 or not names:
            continue  # always open but for freezes: the next closing is months away
        weekly = (
            {"days": ["Mon", "Tue", "Wed", "Thu"], "start": "09:00", "end": "16:00"}
            if position % 2 == 0
            else {"days": ["Sun", "Mon", "Tue", "Wed"], "start": "22:00", "end": "06:00"}
        )
        windows.append({"regions": names, "weekly": [weekly]})
        windowed += names
    maintenance = {"days": ["Sat"], "start": "02:00", "end": "04:00"}
    windows.append({"regions": windowed, "weekly": [maintenance]})
    holidays = {"from": "2026-12-20T00:00:00Z", "to": "2027-01-04T00:00:00Z", "reason": "holidays"}
    windows.append({"freeze": holidays})
    audit = {"from": "2026-04-01T00:00:00Z", "to": "2026-04-02T00:00:00Z", "reason": "audit"}
    windows.append({"regions": windowed, "freeze": audit})
    endpoints = {code: [f"orders.db.{code.lower()}.example.com"] for code in JURISDICTIONS}
    return {
        **PLAN_HEADER,
        "dataResidency": {"dataClass": "personal", "dataEndpoints": endpoints},
        "rings": [
            {"name": "internal", "clusters": by_audience["internal"], "strategy": canary, "bakeTime": "30m"},
            {
                "name": "early",
                "clusters": by_audience["early"],
                "maxParallel": max_parallel,
                "strategy": {"rolling": {}},
            },
            {
                "name": "beta",
                "clusterSelector": {"audience": "beta"},
                "maxParallel": max_parallel,
                "approval": {"required": True},
                "strategy": {"blueGreen": {}},
                "bakeTime": "1h",
            },
            {
                "name": "broad",
                "clusterSelector": {"audience": "public"},
                "maxParallel": max_parallel,
                "strategy": canary,
                "bakeTime": "2h",
            },
        ],
        "windows": windows,
    }


def write(scenario: Scenario, directory: Path) -> tuple[Path, Path]:
    """The scenario's fleet and plan files, written into ``directory``."""
    fleet = _fleet(scenario)
    stem = f"{scenario.clusters}-{scenario.regions}-{scenario.max_parallel}"
    fleet_file, plan_file = directory / f"fleet-{stem}.yaml", directory / f"plan-{stem}.yaml"
    fleet_file.write_text(yaml.safe_dump(fleet, sort_keys=False), encoding="utf-8")
    plan = _plan(fleet, scenario.max_parallel)
    plan_file.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    return fleet_file, plan_file


def _median_wall(command: list[str], runs: int, env: dict[str, str]) -> float:
    """Median wall seconds of ``runs`` runs after one uncounted warm-up; exits if a run fails.

    Runs in the checkout timed: ``python -m`` and ``-c`` put the working directory first on the path.
    """
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        checkout = env["PYTHONPATH"].split(os.pathsep)[0]
        done = subprocess.run(command, env=env, cwd=checkout, capture_output=True, check=False)  # noqa: S603
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr.decode()[-2000:]}")
    return statistics.median(times[1:])


def _median_call(function: Callable[[], object], runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def breakdown(fleet_file: Path, plan_file: Path, runs: int) -> dict[str, float]:
    """Median seconds of each step ``validate`` and ``plan`` take, timed in this process."""
    loading = importlib.import_module("policies.loading")
    schedule = importlib.import_module("policies.schedule")
    residency = importlib.import_module("policies.residency")
    windows = importlib.import_module("policies.windows")
    fleet_model = importlib.import_module("policies.fleet").Fleet
    plan_model = importlib.import_module("policies.plan").ReleasePlan
    at = datetime.fromisoformat(AT)

    def load() -> tuple[Any, Any]:
        return (
            loading.parse(loading.read(plan_file), plan_model),
            loading.parse(loading.read(fleet_file), fleet_model),
        )

    figures: dict[str, float] = {}
    figures["load"], loaded = _median_call(load, runs)
    plan, fleet = loaded  # type: ignore[misc]
    figures["check"], _ = _median_call(lambda: loading.check_plan_against_fleet(plan, fleet, "plan"), runs)
    figures["schedule"], built = _median_call(lambda: schedule.build(plan, fleet, VERSION), runs)
    figures["residency"], _ = _median_call(lambda: residency.static_decisions(plan, fleet, built), runs)
    regions = sorted({c.region for c in built.all_clusters()})  # type: ignore[attr-defined]
    if hasattr(windows, "states"):
        figures["windows"], _ = _median_call(lambda: windows.states(plan, fleet, regions, at), runs)
    else:  # code from before windows.states, as its CLI called it
        every = lambda: [windows.state(plan, fleet, r, at) for r in regions]  # noqa: E731
        figures["windows"], _ = _median_call(every, runs)
    return figures


def yaml_parsers(fleet_file: Path, runs: int) -> dict[str, float | None]:
    """Median seconds to parse ``fleet_file`` with ringmaster's loader and the candidates to replace it.

    ``None`` where a parser is not installed (ruamel.yaml is not a dependency; install it beside).
    """
    text = fleet_file.read_text(encoding="utf-8")
    ours = importlib.import_module("policies._yaml")
    parsers: dict[str, Callable[[], object] | None] = {
        "ringmaster (PyYAML, pure Python)": lambda: ours.load(text),
        "PyYAML CSafeLoader (libyaml, YAML 1.1)": (
            (lambda: yaml.load(text, Loader=yaml.CSafeLoader)) if yaml.__with_libyaml__ else None
        ),
    }
    for typ, pure in (("safe", True), ("safe", False), ("rt", True)):
        parsers[f"ruamel.yaml typ={typ}{' pure' if pure else ''}"] = _ruamel(text, typ, pure=pure)
    return {name: None if parse is None else _median_call(parse, runs)[0] for name, parse in parsers.items()}


def _ruamel(text: str, typ: str, *, pure: bool) -> Callable[[], object] | None:
    try:
        ruamel = importlib.import_module("ruamel.yaml")
    except ImportError:
        return None
    loader = ruamel.YAML(typ=typ, pure=pure)
    return lambda: loader.load(text)


def _say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 (a script's output)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is printed")
    parser.add_argument("--only", type=int, action="append", help="only scenarios of this many clusters")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--no-breakdown", action="store_true", help="only the whole-command wall times")
    parser.add_argument("--yaml", action="store_true", help="also time YAML parsers on the largest fleet")
    args = parser.parse_args()
    repo = args.repo.resolve()
    sys.path.insert(0, str(repo))
    scenarios = [s for s in SCENARIOS if not args.only or s.clusters in args.only]
    with tempfile.TemporaryDirectory(prefix="ringmaster-bench-") as tmp:
        path = os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))
        plain = {**os.environ, "PYTHONPATH": path}
        # As after an install: bytecode compiled once (into the temporary directory, not the tree).
        env = {**plain, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cli = [sys.executable, "-m", "ringmaster.cli"]
        _say(f"ringmaster at {repo}; {os.cpu_count()} CPUs; median of {args.runs} runs; seconds")
        startup = _median_wall([sys.executable, "-c", "import ringmaster.cli"], args.runs, env)
        nowhere = {**plain, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "none")}
        uncached = _median_wall([sys.executable, "-B", "-c", "import ringmaster.cli"], args.runs, nowhere)
        _say(f"startup (interpreter, CLI imports): {startup:.2f} cached bytecode, {uncached:.2f} without")
        header = f"{'scenario':<48} {'validate':>9} {'plan json':>9}"
        steps = ("load", "check", "schedule", "residency", "windows")
        if not args.no_breakdown:
            header += "  | " + " ".join(f"{s:>9}" for s in steps)
        _say(header)
        for scenario in scenarios:
            fleet_file, plan_file = write(scenario, Path(tmp))
            files = [str(plan_file), "--fleet", str(fleet_file)]
            validate = _median_wall([*cli, "validate", *files], args.runs, env)
            plan = _median_wall(
                [*cli, "plan", *files, "--version", VERSION, "--output", "json", "--at", AT], args.runs, env
            )
            row = f"{scenario.label:<48} {validate:>9.2f} {plan:>9.2f}"
            if not args.no_breakdown:
                figures = breakdown(fleet_file, plan_file, args.runs)
                row += "  | " + " ".join(f"{figures[s]:>9.3f}" for s in steps)
            _say(row)
        if args.yaml:
            largest = max(scenarios, key=lambda s: s.clusters)
            fleet_file, _ = write(largest, Path(tmp))
            _say(
                f"parsing the fleet of {largest.clusters} clusters ({fleet_file.stat().st_size // 1024} KiB):"
            )
            for name, seconds in yaml_parsers(fleet_file, args.runs).items():
                _say(f"  {name:<42} {'not installed' if seconds is None else f'{seconds:.3f}'}")


if __name__ == "__main__":
    main()
