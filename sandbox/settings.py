"""What a user can tune about the sandbox: ``DIR/sandbox.yaml`` (or ``--config FILE``).

Example::

    controller:
      podReadySeconds: 1          # a new pod is ready one second after it is created
      progressDeadlineScale: 0.05 # 600s deadlines expire after 30s
      neverReadyImages: ["*:crashloop", "registry.eu.example.com/api:v3-broken"]
    clusters:
      euc1-prod: {nodeRegion: us-east-1}   # its nodes claim to be in the US: the location rule must deny
    startupTimeoutSeconds: 30
    traffic:
      requestsPerSecond: 100      # per Service (or HTTPRoute) receiving traffic, in every cluster
      profiles:                   # first match wins; unset fields keep the default behaviour
        - {match: "*-bad", errorRate: 0.08, latencyFactor: 3}
        - {match: "*-cheap", checkoutConversion: 0.2}
        - {match: "v7", clusters: ["usw2-*"], errorRate: 0.2}  # v7: good everywhere, bad in usw2
      features:                   # the flags each Service's requests evaluate with the Unleash SDK
        - {flag: checkout-v2, services: [api]}
        - {flag: checkout-v3-bad, services: [api]}
      featureProfiles:            # how a request behaves where its flag is on (else: as its version)
        - {match: "*-bad", errorRate: 0.08, latencyFactor: 3}
      flagRefreshSeconds: 1       # the SDK's refresh_interval (its default, 15 s, would hide a rollback)
    prometheus:
      scrapeIntervalSeconds: 1
    unleash:
      enabled: true               # false: no PostgreSQL and no Unleash servers
    identity:
      mode: verified              # trusted: the worker takes the client's word (unsigned scripts)
    services:
      count: 5                    # api, svc-001 ... svc-004 in every cluster, each in its own namespace
      hpa: true                   # each with an autoscaling/v2 HorizontalPodAutoscaler

Faults are not configured here: they are set at runtime through the emulator's admin endpoint.
The traffic profiles can be changed at runtime too, through the simulator's ``/profiles`` endpoint
(:mod:`sandbox.traffic`, :class:`sandbox.trafficclient.TrafficClient`).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from sandbox.apiserver.config import ControllerSettings

FILE_NAME = "sandbox.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class ClusterOverride(_Model):
    """Per-cluster settings."""

    node_region: str | None = None
    """The region the cluster's nodes report instead of the fleet's (to test the location rule)."""
    nodes: int | None = Field(default=None, ge=0, le=50)
    """How many nodes the cluster has (3 by default)."""


class Behaviour(_Model):
    """How requests served by one version behave in the traffic simulator."""

    error_rate: float = Field(default=0.001, ge=0, le=1)
    """Share of requests answered 500."""
    latency_median_seconds: float = Field(default=0.05, gt=0)
    """Median request duration; durations are log-normal around it."""
    latency_sigma: float = Field(default=0.6, ge=0, le=3)
    """Spread of the log-normal (0.6: p99 about 4x the median)."""
    latency_factor: float = Field(default=1.0, gt=0)
    """Multiplies every duration (3: three times slower)."""
    checkout_share: float = Field(default=0.2, ge=0, le=1)
    """Share of requests that start a checkout."""
    checkout_conversion: float = Field(default=0.6, ge=0, le=1)
    """Share of started checkouts that complete (a failed request never completes one)."""


class VersionProfile(_Model):
    """Behaviour of versions matching ``match`` (a shell-style pattern, ``*-bad``) in the clusters
    matching ``clusters``; unset fields inherit. In ``featureProfiles``, ``match`` is a flag's name."""

    match: str
    clusters: list[str] | None = None
    """Shell-style patterns of the cluster names the profile applies in (``usw2-*``), so one version
    can be good in some clusters and bad in others; None: every cluster."""
    error_rate: float | None = Field(default=None, ge=0, le=1)
    latency_median_seconds: float | None = Field(default=None, gt=0)
    latency_sigma: float | None = Field(default=None, ge=0, le=3)
    latency_factor: float | None = Field(default=None, gt=0)
    checkout_share: float | None = Field(default=None, ge=0, le=1)
    checkout_conversion: float | None = Field(default=None, ge=0, le=1)

    def applies(self, version: str, cluster: str) -> bool:
        """Whether the profile is for ``version`` serving in ``cluster``."""
        if not fnmatch.fnmatchcase(version, self.match):
            return False
        return self.clusters is None or any(fnmatch.fnmatchcase(cluster, c) for c in self.clusters)

    def apply(self, behaviour: Behaviour) -> Behaviour:
        """``behaviour`` with the fields this profile sets."""
        return behaviour.model_copy(update=self.model_dump(exclude={"match", "clusters"}, exclude_none=True))


class Profiles(_Model):
    """A list of profiles, first match wins: the body of the simulator's ``/profiles`` endpoint."""

    profiles: list[VersionProfile]


def _default_profiles() -> list[VersionProfile]:
    return [VersionProfile(match="*-bad", error_rate=0.08, latency_factor=3.0)]


class FeatureUse(_Model):
    """A feature flag the requests of some Services evaluate (:mod:`sandbox.trafficflags`)."""

    flag: str = Field(min_length=1)
    services: list[str] = Field(default_factory=lambda: ["*"])
    """Shell-style patterns of the Service names whose requests evaluate the flag. A Service evaluating
    several flags splits its requests equally among them, as if each flag guarded one endpoint: every
    request evaluates one flag and carries its name in the ``feature`` label."""

    def applies(self, service: str) -> bool:
        """Whether requests to Service ``service`` evaluate the flag."""
        return any(fnmatch.fnmatchcase(service, pattern) for pattern in self.services)


def _default_features() -> list[FeatureUse]:
    return [FeatureUse(flag=flag, services=["api"]) for flag in ("checkout-v2", "checkout-v3-bad")]


class TrafficSettings(_Model):
    """The traffic simulator: a steady request stream per Service, split across the versions serving it."""

    requests_per_second: float = Field(default=100.0, gt=0, le=5000)
    """Requests per second entering each Service (or HTTPRoute) of every cluster."""
    tick_seconds: float = Field(default=0.2, gt=0, le=5)
    """How often requests are generated, in seconds."""
    refresh_seconds: float = Field(default=0.5, gt=0, le=30)
    """How often the clusters' Deployments, Services and HTTPRoutes are read, in seconds."""
    default: Behaviour = Field(default_factory=Behaviour)
    """Behaviour of versions no profile matches."""
    profiles: list[VersionProfile] = Field(default_factory=_default_profiles)
    """Per-version (optionally per-cluster) overrides, first match wins (default: ``*-bad`` fails 8% and
    is 3x slower everywhere); replaceable at runtime through the simulator's ``/profiles``."""
    features: list[FeatureUse] = Field(default_factory=_default_features)
    """The flags each Service's requests evaluate (default: ``api`` evaluates the seeded demo flag
    ``checkout-v2`` and ``checkout-v3-bad``, the demo's bad feature); a Service no entry names, or a
    cluster no Unleash serves, evaluates none."""
    feature_profiles: list[VersionProfile] = Field(default_factory=_default_profiles)
    """How a request behaves where its flag is on: its version's behaviour with the first profile
    matching the flag's name (``match``) and the cluster applied (default: a flag ending in ``-bad``
    fails 8% and is 3x slower); where the flag is off, or no profile matches, as its version."""
    flag_refresh_seconds: int = Field(default=1, ge=1, le=60)
    """How often each Unleash SDK client fetches its flags (the SDK's ``refresh_interval``, whole
    seconds): a flag change reaches the traffic within about this. The SDK's default, 15 s, would
    dominate a rollback measured in seconds."""
    flag_evaluations: int = Field(default=20, ge=1, le=10_000)
    """Synthetic users evaluated with the SDK per cluster, flag and tick; each stream's flag-on count
    is drawn from the share of them who got the flag, so a tick's SDK calls stay bounded whatever the
    rate and the number of Services (:mod:`sandbox.trafficflags`)."""
    users: int = Field(default=10_000, ge=1, le=10_000_000)
    """Synthetic users per cluster; each request's ``userId`` is one of them, drawn at random, so a
    sticky rollout keeps each user on one side."""

    def behaviour(self, version: str, cluster: str) -> Behaviour:
        """How ``version`` behaves in ``cluster``: the default with the first matching profile's fields."""
        for profile in self.profiles:
            if profile.applies(version, cluster):
                return profile.apply(self.default)
        return self.default

    def feature_behaviour(self, flag: str, version: str, cluster: str) -> Behaviour:
        """How ``version`` behaves in ``cluster`` where ``flag`` is on (see ``feature_profiles``)."""
        base = self.behaviour(version, cluster)
        for profile in self.feature_profiles:
            if profile.applies(flag, cluster):
                return profile.apply(base)
        return base

    def flags_of(self, service: str) -> list[str]:
        """The flags requests to ``service`` evaluate, each once, in the order of ``features``."""
        return list(dict.fromkeys(f.flag for f in self.features if f.applies(service)))


class PrometheusSettings(_Model):
    """The sandbox's Prometheus servers, one per jurisdiction."""

    enabled: bool = True
    """False starts neither the simulator nor Prometheus (a sandbox for cluster work only)."""
    scrape_interval_seconds: float = Field(default=1.0, ge=0.2, le=60)
    """How often each Prometheus scrapes each cluster, in seconds."""
    addresses: dict[str, str] = Field(default_factory=lambda: {"EU": "127.0.0.2", "US": "127.0.0.3"})
    """Loopback address of each jurisdiction's Prometheus, so the fleet's hosts table can place it;
    jurisdictions not listed get 127.0.0.4, 127.0.0.5 and so on."""


class UnleashSettings(_Model):
    """The sandbox's feature-flag servers: one real Unleash per jurisdiction (:mod:`sandbox.unleash`)."""

    enabled: bool = True
    """False starts neither PostgreSQL nor Unleash (most tests need no feature flags)."""
    addresses: dict[str, str] = Field(default_factory=lambda: {"EU": "127.0.0.2", "US": "127.0.0.3"})
    """Loopback address of each jurisdiction's Unleash (the same as its Prometheus by default), so the
    fleet's hosts table places it; jurisdictions not listed get 127.0.0.4, 127.0.0.5 and so on."""
    postgres_bin: Path | None = None
    """The folder of PostgreSQL's ``initdb``, ``postgres`` and ``psql``; None: Debian's newest
    ``/usr/lib/postgresql/<major>/bin``, else PATH."""


class IdentitySettings(_Model):
    """How the sandbox's worker judges who asks (:mod:`sandbox.identity`)."""

    mode: Literal["verified", "trusted"] = "verified"
    """``verified``: every request needs a proof (``DIR/env`` signs with alice's key); ``trusted``:
    the worker takes the client's word, for scripts that send requests without one."""


class ServiceSettings(_Model):
    """The services seeded in every cluster (:func:`sandbox.seed.service_names`)."""

    count: int = Field(default=1, ge=1, le=1000)
    """How many services every cluster runs: ``api``, then ``svc-001`` ... (each in a namespace named
    like it); 1 is the demo's sandbox, more measure how the scheduler, traffic and Prometheus scale."""
    hpa: bool = False
    """Whether each service also has an autoscaling/v2 HorizontalPodAutoscaler (2 to 20 replicas at
    70% CPU), as production services often do (a release must leave it alone)."""
    route: bool = False
    """Whether each service also has an HTTPRoute sending all its traffic to it (for canaries by route)."""


class WorkerTuning(_Model):
    """Worker settings the sandbox's worker runs with, beside its own (``ringmaster.settings``)."""

    bake_partition_clusters: int | None = Field(default=None, ge=1)
    """``RINGMASTER_BAKE_PARTITION_CLUSTERS``: a ring bake of more clusters runs in bake workflows (the
    chaos runs set 1 so every bake takes that path); None keeps the worker's default."""

    def env(self) -> dict[str, str]:
        """The worker's environment variables for these settings."""
        if self.bake_partition_clusters is None:
            return {}
        return {"RINGMASTER_BAKE_PARTITION_CLUSTERS": str(self.bake_partition_clusters)}


class SandboxSettings(_Model):
    """The tunable parts of ``python -m sandbox up``."""

    controller: ControllerSettings = Field(default_factory=ControllerSettings)
    clusters: dict[str, ClusterOverride] = Field(default_factory=dict)
    startup_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    """How long ``up`` waits for each process to be ready, in seconds."""
    traffic: TrafficSettings = Field(default_factory=TrafficSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    unleash: UnleashSettings = Field(default_factory=UnleashSettings)
    services: ServiceSettings = Field(default_factory=ServiceSettings)
    worker: WorkerTuning = Field(default_factory=WorkerTuning)


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
        raise SettingsError(f"{source}: {problems(exc)}") from None


def problems(exc: ValidationError) -> str:
    """Every problem of a failed validation, each after the path of the field it is about."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}" for e in exc.errors())
