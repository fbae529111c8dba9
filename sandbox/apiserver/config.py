"""The emulator's configuration: which clusters to serve, what to seed in them, how fast they move.

The sandbox writes one :class:`EmulatorConfig` as JSON for the emulator process
(``python -m sandbox.apiserver --config FILE``); tests build one in code. Field names
are camelCase on the wire, like the rest of ringmaster's user-facing files.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class ControllerSettings(_Model):
    """How the emulated Deployment controller moves status toward spec."""

    tick_seconds: float = Field(default=0.2, gt=0, le=10)
    """How often the controller looks at every Deployment, in seconds; the granularity of progress."""
    pod_ready_seconds: float = Field(default=2.0, ge=0)
    """Seconds a new pod takes to become ready; with surge and unavailability limits this sets how
    long a rollout takes (a 10-replica rolling update of 25%/25% takes about 4-5 times this)."""
    progress_deadline_scale: float = Field(default=1.0, gt=0)
    """Multiplies every Deployment's ``spec.progressDeadlineSeconds``, so a sandbox or a test can
    reach ``ProgressDeadlineExceeded`` in seconds without changing the manifests (0.01: 600s -> 6s)."""
    never_ready_images: list[str] = Field(default_factory=lambda: ["*:crashloop", "*:never-ready"])
    """Shell-style patterns (``fnmatch``) of images whose pods never become ready: a crash loop."""


class ClusterSpec(_Model):
    """One emulated cluster."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    region: str = "local"
    """The region the cluster is declared in."""
    node_region: str | None = None
    """The region its nodes report (``topology.kubernetes.io/region``); set it to make the
    cluster lie about where it runs. Defaults to ``region``."""
    nodes: int = Field(default=3, ge=0, le=50)
    objects: list[dict[str, Any]] = Field(default_factory=list)
    """Manifests created at start (as by ``kubectl create``), fully rolled out from the beginning."""

    @property
    def reported_region(self) -> str:
        """The region the nodes are labelled with."""
        return self.node_region or self.region


class EmulatorConfig(_Model):
    """Everything the emulator process needs."""

    clusters: list[ClusterSpec] = Field(default_factory=list)
    controller: ControllerSettings = Field(default_factory=ControllerSettings)
    watch_history: int = Field(default=5000, ge=10)
    """Events kept per cluster for watches to resume from; older versions answer 410 Gone."""
    request_log_size: int = Field(default=10000, ge=0)
    """Requests kept per cluster in the request log."""
    change_log_size: int = Field(default=200_000, ge=0)
    """Content changes kept per cluster in the change log (the oldest are dropped, and counted)."""
    kubernetes_version: str = "v1.37.0"
    """The version ``/version`` reports."""
