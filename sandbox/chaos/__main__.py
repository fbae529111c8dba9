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
    # What a kind of event costs: how far a release promoted everywhere overran its plan's own length
    # when that kind alone struck it, beyond the overrun of promoted releases nothing struck.
    promoted = [r for r in reports if r.ok and r.phases == ["succeeded"]]
    quiet = [r.seconds - r.planned for r in promoted if not r.done]
    cost: dict[str, dict[str, float]] = {}
    for kind in sorted(done):
        alone = [r.seconds - r.planned for r in promoted if {x.split("@", 1)[0] for x in r.done} == {kind}]
        if alone and quiet:
            extra = statistics.median(alone) - statistics.median(quiet)
            cost[kind] = {"releases": len(alone), "medianExtraSeconds": round(extra, 1)}
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
        "costOfALoneEvent": cost,
    }


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
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


if __name__ == "__main__":
    sys.exit(main())
