"""Activities that turn policy into recorded facts: the prepared release and window states.

Policy code runs here, not in workflows, so its answers enter history as activity results: editing
``policies/`` never changes what a running release already decided, and replay stays deterministic.
"""

from __future__ import annotations

import hashlib

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import build, errors
from activities.models import PreparedRelease, PrepareInput, WindowInput, WindowState
from policies import judgement, loading, residency, windows
from policies.flags import FlagServer
from policies.fleet import Fleet
from policies.schedule import Schedule


class ReleaseActivities:
    """Plan validation, scheduling and windows, against the fleet this worker was given."""

    def __init__(
        self, fleet: Fleet, *, bake_chunk: int | None = None, notify: bool = False, archive: bool = False
    ) -> None:
        self._fleet = fleet
        self._bake_chunk = bake_chunk
        self._notify = notify
        self._archive = archive
        self._fleet_digest = hashlib.sha256(fleet.model_dump_json(by_alias=True).encode()).hexdigest()

    @activity.defn(name="prepare_release")
    def prepare_release(self, inp: PrepareInput) -> PreparedRelease:
        """Validate the plan against the worker's fleet, schedule it and judge the static residency rules."""
        try:
            judged = judgement.judge(loading.Text(inp.plan_source, inp.plan_text), self._fleet, inp.version)
        except loading.ConfigError as err:
            raise ApplicationError(str(err), type=errors.INVALID_PLAN, non_retryable=True) from None
        if judged.plan.service != inp.service:
            raise ApplicationError(
                f"{inp.plan_source}: service: the plan is for {judged.plan.service!r}, "
                f"the release for {inp.service!r}",
                type=errors.INVALID_PLAN,
                non_retryable=True,
            )
        return PreparedRelease(
            plan=judged.plan,
            schedule=judged.schedule,
            static_decisions=dict(judged.decisions),
            plan_digest=hashlib.sha256(inp.plan_text.encode()).hexdigest(),
            fleet_digest=self._fleet_digest,
            validators={
                c.name: residency.validators(c, judged.schedule)
                for c in judged.schedule.all_clusters()
                if c.regulated
            },
            bake_chunk=self._bake_chunk,
            worker=build.describe(),
            notify=self._notify,
            archive=self._archive,
            flag_servers=self._flag_servers(judged.schedule),
        )

    def _flag_servers(self, schedule: Schedule) -> dict[str, FlagServer]:
        """The flag server of every region a ``featureFlag`` ring reaches (validated: each has one)."""
        found: dict[str, FlagServer] = {}
        for ring in schedule.rings:
            if ring.strategy.feature_flag is None:
                continue
            for cluster in ring.clusters():
                server = self._fleet.region(cluster.region).flags
                if server is not None:
                    found[cluster.region] = server
        return found

    @activity.defn(name="check_window")
    def check_window(self, inp: WindowInput) -> WindowState:
        """The region's deployment window at ``inp.at``: open or closed, and when that changes."""
        at = inp.at
        is_open = windows.is_open(inp.plan, self._fleet, inp.region, at)
        if is_open:
            return WindowState(
                region=inp.region,
                open=True,
                next_close=windows.next_close(inp.plan, self._fleet, inp.region, at),
            )
        nxt = windows.next_open(inp.plan, self._fleet, inp.region, at)
        zone = self._fleet.region(inp.region)
        return WindowState(
            region=inp.region,
            open=False,
            next_open=nxt,
            opens=f"{nxt.astimezone(zone.zone):%a %H:%M} {zone.timezone}" if nxt else "",
            reason="outside the region's deployment window"
            if nxt is not None
            else "no deployment window opens within the search horizon",
        )
