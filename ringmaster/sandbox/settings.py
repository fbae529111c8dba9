"""What a user can tune about the sandbox: ``DIR/sandbox.yaml`` (or ``--config FILE``).

Example::

    controller:
      podReadySeconds: 1          # a new pod is ready one second after it is created
      progressDeadlineScale: 0.05 # 600s deadlines expire after 30s
      neverReadyImages: ["*:crashloop", "registry.eu.example.com/api:v3-broken"]
    clusters:
      euc1-prod: {nodeRegion: us-east-1}   # its nodes claim to be in the US: the location rule must deny
    startupTimeoutSeconds: 30

Faults are not configured here: they are set at runtime through the emulator's admin endpoint.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from ringmaster.sandbox.apiserver.config import ControllerSettings

FILE_NAME = "sandbox.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class ClusterOverride(_Model):
    """Per-cluster settings."""

    node_region: str | None = None
    """The region the cluster's nodes report instead of the fleet's (to test the location rule)."""
    nodes: int | None = Field(default=None, ge=0, le=50)
    """How many nodes the cluster has (3 by default)."""


class SandboxSettings(_Model):
    """The tunable parts of ``ringmaster sandbox up``."""

    controller: ControllerSettings = Field(default_factory=ControllerSettings)
    clusters: dict[str, ClusterOverride] = Field(default_factory=dict)
    startup_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    """How long ``up`` waits for each process to be ready, in seconds."""


class SettingsError(Exception):
    """The settings file cannot be used; the message names the file and the problem."""


def load(path: Path | None, directory: Path) -> SandboxSettings:
    """Settings from ``path``, else from ``DIR/sandbox.yaml`` when present, else the defaults."""
    source = path if path is not None else directory / FILE_NAME
    if path is None and not source.exists():
        return SandboxSettings()
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
        return SandboxSettings.model_validate(raw or {})
    except OSError as exc:
        raise SettingsError(f"{source}: cannot read the file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{source}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}" for e in exc.errors()
        )
        raise SettingsError(f"{source}: {problems}") from None
