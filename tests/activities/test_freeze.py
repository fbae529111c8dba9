"""``check_freezes``: the freezes holding a release, at once or once they change."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio.testing import ActivityEnvironment

from activities.freeze import FreezeActivities
from activities.models import FreezeCheckInput, FreezeNotice
from policies.freeze import Freeze
from tests.support.waiting import assert_eventually

AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
ALL = Freeze(scope="all", reason="INC-42", by="alice", at=AT)
OTHER = Freeze(scope="service", target="cart", reason="audit", by="bob", at=AT)


@dataclass
class Registry:
    """A registry whose freezes a test changes; counts the reads."""

    freezes: list[Freeze] = field(default_factory=list)
    reads: int = 0

    async def freezes_now(self) -> list[Freeze]:
        self.reads += 1
        return list(self.freezes)


class _Source:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def freezes(self) -> list[Freeze]:
        return await self._registry.freezes_now()

    async def tell_releases(self, inp: FreezeNotice) -> int:
        raise AssertionError("must not be called: checking never prompts releases")


class TestCheckFreezes:
    async def test_without_known_it_answers_at_once_with_the_freezes_in_scope(self) -> None:
        """A release's first read and a submission's check never wait; others' freezes are left out."""
        registry = Registry([OTHER, ALL])
        acts = FreezeActivities(_Source(registry), poll_seconds=0.01)
        found = await ActivityEnvironment().run(acts.check, FreezeCheckInput(service="api"))
        assert found.keys == ["all"]

    async def test_with_known_it_returns_only_once_the_freezes_in_scope_change(self) -> None:
        """A freeze of another service changes nothing for this release; the unfreeze of its own does."""
        registry = Registry([ALL])
        acts = FreezeActivities(_Source(registry), poll_seconds=0.01)
        env = ActivityEnvironment()
        heartbeats: list[object] = []
        env.on_heartbeat = lambda *details: heartbeats.append(details)
        watch = asyncio.create_task(env.run(acts.check, FreezeCheckInput(service="api", known=["all"])))
        await assert_eventually(lambda: asyncio.sleep(0, registry.reads), lambda n: n >= 3)
        registry.freezes = [ALL, OTHER]
        reads = registry.reads
        await assert_eventually(lambda: asyncio.sleep(0, registry.reads), lambda n: n >= reads + 3)
        assert not watch.done(), "another service's freeze is no change for this release"
        registry.freezes = [OTHER]
        found = await asyncio.wait_for(watch, timeout=5)
        assert found.keys == []
        assert heartbeats, "the wait heartbeats, so a lost worker is noticed and a cancellation arrives"
