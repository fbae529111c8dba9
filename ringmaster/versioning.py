"""Worker Versioning: which build a worker is, and the deployment's versions as an operator sees them.

A worker is version ``<deployment_name>.<build_id>`` of a Temporal worker deployment
(``Settings.worker_versioning``, ``deployment_name``, ``build_id``; the build id defaults to
``<package version>-<commit>``, :func:`activities.build.build_id`). Versioned, its workflows are
:data:`BEHAVIOUR` (auto-upgrade: each run moves to the deployment's current version at its next
workflow task, so changes reach running releases only through patches, and ``ringmaster replay``
checks them before a deploy); an operator may pin one run to its build with a versioning override.
``docs/design.md``, "Upgrading the worker", says why, and why the choice is the worker's and not
each workflow type's. With versioning off the worker still stamps its build id on every workflow
task it completes, so each history says which build ran it (``ringmaster patches`` reads it).

The operator side (``ringmaster deployment``): make a build the current version once its workers
poll, and tell when an old version is drained (no open run pinned to it) so its workers can go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from temporalio.api.deployment.v1 import WorkerDeploymentVersion as VersionProto
from temporalio.api.enums.v1 import VersionDrainageStatus, WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentVersionRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import WorkerDeploymentConfig

from activities import build

if TYPE_CHECKING:
    from temporalio.client import Client

    from ringmaster.settings import Settings

BEHAVIOUR = VersioningBehavior.AUTO_UPGRADE
"""Every workflow type's behaviour on a versioned worker (the worker's default; no type declares its
own: a ``versioning_behavior`` on ``@workflow.defn`` makes Temporal refuse every workflow task of an
unversioned worker, the sandbox's and the tests' among them). Releases last days: pinned, each
would keep its build's workers for its whole life, and the service lanes and the freeze registry,
which live on through continue-as-new, would keep theirs for ever (and a pinned lane would start
its next releases on its old build). Auto-upgrade moves them all; patches keep them deterministic."""

OPEN_RUNS_LISTED = 20
"""Open runs pinned to a version that :func:`describe` names (it counts them all)."""


class VersioningMisconfigured(ValueError):
    """The settings cannot make a versioned worker (the message names the setting)."""


def build_id(settings: Settings) -> str:
    """This worker's build id: ``RINGMASTER_BUILD_ID``, else ``<version>-<commit>``."""
    return settings.build_id or build.build_id()


def version(settings: Settings) -> WorkerDeploymentVersion:
    """This worker's version of the deployment.

    Raises VersioningMisconfigured when versioning is on and the commit is unknown: two different
    builds would share one id, and a release pinned to it could land on either.
    """
    found = build_id(settings)
    if settings.worker_versioning and found.endswith("-unknown"):
        raise VersioningMisconfigured(
            f"RINGMASTER_WORKER_VERSIONING is on but the build id is {found!r}: set RINGMASTER_BUILD_ID, "
            f"or {build.COMMIT_ENV} to the commit the image was built from"
        )
    return WorkerDeploymentVersion(deployment_name=settings.deployment_name, build_id=found)


def deployment_config(settings: Settings) -> WorkerDeploymentConfig:
    """The SDK's deployment options for every worker of the process (versioned or only stamped)."""
    if not settings.worker_versioning:
        return WorkerDeploymentConfig(version=version(settings), use_worker_versioning=False)
    return WorkerDeploymentConfig(
        version=version(settings), use_worker_versioning=True, default_versioning_behavior=BEHAVIOUR
    )


def search_value(deployment: str, build: str) -> str:
    """How visibility writes a version (``TemporalWorkerDeploymentVersion``): ``<deployment>:<build>``."""
    return f"{deployment}:{build}"


def pinned_query(deployment: str, build: str) -> str:
    """Visibility query: the open runs pinned to the version."""
    return (
        f"TemporalWorkerDeploymentVersion = '{search_value(deployment, build)}' "
        "AND TemporalWorkflowVersioningBehavior = 'Pinned' AND ExecutionStatus = 'Running'"
    )


@dataclass
class VersionReport:
    """One version of the deployment: is it routed to, and does any open run still need it."""

    deployment: str
    build_id: str
    status: str
    """``current``, ``ramping``, ``draining``, ``drained``, ``inactive`` (never current), or ``unknown``."""
    drainage: str
    """Temporal's own drainage check (refreshed every few minutes): ``draining``, ``drained`` or ``-``."""
    open_pinned: int
    """Open runs pinned to it, from visibility."""
    open_runs: list[dict[str, str]] = field(default_factory=list)
    """The first :data:`OPEN_RUNS_LISTED` of them: workflow id, run id, type."""

    @property
    def drained(self) -> bool:
        """Safe to stop its workers: not routed to, Temporal agrees, and no open run is pinned to it."""
        return self.status in ("drained", "inactive") and self.open_pinned == 0

    def as_json(self) -> dict[str, object]:
        """The documented JSON of ``ringmaster deployment drained``."""
        return {
            "deployment": self.deployment,
            "buildId": self.build_id,
            "status": self.status,
            "drainage": self.drainage,
            "openPinned": self.open_pinned,
            "openRuns": self.open_runs,
            "drained": self.drained,
        }


def _name(enum_name: str, prefix: str) -> str:
    return enum_name.removeprefix(prefix).lower() or "unknown"


async def describe(client: Client, deployment: str, build: str) -> VersionReport:
    """The version as Temporal describes it, and the open runs pinned to it (RPCError NOT_FOUND when
    the deployment has no such version)."""
    described = await client.workflow_service.describe_worker_deployment_version(
        DescribeWorkerDeploymentVersionRequest(
            namespace=client.namespace,
            deployment_version=VersionProto(deployment_name=deployment, build_id=build),
        )
    )
    info = described.worker_deployment_version_info
    status = _name(
        WorkerDeploymentVersionStatus.Name(info.status), "WORKER_DEPLOYMENT_VERSION_STATUS_"
    ).replace("unspecified", "unknown")
    drainage = "-"
    if info.HasField("drainage_info") and info.drainage_info.status:
        drainage = _name(VersionDrainageStatus.Name(info.drainage_info.status), "VERSION_DRAINAGE_STATUS_")
    query = pinned_query(deployment, build)
    counted = await client.count_workflows(query)
    runs = [
        {"workflowId": w.id, "runId": w.run_id, "type": w.workflow_type}
        async for w in client.list_workflows(query, limit=OPEN_RUNS_LISTED)
    ]
    return VersionReport(deployment, build, status, drainage, counted.count, runs)


async def set_current(client: Client, deployment: str, build: str, identity: str) -> str:
    """Make the version current: new releases start on it, auto-upgrade runs move to it. Returns the
    previous current build id (empty when it was unversioned). Temporal refuses (FAILED_PRECONDITION)
    while no worker of the version polls, so a version is never made current before it runs."""
    done = await client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=client.namespace, deployment_name=deployment, build_id=build, identity=identity
        )
    )
    previous = done.previous_deployment_version
    return previous.build_id if previous.deployment_name else ""
