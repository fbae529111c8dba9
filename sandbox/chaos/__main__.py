"""``python -m sandbox.chaos --scenarios N --seed S``: generated fault scenarios, judged on the clusters.

Scenario ``i`` of a run uses seed ``S + i``; a failing scenario prints its seed, and
``--seed <it> --scenarios 1`` runs it again. ``--concurrency K`` runs K scenarios side by side on
one stack (process faults then strike all of them). The figures printed at the end are those
``docs/reliability.md`` records; ``--json FILE`` also writes every scenario's report.

Exit codes: 0 every scenario held every invariant, 1 some did not, 2 bad arguments, 3 the stack
could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy

from sandbox import stack as sandbox_stack
from sandbox.chaos import scenario as scenarios
from sandbox.chaos import stack as chaos_stack
from sandbox.chaos.runner import Report, run


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", type=int, default=10, help="how many scenarios (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first scenario (default 1)")
    parser.add_argument("--seeds", default="", help="run exactly these seeds (comma-separated) instead")
    parser.add_argument("--concurrency", type=int, default=1, help="scenarios at once (default 1)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the stack lives (default: a temporary dir)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write every scenario's report here")
    parser.add_argument(
        "--figures-of",
        type=Path,
        default=None,
        help="run nothing: print the figures of a run saved with --json (figures added since included)",
    )
    args = parser.parse_args(argv)
    if args.seeds and not all(s.strip().isdigit() for s in args.seeds.split(",")):
        parser.error("--seeds takes whole numbers separated by commas, e.g. 12,40,7")
    if args.scenarios < 1 or args.concurrency < 1:
        parser.error("--scenarios and --concurrency must be at least 1")
    return args


def seeds(args: argparse.Namespace) -> list[int]:
    """The seeds a run goes through: ``--seeds``, else ``--scenarios`` from ``--seed`` on."""
    if args.seeds:
        return [int(s) for s in args.seeds.split(",") if s.strip()]
    return [args.seed + i for i in range(args.scenarios)]


async def _run_all(args: argparse.Namespace, directory: Path) -> list[Report]:
    stack = await chaos_stack.up(directory)
    clusters = stack.clusters()
    gate = asyncio.Semaphore(args.concurrency)
    reports: list[Report] = []

    async def one(seed: int) -> None:
        async with gate:
            scenario = scenarios.generate(seed, clusters)
            try:
                report = await run(stack, scenario)
            except Exception as exc:
                report = Report(
                    seed=seed, kinds=scenario.kinds(), violations=[f"harness: {type(exc).__name__}: {exc}"]
                )
            reports.append(report)
            mark = "ok  " if report.ok else "FAIL"
            print(  # noqa: T201 - the script's output
                f"{mark} seed {seed:<6} {report.seconds:6.1f}s  {'/'.join(report.phases) or '-':<24} "
                f"{', '.join(report.done) or 'no events'}",
                flush=True,
            )
            for violation in report.violations:
                print(f"       {violation}", flush=True)  # noqa: T201

    try:
        await asyncio.gather(*(one(seed) for seed in seeds(args)))
    finally:
        stack.counts.setdefault("worker-kill", 0)
        chaos_stack.down(stack)
    return sorted(reports, key=lambda r: r.seed)


def summary(reports: list[Report]) -> dict[str, object]:
    """The figures of a run: scenarios, faults by kind, violations, time per kind of fault."""
    done = Counter(label.split("@", 1)[0] for r in reports for label in r.done)
    phases = Counter(p for r in reports for p in r.phases)
    failing = [r.seed for r in reports if not r.ok]
    promoted = [r for r in reports if r.ok and r.phases == ["succeeded"]]
    quiet = [r.seconds - r.planned for r in promoted if not r.done]
    base, cost = event_costs(promoted)
    processes: dict[str, dict[str, object]] = {}
    for kind in scenarios.PROCESS_FAULTS:
        struck = [(r.ok, label) for r in reports for label in r.done if label.startswith(kind + "@")]
        phases_hit = Counter(label.split("[", 1)[1].split("]", 1)[0] for _, label in struck)
        processes[kind] = {
            "tried": len(struck),
            "inScenariosThatHeld": sum(ok for ok, _ in struck),
            "releasePhaseWhenStruck": dict(sorted(phases_hit.items())),
        }
    return {
        "scenarios": len(reports),
        "violating": len(failing),
        "violatingSeeds": failing,
        "eventsDone": dict(sorted(done.items())),
        "phases": dict(sorted(phases.items())),
        "processFaults": processes,
        "undisturbedPromotions": len(quiet),
        "medianOverrunUndisturbed": round(statistics.median(quiet), 1) if quiet else None,
        "promotedReleases": len(promoted),
        "overrunWithNoEvent": base,
        "secondsAddedPerEvent": cost,
    }


def event_costs(promoted: list[Report]) -> tuple[float | None, dict[str, dict[str, float]]]:
    """What one event of each kind adds to a promoted release's time beyond its plan's own length.

    Releases promoted everywhere are the ones whose length an event can only stretch (a rollback ends
    one early). Few are struck by one kind alone, so the overrun (seconds beyond the plan) is fitted by
    least squares as a base plus a cost per event of each kind, over every promoted release; kinds
    struck fewer than ``MIN_STRUCK`` times are left out. The base includes what running scenarios side
    by side costs each of them.
    """
    counts = Counter(label.split("@", 1)[0] for r in promoted for label in r.done)
    kinds = sorted(k for k, n in counts.items() if n >= MIN_STRUCK)
    if len(promoted) <= len(kinds) + 1:
        return None, {}
    rows = [[1.0] + [float(sum(x.startswith(k + "@") for x in r.done)) for k in kinds] for r in promoted]
    overrun = [r.seconds - r.planned for r in promoted]
    x, y = numpy.array(rows), numpy.array(overrun)
    fit = numpy.linalg.lstsq(x, y, rcond=None)[0]
    # The 95% half-width of each estimate, from the residuals: what the figure can and cannot tell.
    residual = float(((y - x @ fit) ** 2).sum()) / (len(rows) - len(kinds) - 1)
    spread = 1.96 * numpy.sqrt(numpy.diag(residual * numpy.linalg.pinv(x.T @ x)))
    cost = {
        k: {"struck": counts[k], "seconds": round(float(c), 1), "plusMinus": round(float(e), 1)}
        for k, c, e in zip(kinds, fit[1:], spread[1:], strict=True)
    }
    return round(float(fit[0]), 1), cost


MIN_STRUCK = 5
"""Events of a kind among promoted releases below which its cost is not estimated."""


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.figures_of:
        return _figures_of(args.figures_of)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        directory = args.dir or Path(tmp)
        try:
            reports = asyncio.run(_run_all(args, directory))
        except sandbox_stack.SandboxError as exc:
            print(f"chaos: the stack did not start: {exc}", file=sys.stderr)  # noqa: T201
            return 3
    figures = summary(reports)
    figures["wallSeconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures, indent=2))  # noqa: T201
    if args.json:
        args.json.write_text(
            json.dumps({"summary": figures, "scenarios": [r.as_json() for r in reports]}, indent=2)
        )
    if figures["violating"]:
        seeds = " ".join(str(s) for s in figures["violatingSeeds"])  # type: ignore[attr-defined]
        print(f"violations in seeds {seeds}; replay one with --seed N --scenarios 1", file=sys.stderr)  # noqa: T201
        return 1
    return 0


def _figures_of(path: Path) -> int:
    try:
        saved = json.loads(path.read_text())
        reports = [Report.from_json(entry) for entry in saved["scenarios"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"chaos: {path} is no run saved with --json: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    figures = summary(reports)
    figures["wallSeconds"] = saved.get("summary", {}).get("wallSeconds")
    print(json.dumps(figures, indent=2))  # noqa: T201
    return 1 if figures["violating"] else 0


if __name__ == "__main__":
    sys.exit(main())
