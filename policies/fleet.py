"""The fleet: regions (jurisdiction, time zone, pair, Prometheus, Unleash), clusters, and where hosts live.

A platform team writes one fleet file; every release plan is checked and scheduled against it.
Structural rules (types, unknown fields, time zones, host patterns) are enforced by the models;
rules that relate entries to each other (unique names, known regions, consistent pairs) are listed
by :meth:`Fleet.problems`, which the loader reports all at once with paths.
"""

from __future__ import annotations

import functools
from functools import cached_property
from importlib import resources
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from policies import _errors, hosts
from policies._model import Document, Model, Name, duplicates, index_by_name, lookup
from policies.flags import FlagServer
from policies.hosts import HostPattern  # by name: inside Fleet, `hosts` is the field

API_VERSION = "ringmaster.dev/v1"
_HTTP = ("http", "https")
_PLACEMENTS_KEPT = 10_000
"""How many hosts a fleet remembers the placement of (a long-running worker sees env hosts come and go)."""
REGULATED = "regulated"
"""The label marking a cluster regulated; its value is ``"true"`` or ``"false"``, nothing else."""


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA time zone names a region may use: those of the tz database the ``tzdata`` package ships.

    Not ``zoneinfo.available_timezones()``: that also lists the machine's own files, such as
    ``localtime``, whose meaning depends on where ringmaster runs.
    """
    names = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return frozenset(names) - {"Factory"}


class Region(Model):
    """A cloud region: the jurisdiction its data falls under, its IANA time zone, its Prometheus and
    (optionally) its Unleash."""

    name: Name
    jurisdiction: str = Field(min_length=1, max_length=64)
    timezone: str
    pair: Name | None = None
    """The region this one is paired with for disaster recovery; never deployed in the same wave."""
    prometheus: str
    """URL of the Prometheus that judges this region's clusters (queries stay in-region)."""
    flags: FlagServer | None = None
    """The region's Unleash (API URL, project, environment); none: no release may move a flag here."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # A set lookup, never ZoneInfo(value) on an unknown name: that would open files named by the
        # input (a directory, a path, the machine's own localtime).
        if value not in time_zones():
            raise PydanticCustomError(
                "timezone", "unknown time zone; use an IANA name such as Europe/Dublin or UTC"
            )
        return value

    @field_validator("prometheus")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            hosts.parse_url(value, schemes=_HTTP)  # its port too: a whole number from 1 to 65535
        except ValueError as exc:
            raise PydanticCustomError("url", "{reason}", {"reason": str(exc)}) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The region's time zone."""
        return ZoneInfo(self.timezone)

    @cached_property
    def prometheus_url(self) -> hosts.Url:
        """The Prometheus URL as parsed once: the telemetry rule judges its host, clients connect to it."""
        return hosts.parse_url(self.prometheus, schemes=_HTTP)

    @cached_property
    def prometheus_host(self) -> str:
        """The Prometheus host alone, safe for evidence and logs (no credentials, port or path)."""
        return self.prometheus_url.host.name


class Cluster(Model):
    """A Kubernetes cluster pinned to one region; ``labels`` feed ring selectors (``regulated: "true"``)."""

    name: Name
    region: Name
    kube_context: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)

    @property
    def regulated(self) -> bool:
        """Labelled ``regulated: "true"``: entered only after validation elsewhere in its jurisdiction."""
        return self.labels.get(REGULATED) == "true"


class HostRule(Model):
    """Hosts matching ``match`` (exact, ``*.suffix``, IP or CIDR) live in ``jurisdiction``."""

    match: str
    jurisdiction: str = Field(min_length=1, max_length=64)

    @field_validator("match")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            return hosts.HostPattern.parse(value).text
        except ValueError as exc:
            raise PydanticCustomError("host_pattern", "{reason}", {"reason": str(exc)}) from None

    @property
    def pattern(self) -> hosts.HostPattern:
        """The parsed pattern."""
        return hosts.HostPattern.parse(self.match)


class Fleet(Document):
    """Every region and cluster ringmaster may deploy to, and the jurisdiction of every known host."""

    api_version: Literal["ringmaster.dev/v1"]
    kind: Literal["Fleet"]
    regions: list[Region] = Field(min_length=1)
    clusters: list[Cluster] = Field(min_length=1)
    hosts: list[HostRule] = Field(default_factory=list)

    def problems(self) -> list[tuple[str, str]]:
        """Rules relating entries to each other, as ``(path, message)`` pairs; empty when consistent."""
        found: list[tuple[str, str]] = []
        found += duplicates("regions", "name", [r.name for r in self.regions])
        found += duplicates("clusters", "name", [c.name for c in self.clusters])
        found += duplicates("clusters", "kubeContext", [c.kube_context for c in self.clusters])
        names = {r.name: r for r in self.regions}
        known = list(names)
        suggest = _errors.Suggestions()
        for i, region in enumerate(self.regions):
            if region.pair is None:
                continue
            partner = names.get(region.pair)
            if partner is None:
                found.append(
                    (
                        f"regions[{i}].pair",
                        f"unknown region {_errors.quote(region.pair)}{suggest(region.pair, known)}",
                    )
                )
            elif partner.name == region.name:
                found.append((f"regions[{i}].pair", "a region cannot be paired with itself"))
            elif partner.pair not in (None, region.name):
                found.append(
                    (
                        f"regions[{i}].pair",
                        f"{_errors.quote(region.pair)} is paired with {_errors.quote(partner.pair)}; "
                        "pairs must agree",
                    )
                )
        for i, cluster in enumerate(self.clusters):
            if cluster.region not in names:
                message = f"unknown region {_errors.quote(cluster.region)}{suggest(cluster.region, known)}"
                found.append((f"clusters[{i}].region", message))
            if cluster.labels.get(REGULATED, "true") not in ("true", "false"):
                # "True" or "yes" read as not regulated would silently drop the ordering rule.
                found.append((f"clusters[{i}].labels.{REGULATED}", 'must be "true" or "false" (lower case)'))
        found += self._host_problems()
        return found

    def _host_problems(self) -> list[tuple[str, str]]:
        """Host rows for a jurisdiction no region has, and rows that overlap (compared in canonical
        form) while naming different jurisdictions: the verdict would depend on the rows' order.
        """
        found: list[tuple[str, str]] = []
        known = self.jurisdictions()
        by_text: dict[str, int] = {}
        addresses: list[int] = []
        for i, rule in enumerate(self.hosts):
            if rule.jurisdiction not in known:
                message = f"no region is in jurisdiction {hosts.shown(rule.jurisdiction)}; known: "
                found.append((f"hosts[{i}].jurisdiction", message + ", ".join(known)))
            pattern = rule.pattern
            earlier = [by_text.setdefault(pattern.text, i)]
            if pattern.network is not None:
                earlier += [j for j in addresses if pattern.overlaps(self.hosts[j].pattern)]
                addresses.append(i)
            for j in dict.fromkeys(earlier):
                other = self.hosts[j]
                if j != i and other.jurisdiction != rule.jurisdiction:
                    found.append(
                        (
                            f"hosts[{i}].match",
                            f"{hosts.shown(rule.match)} ({rule.jurisdiction}) overlaps hosts[{j}] "
                            f"{hosts.shown(other.match)} ({other.jurisdiction}); rows of different "
                            "jurisdictions must not share a host or an address",
                        )
                    )
        return found

    @cached_property
    def _regions_by_name(self) -> dict[str, Region]:
        return index_by_name(self.regions)

    @cached_property
    def _clusters_by_name(self) -> dict[str, Cluster]:
        return index_by_name(self.clusters)

    @cached_property
    def _neighbours(self) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {name: set() for name in self._regions_by_name}
        for name, region in self._regions_by_name.items():
            if region.pair is not None and region.pair != name and region.pair in found:
                found[name].add(region.pair)
                found[region.pair].add(name)
        return {name: frozenset(partners) for name, partners in found.items()}

    def region(self, name: str) -> Region:
        """The region called ``name``; KeyError if the fleet has none."""
        return lookup(self._regions_by_name, name, "region")

    def cluster(self, name: str) -> Cluster:
        """The cluster called ``name``; KeyError if the fleet has none."""
        return lookup(self._clusters_by_name, name, "cluster")

    def region_of(self, cluster_name: str) -> Region:
        """The region a cluster is pinned to."""
        return self.region(self.cluster(cluster_name).region)

    def jurisdictions(self) -> list[str]:
        """Every jurisdiction some region is in, in first-seen order."""
        return list(dict.fromkeys(r.jurisdiction for r in self.regions))

    def paired(self, a: str, b: str) -> bool:
        """Whether regions ``a`` and ``b`` are a pair (declared on either side)."""
        return a != b and (self.region(a).pair == b or self.region(b).pair == a)

    def partners(self, name: str) -> frozenset[str]:
        """The regions paired with region ``name`` (declared on either side), itself never included."""
        self.region(name)
        return self._neighbours[name]

    def select(self, selector: dict[str, str]) -> list[Cluster]:
        """The clusters carrying every label of ``selector``, in fleet order."""
        return [c for c in self.clusters if all(c.labels.get(k) == v for k, v in selector.items())]

    def jurisdiction_of_host(self, host: str, *, cluster: str | None = None) -> str | None:
        """The jurisdiction ``host`` lives in, or None when unknown (callers must fail closed).

        In-cluster names resolve to the jurisdiction of ``cluster`` when one is given, and are
        unknown otherwise. Among table rows the most specific match wins (exact, longest suffix or
        prefix). ``host`` may also be a URL or ``host:port``; only its host is considered.
        """
        placed = self._placements.get(host)
        if placed is None:
            placed = self._place(host)
            if len(self._placements) >= _PLACEMENTS_KEPT:
                self._placements.clear()
            self._placements[host] = placed
        found, in_cluster = placed
        if in_cluster:
            return self.region_of(cluster).jurisdiction if cluster is not None else None
        return found

    def _place(self, host: str) -> tuple[str | None, bool]:
        """The table's jurisdiction for ``host`` and whether it is an in-cluster name."""
        try:
            name = hosts.host_of(host)
        except ValueError:
            return None, False
        if hosts.is_in_cluster(name):
            return None, True
        return hosts.most_specific(name, self._host_table), False

    @cached_property
    def _host_table(self) -> list[tuple[HostPattern, str]]:
        return [(rule.pattern, rule.jurisdiction) for rule in self.hosts]

    @cached_property
    def _placements(self) -> dict[str, tuple[str | None, bool]]:
        """What :meth:`_place` found, by host as given: a plan asks about the same few hosts per cluster."""
        return {}
