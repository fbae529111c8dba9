"""Reading a flag server for stale flags: the Admin API calls behind ``ringmaster flags stale``.

For one flag server and project of the fleet (:class:`policies.flag_audit.AuditedServer`),
:func:`stale_flags` reads, with the admin token the worker's settings hold for its host
(:mod:`activities._unleash`, which also classifies failures):

1. the project's flags with their environment toggles (``GET /api/admin/projects/<p>/features``);
2. each flag enabled in every environment the fleet names, in full (``GET .../features/<flag>``);
3. for each flag :mod:`policies.flag_audit` finds fully on everywhere, the latest change in each
   environment from Unleash's event log (``GET /api/admin/search/events``, newest first, one event).

It only reads: nothing is written, so a repeat is harmless. The judgement is
:func:`policies.flag_audit.judge`'s. Errors are :class:`~activities._unleash.FlagError` naming the
server's host and the request, never the token.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from pydantic import ValidationError

from activities import _unleash
from activities._unleash import FlagAdmin, FlagError, Target
from activities.errors import ErrorKind
from policies import flag_audit
from policies.flag_audit import AuditedServer, Feature, StaleFlag
from policies.flags import FlagServer


class _ServerTarget(Target):
    """A request about a whole server (no flag, no cluster): messages name the host and the request."""

    def __init__(self, what: str) -> None:
        super().__init__(flag="", cluster="", what=what)

    def error(self, server: FlagServer, problem: str, kind: ErrorKind, status: int = 0) -> FlagError:
        """``unleash.eu.example.com: GET features of project default: <problem>``."""
        return FlagError(f"{server.host}: {self.what}: {problem}", kind=kind, cluster="", status=status)


def stale_flags(
    admin: FlagAdmin,
    audited: AuditedServer,
    now: datetime,
    older_than: timedelta,
) -> list[StaleFlag]:
    """The flags of ``audited`` fully on in every environment the fleet names there, unchanged for at
    least ``older_than`` before ``now``, sorted by name; FlagError when the server cannot tell."""
    server = audited.server
    base = server.api_url.path.rstrip("/")
    project = quote(server.project, safe="")
    what = f"GET features of project {server.project}"
    overview = admin.call(
        server, "GET", f"{base}/admin/projects/{project}/features", about=_ServerTarget(what)
    )
    items = overview.get("features") if isinstance(overview, dict) else None
    if not isinstance(items, list):
        raise _ServerTarget(what).error(server, "the answer has no list of features", "permanent")
    found: list[StaleFlag] = []
    for name in flag_audit.candidates(items, audited):
        feature = _feature(admin, audited, base, name)
        if feature is None or not flag_audit.fully_on_everywhere(feature, audited):
            continue  # no event read for a flag that is not stale whatever its age
        changed = {s.name: _last_change(admin, audited, base, name, s.name) for s in audited.environments}
        row = flag_audit.judge(feature, audited, changed, now, older_than)
        if row is not None:
            found.append(row)
    return sorted(found, key=lambda r: r.flag)


def _feature(admin: FlagAdmin, audited: AuditedServer, base: str, name: str) -> Feature | None:
    """The flag with every environment's strategies; None when it went away meanwhile (404)."""
    server = audited.server
    what = f"GET flag {name}"
    path = f"{base}/admin/projects/{quote(server.project, safe='')}/features/{quote(name, safe='')}"
    try:
        answer = admin.call(server, "GET", path, about=_ServerTarget(what))
    except FlagError as err:
        if _unleash.is_not_found(err):
            return None
        raise
    try:
        return Feature.model_validate(answer)
    except ValidationError:
        raise _ServerTarget(what).error(server, "the answer is not a flag", "permanent") from None


def _last_change(
    admin: FlagAdmin, audited: AuditedServer, base: str, name: str, environment: str
) -> datetime | None:
    """When Unleash last recorded a change to who gets ``name`` in ``environment``; None: no record."""
    server = audited.server
    query = urlencode(
        {
            "feature": f"IS:{name}",
            "project": f"IS:{server.project}",
            "environment": f"IS:{environment}",
            "type": "IS_ANY_OF:" + ",".join(flag_audit.CHANGES),
            "limit": "1",
        }
    )
    target = _ServerTarget(f"GET events of flag {name} in {environment}")
    answer = admin.call(server, "GET", f"{base}/admin/search/events?{query}", about=target)
    events = answer.get("events") if isinstance(answer, dict) else None
    if not isinstance(events, list):
        raise target.error(server, "the answer has no list of events", "permanent")
    if not events or not isinstance(events[0], dict):
        return None
    try:
        return datetime.fromisoformat(str(events[0].get("createdAt")))
    except ValueError:
        raise target.error(server, "the latest event has no valid createdAt", "permanent") from None
