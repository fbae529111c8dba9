"""``ringmaster freeze``, ``unfreeze`` and ``freezes``: stop the line, lift it, and list what is frozen.

A freeze has one scope (``--all``, ``--service S`` or ``--region R``) and a reason. It is an update of
the freeze registry workflow (:mod:`workflows.freezes`), sent with update-with-start so the first
freeze starts the registry, and proved like any control (:mod:`ringmaster.cli._proof`, actions
``freeze`` and ``unfreeze``): the registry records the verified principal, not ``--by``. Exit codes
(:mod:`ringmaster.exitcodes`): 0 done; 2 a scope that is not exactly one of the three, a scope
already frozen (freeze) or not frozen (unfreeze), or a request the worker refuses (identity,
authorization); 3 Temporal unreachable.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from policies import freeze as scopes
from policies.freeze import Freeze, Scope
from ringmaster.cli import _proof
from ringmaster.cli._proof import SignOpt
from ringmaster.cli.options import ByOpt, Output, OutputOpt
from ringmaster.exitcodes import ExitCode

if TYPE_CHECKING:
    from temporalio.client import Client

    from ringmaster.cli import _client
    from ringmaster.settings import Settings
    from workflows.models import FreezeRequest, FreezeResult, UnfreezeRequest

AllOpt = Annotated[bool, typer.Option("--all", help="Every release of every service.")]
ServiceOpt = Annotated[str | None, typer.Option("--service", help="Every release of this service.")]
RegionOpt = Annotated[
    str | None, typer.Option("--region", help="Every release that deploys to this region (fleet name).")
]


def freeze(
    reason: Annotated[str, typer.Option("--reason", help="Why; shown on every release it holds.")],
    all_: AllOpt = False,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    by: ByOpt = None,
    sign_with: SignOpt = None,
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """Stop the line: hold every running release in scope before its next step and refuse new ones."""
    from ringmaster.cli import _client  # noqa: PLC0415 - see _client
    from workflows.models import FreezeRequest  # noqa: PLC0415

    async def body(settings: Settings) -> _client.Outcome:
        scope, target = _scope(all_, service, region)
        request = FreezeRequest(
            scope=scope, target=target, reason=reason, by=_client.operator(by), identity=_client.identity()
        )
        result = await _send(settings, request, sign_with, reason)
        return ExitCode.OK, _payload("freeze", result), result.message

    _client.run(output, body)


def unfreeze(
    all_: AllOpt = False,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    by: ByOpt = None,
    sign_with: SignOpt = None,
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """Lift the freeze of one scope: the releases it held go on from where they stopped."""
    from ringmaster.cli import _client  # noqa: PLC0415 - see _client
    from workflows.models import UnfreezeRequest  # noqa: PLC0415

    async def body(settings: Settings) -> _client.Outcome:
        scope, target = _scope(all_, service, region)
        request = UnfreezeRequest(
            scope=scope, target=target, by=_client.operator(by), identity=_client.identity()
        )
        result = await _send(settings, request, sign_with, "")
        return ExitCode.OK, _payload("unfreeze", result), _text(result.message, result.freezes)

    _client.run(output, body)


def freezes(output: OutputOpt = Output.TEXT) -> NoReturn:
    """List the freezes in force: scope, reason, who and since when."""
    from ringmaster.cli import _client  # noqa: PLC0415 - see _client
    from workflows.freezes import FreezeRegistryWorkflow, registry_id  # noqa: PLC0415

    async def body(settings: Settings) -> _client.Outcome:
        from temporalio.service import RPCError, RPCStatusCode  # noqa: PLC0415 - see _client

        client = await _client.connect(settings)
        handle = client.get_workflow_handle(registry_id(settings.task_queue))
        try:
            found = (await handle.query(FreezeRegistryWorkflow.freezes)).freezes
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                await _client.call("freezes", _raise(err))
            found = []
        payload = {"freezes": [f.model_dump(mode="json") for f in found]}
        return ExitCode.OK, payload, _text("", found) or "nothing is frozen"

    _client.run(output, body)


COMMANDS = (freeze, unfreeze, freezes)
"""The commands of this module, as the CLI registers them."""


async def _raise(err: Exception) -> None:
    raise err


def _scope(all_: bool, service: str | None, region: str | None) -> tuple[Scope, str]:
    """The one scope the options name, or exit 2."""
    from ringmaster.cli._client import Stop  # noqa: PLC0415 - see _client

    named: list[tuple[Scope, str]] = [("all", "")] if all_ else []
    named += [("service", service)] if service else []
    named += [("region", region)] if region else []
    if len(named) != 1:
        raise Stop(ExitCode.INVALID, "name exactly one scope: --all, --service SERVICE or --region REGION")
    return named[0]


async def _send(
    settings: Settings, request: FreezeRequest | UnfreezeRequest, sign_with: Path | None, reason: str
) -> FreezeResult:
    """The request, proved, as an update-with-start of the freeze registry."""
    from temporalio.client import WithStartWorkflowOperation  # noqa: PLC0415 - see _client
    from temporalio.common import WorkflowIDConflictPolicy  # noqa: PLC0415

    from ringmaster.cli import _client  # noqa: PLC0415
    from workflows.freezes import FreezeRegistryWorkflow, registry_id  # noqa: PLC0415
    from workflows.models import FreezeRegistryState, FreezeRequest  # noqa: PLC0415

    client: Client = await _client.connect(settings)
    wid = registry_id(settings.task_queue)
    name: scopes.Action = "freeze" if isinstance(request, FreezeRequest) else "unfreeze"
    said = _proof.statement(name, wid, cluster=scopes.key(request.scope, request.target), reason=reason)
    request = request.model_copy(update={"proof": _proof.proved(said, sign_with)})
    start = WithStartWorkflowOperation(
        FreezeRegistryWorkflow.run,
        FreezeRegistryState(),
        id=wid,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=settings.task_queue,
        static_summary="ringmaster freezes: stop the line",
    )
    update: Any = FreezeRegistryWorkflow.freeze if name == "freeze" else FreezeRegistryWorkflow.unfreeze
    result: FreezeResult = await _client.call(
        name, client.execute_update_with_start_workflow(update, request, start_workflow_operation=start)
    )
    return result


def _payload(action: str, result: FreezeResult) -> dict[str, Any]:
    return {
        "action": action,
        "message": result.message,
        "freezes": [f.model_dump(mode="json") for f in result.freezes],
    }


def _text(message: str, found: list[Freeze]) -> str:
    lines = [message] if message else []
    lines += [f.describe() for f in found]
    return "\n".join(lines)
