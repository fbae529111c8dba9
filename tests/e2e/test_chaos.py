"""A fixed handful of generated fault scenarios, judged on the clusters: the chaos suite's CI share.

The long run is ``scripts/chaos.py`` (figures in ``docs/reliability.md``); here a few seeds chosen
so that, together, they strike with every fault kind and every operator control at moments when
the release is still running: a worker SIGKILL and SIGTERM, a dev server restart on its database,
a Prometheus restart, 5xx, 429, a hanging request, dropped connections, a 403 and an ownership
conflict from the emulator, and a hold, an abort, a supersede, a cancel, a terminate and a reset.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sandbox.chaos import runner, scenario
from sandbox.chaos import stack as chaos_stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SEEDS = (1832, 325, 2581, 2557, 2283, 107, 8)
"""Scenarios whose events fall early in their release: together they cover every kind."""
CONTROLS = {"hold", "abort", "supersede", "cancel", "terminate", "reset"}


class TestGeneratedScenarios:
    def test_the_fixed_seeds_draw_every_fault_and_control(self) -> None:
        """If the generator changes, the seed set must be chosen again: this says which kind went missing."""
        clusters = chaos_stack.drawable(chaos_stack.FLEET)
        drawn = {k for seed in SEEDS for k in scenario.generate(seed, clusters).kinds()}
        wanted = set(scenario.FAULTS) | CONTROLS
        assert wanted <= drawn, sorted(wanted - drawn)

    async def test_every_invariant_holds_under_every_fault_kind(self, tmp_path: Path) -> None:
        """Each scenario ends within its bound, with the clusters as its phase requires, and every kind
        of fault and control took effect in at least one of them."""
        stack = await chaos_stack.up(tmp_path / "stack")
        try:
            clusters = stack.clusters()
            gate = asyncio.Semaphore(4)

            async def one(seed: int) -> runner.Report:
                async with gate:
                    return await runner.run(stack, scenario.generate(seed, clusters))

            reports = await asyncio.gather(*(one(seed) for seed in SEEDS))
        finally:
            chaos_stack.down(stack)
        violations = {r.seed: r.violations for r in reports if r.violations}
        assert not violations, f"replay with scripts/chaos.py --seeds {','.join(map(str, violations))}"
        done = {label.split("@", 1)[0] for r in reports for label in r.done}
        missing = (set(scenario.FAULTS) | CONTROLS) - done
        assert not missing, f"never took effect: {sorted(missing)}; skipped: {[r.skipped for r in reports]}"
