"""Feature-flag activities: a cluster's Unleash strategy snapshotted, stepped and restored.

The contract is ``docs/design.md`` ("Feature flags: the contract for the Unleash side");
:mod:`policies.flags` builds what is written and judges what is read, and :mod:`activities._unleash`
carries the requests (with the worker's admin token for the server's host) and classifies failures.
Three operations, each idempotent (a retried or repeated call leaves Unleash as one call would) and
each answering with what the workflow records:

- :func:`snapshot`: the environment toggle and ringmaster's own strategy for the cluster, as found;
- :func:`set_rollout`: create (POST) or update (PUT by id) the cluster's ``flexibleRollout``, after
  checking that ringmaster still owns it (and, before its first write, that no other strategy may
  reach the cluster), turn the environment on when that is ringmaster's to do, then read it back;
- :func:`restore`: put the snapshot back (delete ringmaster's strategy, or put the recorded one back
  by its id), and turn the environment off again when it was off and nothing else enabled remains.

Someone else's edit is an ``OwnershipConflict``: ringmaster never overwrites it, and never writes
any strategy but its own. :class:`FlagActivities` runs them on the worker's cluster thread pool with
heartbeats (:func:`activities.rollout.run_blocking`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from typing import Literal, get_args

import structlog
from pydantic import Field, SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import _unleash, telemetry
from activities._unleash import FlagAdmin, FlagError, Target
from activities.models import FlagWrite, ReleaseRef
from activities.rollout import run_blocking
from policies import flags, messages
from policies.flags import FlagServer, FlagSnapshot, UnleashStrategy

Heartbeat = Callable[[str], None]


class _Model(messages.Message):
    """Strict when built, tolerant when decoded from a payload (``policies.messages``)."""


class FlagSnapshotInput(_Model):
    """Which cluster's flag state to record, on which server."""

    release: ReleaseRef
    cluster: str
    flag: str
    server: FlagServer


class FlagStepInput(_Model):
    """One ``setRollout`` step in one cluster."""

    release: ReleaseRef
    cluster: str
    flag: str
    server: FlagServer
    rollout: int = Field(ge=0, le=100)
    stickiness: flags.Stickiness = "userId"
    last_written: FlagWrite | None = None
    """The previous step's :attr:`FlagStepResult.written`; None before the cluster's first step."""


class FlagStepResult(_Model):
    """What a step did: recorded in history, and handed to the next step and the restore."""

    cluster: str
    flag: str
    strategy_id: str
    action: Literal["created", "updated", "unchanged", "skipped"]
    """``skipped``: an adopted strategy already rolls out further than the step (never lowered)."""
    rollout: int
    """The rollout in effect afterwards (above the step's for a skipped step)."""
    adopted: bool = False
    """The strategy was found titled ``ringmaster:<cluster>`` before this run first wrote it."""
    environment_turned_on: bool = False
    written: FlagWrite


class FlagRestoreInput(_Model):
    """Put a cluster's flag back as the snapshot recorded it."""

    release: ReleaseRef
    server: FlagServer
    snapshot: FlagSnapshot
    last_written: FlagWrite | None = None
    """The run's latest step result's ``written``; None when no step is known to have written."""
    reason: str = ""


class FlagRestoreResult(_Model):
    """What a restore did."""

    cluster: str
    flag: str
    action: Literal["deleted", "restored", "unchanged"]
    environment_turned_off: bool = False
    environment_enabled: bool
    """The toggle read back afterwards: the snapshot's, except where Unleash forbids it (see
    :func:`restore`)."""


class _Session:
    """One operation's requests about one flag in one cluster, heartbeating before each."""

    def __init__(self, admin: FlagAdmin, server: FlagServer, flag: str, cluster: str, beat: Heartbeat):
        self.admin, self.server, self.flag, self.cluster, self.beat = admin, server, flag, cluster, beat
        self.strategies_path = server.admin_path(flag)
        self.environment_path = self.strategies_path.removesuffix("/strategies")

    def call(self, method: str, path: str, what: str, body: object = None) -> object:
        """One request (``what``: ``GET strategies``, for messages); see :class:`FlagAdmin`."""
        self.beat(f"{what}: {self.flag} on {self.server.host}")
        return self.admin.call(self.server, method, path, body, about=Target(self.flag, self.cluster, what))

    def enabled(self) -> bool:
        """Whether the flag is on in the environment (a 404 here: no such flag, project or environment)."""
        found = self.call("GET", self.environment_path, "GET environment")
        if not isinstance(found, dict):
            raise self.refused("the Admin API answered GET environment with no object")
        return bool(found.get("enabled"))

    def strategies(self) -> list[UnleashStrategy]:
        """The flag's strategies in the environment, segments included."""
        found = self.call("GET", self.strategies_path, "GET strategies")
        if not isinstance(found, list):
            raise self.refused("the Admin API answered GET strategies with no list")
        return [UnleashStrategy.model_validate(s) for s in found]

    def strategy(self, strategy_id: str) -> UnleashStrategy | None:
        """The strategy with ``strategy_id``, or None when Unleash has no such one."""
        try:
            found = self.call("GET", f"{self.strategies_path}/{strategy_id}", "GET strategy")
        except FlagError as err:
            if _unleash.is_not_found(err):
                return None
            raise
        return UnleashStrategy.model_validate(found)

    def switch(self, on: bool) -> None:
        """The environment toggle (``POST .../on`` or ``.../off``); repeating it changes nothing."""
        word = "on" if on else "off"
        self.call("POST", f"{self.environment_path}/{word}", f"switch {word}")

    def conflict(self, problem: str) -> FlagError:
        """An ownership conflict saying ``problem`` about this flag in this environment."""
        return FlagError(f"{self._where()}: {problem}", kind="ownership-conflict", cluster=self.cluster)

    def refused(self, problem: str) -> FlagError:
        """A permanent failure saying ``problem`` about this flag in this environment."""
        return FlagError(f"{self._where()}: {problem}", kind="permanent", cluster=self.cluster)

    def _where(self) -> str:
        return f"flag {self.flag} in {self.server.environment} on {self.server.host}"


def _describe(strategy: UnleashStrategy) -> str:
    name = f"{strategy.name} {strategy.title!r}" if strategy.title else strategy.name
    return f"strategy {strategy.id} ({name})"


def _rollout(strategy: UnleashStrategy) -> int:
    """The share a strategy turns the flag on for: 0 when disabled or unreadable."""
    if strategy.disabled:
        return 0
    try:
        return int(strategy.parameters.get("rollout", "0"))
    except ValueError:
        return 0


def _owned(session: _Session, strategies: list[UnleashStrategy]) -> UnleashStrategy | None:
    """The one strategy titled ``ringmaster:<cluster>``, None if there is none; a conflict if several."""
    mine = [s for s in strategies if flags.is_owned(s, session.cluster)]
    if len(mine) > 1:
        ids = ", ".join(str(s.id) for s in mine)
        raise session.conflict(
            f"{len(mine)} strategies are titled {flags.owner_title(session.cluster)} ({ids})"
        )
    return mine[0] if mine else None


def snapshot(admin: FlagAdmin, cluster: str, flag: str, server: FlagServer, beat: Heartbeat) -> FlagSnapshot:
    """The flag's state for ``cluster`` as found: the environment toggle and ringmaster's own strategy."""
    session = _Session(admin, server, flag, cluster, beat)
    return FlagSnapshot(
        cluster=cluster,
        flag=flag,
        project=server.project,
        environment=server.environment,
        environment_enabled=session.enabled(),
        strategy=_owned(session, session.strategies()),
    )


def set_rollout(admin: FlagAdmin, inp: FlagStepInput, beat: Heartbeat) -> FlagStepResult:
    """Give ``inp.cluster`` ``inp.rollout`` percent of the flag (never lowering an adopted strategy),
    switch the environment on where that is ringmaster's to do, and read both back."""
    session = _Session(admin, inp.server, inp.flag, inp.cluster, beat)
    target = flags.rollout_strategy(inp.server, inp.flag, inp.cluster, inp.rollout, inp.stickiness)
    enabled = session.enabled()
    strategies = session.strategies()
    last = inp.last_written
    if last is None:
        found = _owned(session, strategies)
        _check_first_write(session, enabled, strategies)
    else:
        found = next((s for s in strategies if s.id == last.strategy.id), None)
        # Found as this very step writes it: an earlier attempt of the step wrote it, not a person.
        if flags.ownership_problem(found, target) is not None:
            problem = flags.ownership_problem(found, last.strategy)
            if problem is not None:
                raise session.conflict(problem)
        if last.environment_enabled and not enabled:
            raise session.conflict(
                f"someone switched the flag off in {inp.server.environment} after ringmaster's last step "
                "(a kill switch): ringmaster does not switch it on again"
            )
    if not enabled:
        _check_toggle(session, strategies, found)

    if found is None:
        created = session.call("POST", session.strategies_path, "create strategy", flags.request_body(target))
        strategy_id = str(created.get("id", "")) if isinstance(created, dict) else ""
        if not strategy_id:
            raise session.refused("the Admin API answered the strategy's creation without its id")
        action: Literal["created", "updated", "unchanged", "skipped"] = "created"
        written = target.model_copy(update={"id": strategy_id})
    elif flags.ownership_problem(found, target) is None:
        action, written = "unchanged", found
    elif _rollout(found) > inp.rollout:
        action, written = "skipped", found  # never lowered: its users keep the feature
    else:
        path = f"{session.strategies_path}/{found.id}"
        session.call("PUT", path, "update strategy", flags.request_body(target))
        action, written = "updated", target.model_copy(update={"id": found.id})
    if not enabled:
        session.switch(on=True)

    read = session.strategy(str(written.id))
    problem = flags.ownership_problem(read, written)
    if problem is not None:
        raise session.conflict(f"read back after the step: {problem}")
    if not session.enabled():
        raise session.conflict(f"read back after the step: the flag is off in {inp.server.environment}")
    return FlagStepResult(
        cluster=inp.cluster,
        flag=inp.flag,
        strategy_id=str(written.id),
        action=action,
        rollout=_rollout(written),
        adopted=last is None and found is not None,
        environment_turned_on=not enabled,
        written=FlagWrite(strategy=written, environment_enabled=True),
    )


def _check_first_write(session: _Session, enabled: bool, strategies: list[UnleashStrategy]) -> None:
    """Before the cluster's first write: nothing but ringmaster's own strategy may turn the flag on there."""
    field = session.server.context_field
    for strategy in strategies:
        if not flags.is_owned(strategy, session.cluster) and flags.may_reach(
            strategy, session.cluster, field
        ):
            raise session.conflict(
                f"{_describe(strategy)} may switch the flag on in {session.cluster} too: ringmaster's steps "
                f"would not be the only thing deciding who sees it there (constrain it with {field} to "
                "other clusters, or disable it, first)"
            )
    if enabled and all(s.disabled for s in strategies):
        raise session.conflict(
            f"the flag is on in {session.server.environment} with no enabled strategy: on for everyone"
        )


def _check_toggle(session: _Session, strategies: list[UnleashStrategy], mine: UnleashStrategy | None) -> None:
    """The environment is off: ringmaster may switch it on only when nothing else there is enabled."""
    others = [s for s in strategies if not s.disabled and (mine is None or s.id != mine.id)]
    if others:
        raise session.conflict(
            f"the flag is off in {session.server.environment} while {_describe(others[0])} is enabled "
            "there: the off switch is a person's kill switch, and ringmaster does not switch it on"
        )


def restore(admin: FlagAdmin, inp: FlagRestoreInput, beat: Heartbeat) -> FlagRestoreResult:
    """Put the cluster's flag back as ``inp.snapshot`` recorded it, after checking that what is there
    is what ringmaster last wrote; then switch the environment off again if it was off and no other
    enabled strategy remains.

    One difference is left as Unleash makes it: an environment that was on is left off when Unleash
    switched it off itself (it does when the last enabled strategy goes), since switching it on again
    with no enabled strategy would make Unleash add its default strategy, on for everyone.
    """
    snap, server = inp.snapshot, inp.server
    session = _Session(admin, server, snap.flag, snap.cluster, beat)
    if (server.project, server.environment) != (snap.project, snap.environment):
        raise session.refused(
            f"the snapshot was taken in project {snap.project}, environment {snap.environment}; the "
            f"cluster's flag server now names project {server.project}, environment {server.environment}"
        )
    wanted = snap.strategy
    found = _restore_target(session, inp)
    action: Literal["deleted", "restored", "unchanged"] = "unchanged"
    if found is None and wanted is None:
        pass  # nothing of ringmaster's is there (a repeated restore, or a step that never wrote)
    elif found is not None and wanted is not None and found.id == wanted.id and _same(found, wanted):
        pass  # already as recorded
    else:
        _check_restore(session, inp, found)
        if wanted is None and found is not None:
            session.call("DELETE", f"{session.strategies_path}/{found.id}", "delete strategy")
            action = "deleted"
        elif wanted is not None:
            session.call(
                "PUT",
                f"{session.strategies_path}/{wanted.id}",
                "restore strategy",
                flags.request_body(wanted),
            )
            action = "restored"

    turned_off = False
    if not snap.environment_enabled and session.enabled():
        others = [s for s in session.strategies() if not s.disabled and (wanted is None or s.id != wanted.id)]
        if not others:
            session.switch(on=False)
            turned_off = True
    _verify_restored(session, inp, found)
    return FlagRestoreResult(
        cluster=snap.cluster,
        flag=snap.flag,
        action=action,
        environment_turned_off=turned_off,
        environment_enabled=session.enabled(),
    )


def _same(found: UnleashStrategy, wanted: UnleashStrategy) -> bool:
    return flags.ownership_problem(found, wanted) is None


def _restore_target(session: _Session, inp: FlagRestoreInput) -> UnleashStrategy | None:
    """The strategy a restore acts on: the one ringmaster last wrote, the recorded one, or (neither
    known: a first write whose result was lost) the one titled as ringmaster's for the cluster."""
    if inp.last_written is not None:
        return session.strategy(str(inp.last_written.strategy.id))
    if inp.snapshot.strategy is not None:
        return session.strategy(str(inp.snapshot.strategy.id))
    return _owned(session, session.strategies())


def _check_restore(session: _Session, inp: FlagRestoreInput, found: UnleashStrategy | None) -> None:
    """What is there must be what ringmaster last wrote, or, with no write known, what a step writes."""
    if inp.last_written is not None:
        problem = flags.ownership_problem(found, inp.last_written.strategy)
    elif found is None:
        problem = "ringmaster's strategy was deleted by someone else"  # the recorded one: restored by PUT
    else:
        problem = flags.ownership_problem(found, _as_a_step_writes(session, found))
    if problem is not None:
        raise session.conflict(problem)
    wanted = inp.snapshot.strategy
    if wanted is not None and found is not None and found.id != wanted.id:
        raise session.conflict(
            f"ringmaster's strategy is {found.id}, but the snapshot recorded {wanted.id}: restore it by hand"
        )


def _as_a_step_writes(session: _Session, found: UnleashStrategy) -> UnleashStrategy:
    """What a step would have written to leave ``found`` (its rollout and stickiness), with its id."""
    found_stickiness = found.parameters.get("stickiness", "")
    stickiness: flags.Stickiness = "userId"  # for any other, the parameters differ and the check says so
    for known in get_args(flags.Stickiness):
        if found_stickiness == known:
            stickiness = known
    rollout = max(0, min(100, _rollout(found)))
    strategy = flags.rollout_strategy(session.server, session.flag, session.cluster, rollout, stickiness)
    return strategy.model_copy(update={"id": found.id})


def _verify_restored(session: _Session, inp: FlagRestoreInput, found: UnleashStrategy | None) -> None:
    """Read back: ringmaster's strategy is as the snapshot recorded it (or gone)."""
    wanted = inp.snapshot.strategy
    if wanted is not None:
        problem = flags.ownership_problem(session.strategy(str(wanted.id)), wanted)
        if problem is not None:
            raise session.conflict(f"read back after the restore: {problem}")
    elif found is not None and session.strategy(str(found.id)) is not None:
        raise session.conflict(f"read back after the restore: {_describe(found)} is still there")


def _log(release: ReleaseRef, cluster: str, flag: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger("ringmaster.activities").bind(  # type: ignore[no-any-return]
        release=release.name, ring=release.ring, cluster=cluster, flag=flag
    )


class _EnvironmentLocks:
    """One lock per flag and environment: the worker's writes to it run one at a time.

    Every cluster of a region shares the region's Unleash environment, and its on/off toggle. A
    restore that switches the environment off once no other enabled strategy remains, run while a
    step of another cluster creates its strategy, reads "none remains" and then switches off under
    it; that step's read-back then meets a flag that is off, as a person's kill switch leaves it, and
    the other cluster stops with an ownership conflict it did not deserve (the feature off: the safe
    side, but a failed release). Taken in turn, each operation's reads stay true until its writes.
    Unleash offers no compare-and-set on the toggle, so workers of several replicas can still meet
    (``docs/design.md``); one worker's releases never do.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str, str, str], threading.Lock] = {}

    @contextlib.contextmanager
    def held(self, server: FlagServer, flag: str, beat: Heartbeat) -> Iterator[None]:
        """Hold the lock of ``flag`` in ``server``'s environment, heartbeating while waiting for it."""
        key = (server.host, server.project, server.environment, flag)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        while not lock.acquire(timeout=0.5):
            beat(f"waiting for another change of {flag} in {server.environment} on {server.host}")
        try:
            yield
        finally:
            lock.release()


class FlagActivities:
    """The flag activities, over one Admin API client and the worker's cluster thread pool.

    A worker whose settings hold no admin token registers them all the same: each then fails
    permanently, naming the host and the setting, if a workflow ever calls it. Writes to one flag in
    one environment run one at a time (:class:`_EnvironmentLocks`).
    """

    def __init__(self, admin: FlagAdmin, executor: Executor) -> None:
        self._admin = admin
        self._executor = executor
        self._locks = _EnvironmentLocks()

    @classmethod
    def with_tokens(
        cls, tokens: Mapping[str, SecretStr], executor: Executor, *, timeout: float = 10.0
    ) -> FlagActivities:
        """Over the Admin API with ``tokens`` (by flag server host), each request at most ``timeout`` s."""
        return cls(_unleash.UnleashAdmin(tokens, timeout=timeout), executor)

    @activity.defn(name="snapshot_flag")
    async def snapshot_flag(self, inp: FlagSnapshotInput) -> FlagSnapshot:
        """The flag's state for the cluster before the run first changes it; writes nothing."""
        return await run_blocking(
            self._executor, lambda beat: snapshot(self._admin, inp.cluster, inp.flag, inp.server, beat)
        )

    @activity.defn(name="set_flag_rollout")
    async def set_flag_rollout(self, inp: FlagStepInput) -> FlagStepResult:
        """One ``setRollout`` step in one cluster, verified; repeating it writes nothing new."""
        log = _log(inp.release, inp.cluster, inp.flag)
        try:

            def step(beat: Heartbeat) -> FlagStepResult:
                with self._locks.held(inp.server, inp.flag, beat):
                    return set_rollout(self._admin, inp, beat)

            result = await run_blocking(self._executor, step)
        except ApplicationError as err:
            telemetry.flag_change(inp.server.host, "set-rollout", "failed")
            log.warning("flag step failed", rollout=inp.rollout, type=err.type, error=err.message)
            raise
        telemetry.flag_change(inp.server.host, "set-rollout", result.action)
        log.info("flag step", rollout=result.rollout, action=result.action, strategy=result.strategy_id)
        return result

    @activity.defn(name="restore_flag")
    async def restore_flag(self, inp: FlagRestoreInput) -> FlagRestoreResult:
        """Put the cluster's flag back as the snapshot recorded it."""
        log = _log(inp.release, inp.snapshot.cluster, inp.snapshot.flag)
        try:

            def put_back(beat: Heartbeat) -> FlagRestoreResult:
                with self._locks.held(inp.server, inp.snapshot.flag, beat):
                    return restore(self._admin, inp, beat)

            result = await run_blocking(self._executor, put_back)
        except ApplicationError as err:
            telemetry.flag_change(inp.server.host, "restore", "failed")
            log.error("flag restore failed", type=err.type, error=err.message)
            raise
        telemetry.flag_change(inp.server.host, "restore", result.action)
        log.info("flag restored", action=result.action, reason=inp.reason)
        return result
