"""Whether four eyes means two verified people: the warning ``validate`` and ``submit`` print.

A ring with ``approval.fourEyes`` compares the approver with the submitter; under identity mode
``trusted`` both are the client's word (``--by``), so anyone can approve as anyone. The CLI does not
run the worker and ``validate`` never connects to it, so it judges from the settings a worker
started here would read (:class:`ringmaster.settings.Settings`): ``RINGMASTER_IDENTITY_POLICY`` and
that file's ``mode``; no policy file at all is ``trusted`` (``ringmaster.worker.identity_activities``).

The warning goes to stderr and never changes an exit code. The policy is read only for a plan with
four eyes. A policy file that is named but invalid is bad input (:class:`policies.loading.ConfigError`
naming the file, exit 2, as the worker refuses it); one that does not exist here (a worker elsewhere
holds it), or settings that cannot be read, only make the mode unknown, which the warning says.
Imports neither Temporal nor the worker: ``validate`` uses it.
"""

from __future__ import annotations

from pydantic import ValidationError

from policies import loading
from policies.plan import ReleasePlan
from ringmaster.settings import Settings

SETTING = "RINGMASTER_IDENTITY_POLICY"


def rings(plan: ReleasePlan) -> list[str]:
    """The rings of ``plan`` whose approver must not be the submitter."""
    return [ring.name for ring in plan.rings if ring.approval.four_eyes]


def warning(plan: ReleasePlan, settings: Settings | None = None) -> str:
    """The warning due for ``plan`` under ``settings`` (read from the environment when None); empty if none.

    Raises ``ConfigError`` naming the file when the configured identity policy is invalid.
    """
    named = rings(plan)
    if not named:
        return ""
    which = f"ring {named[0]} requires" if len(named) == 1 else f"rings {', '.join(named)} require"

    def unknown(why: str) -> str:
        return f"warning: {which} four eyes, but {why}: cannot tell whether the worker verifies who approves"

    if settings is None:
        try:
            settings = Settings()
        except ValidationError as err:  # another command's business; this one only looks
            first = err.errors()[0]
            return unknown(f"the settings are invalid ({_variable(first['loc'])}: {first['msg']})")
    path = settings.identity_policy
    if path is None:
        why = f"{SETTING} is not set, so a worker with these settings runs identity mode trusted"
    elif not path.exists():
        return unknown(f"{SETTING} names {path}, which does not exist here")
    elif loading.load_identity_policy(path).mode == "trusted":
        why = f"{path} sets identity mode trusted"
    else:
        return ""
    return (
        f"warning: {which} four eyes, but {why}: the approver's identity is then the client's word "
        "(--by), not verified, and anyone can approve as anyone"
    )


def _variable(loc: tuple[int | str, ...]) -> str:
    """The environment variable of a settings field (``RINGMASTER_IDENTITY_POLICY``)."""
    return "RINGMASTER_" + "_".join(str(part) for part in loc).upper()
