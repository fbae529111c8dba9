"""Live residency evidence: where the nodes say they are, and which hosts the workload is set up to reach.

Nodes: the ``topology.kubernetes.io/region`` label of every node; a node without it is reported as
``<unlabelled>``, which no declared region matches, so the location rule fails closed.

Workload: the Deployment's image, replicas and version (the ``ringmaster.dev/version`` label, else
the image tag), and the hosts in the env of every container and init container of its pod template:

- ``value``: read, with ``$(VAR)`` references expanded as the kubelet does;
- ``valueFrom.configMapKeyRef`` and ``envFrom.configMapRef``: the ConfigMap is read and resolved;
  a missing ConfigMap or key that is not ``optional`` is listed as not inspected;
- ``valueFrom.secretKeyRef`` and ``envFrom.secretRef``: never read; listed as not inspected by name
  (``env DB_URL from secret db (container api)``), as is a value expanding a Secret-backed variable;
- ``fieldRef`` and ``resourceFieldRef``: pod facts, not destinations; skipped.

Only hosts leave this module, never a value: from URLs (``postgres://u:p@db.eu.example.com:5432/x``,
``jdbc:postgresql://...``, several hosts in one authority), ``host:port`` and ``user:pw@host``
forms, IP addresses, and bare names that look like domain names (two or more labels ending in an
alphabetic label that is not a common file extension). The guess errs towards reporting a host:
an unknown host fails the residency rule closed, with the host named so it can be placed. Hosts are
read as :mod:`policies.hosts` reads them: ``postgres://878636280:5432/x`` is the IPv4 address
52.94.236.248. A URL whose host parsers read differently is listed as not inspected, with the reason.
Outside URLs a number alone (``878636280``, ``0x10``) is taken for a count, not an address.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from activities.kubernetes import workload
from activities.kubernetes.clients import CONFIG_MAP, NODE, ClusterApi
from policies import hosts as host_rules
from policies.plan import Workload
from policies.residency import LiveEvidence

REGION_LABEL = "topology.kubernetes.io/region"
UNLABELLED = "<unlabelled>"

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?P<authority>[^/\s?#'\";,]+(?:,[^/\s?#'\";,]+)*)")
_SEPARATORS = re.compile(r"[\s,;=|'\"()<>]+")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})")
_INVISIBLE = re.compile(r"[\t\r\n]+")
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FILE_SUFFIXES = frozenset(
    {"yaml", "yml", "json", "conf", "cfg", "ini", "txt", "log", "xml", "properties", "toml", "pem", "crt"}
    | {
        "cert",
        "key",
        "html",
        "htm",
        "js",
        "py",
        "sh",
        "jar",
        "so",
        "sock",
        "csv",
        "tmp",
        "lock",
        "pid",
        "env",
    }
)


@dataclass(frozen=True)
class Inspection:
    """Everything gathered about the workload in one cluster (hosts only, never values)."""

    node_regions: list[str]
    image: str
    replicas: int
    version: str
    env_hosts: list[str]
    uninspected: list[str]

    def evidence(self) -> LiveEvidence:
        """The part the residency rules judge."""
        return LiveEvidence(
            node_regions=self.node_regions,
            env_hosts=self.env_hosts,
            uninspected=self.uninspected,
            image=self.image,
            replicas=self.replicas,
            version=self.version,
        )


def inspect(api: ClusterApi, target: Workload) -> Inspection:
    """Gather node regions and the workload's facts and env hosts."""
    regions = [
        str(((node.get("metadata") or {}).get("labels") or {}).get(REGION_LABEL) or UNLABELLED)
        for node in api.list(NODE, None)
    ]
    live = workload.read(api, target)
    found = _EnvReader(api, target.namespace)
    pod = live.template.get("spec") or {}
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        found.read(container)
    return Inspection(
        node_regions=regions,
        image=live.image,
        replicas=live.replicas,
        version=live.version,
        env_hosts=list(dict.fromkeys(found.hosts)),
        uninspected=list(dict.fromkeys(found.uninspected)),
    )


@dataclass
class _EnvReader:
    api: ClusterApi
    namespace: str
    hosts: list[str] = field(default_factory=list)
    uninspected: list[str] = field(default_factory=list)
    _configmaps: dict[str, dict[str, str] | None] = field(default_factory=dict)

    def _configmap(self, name: str) -> dict[str, str] | None:
        if name not in self._configmaps:
            found = self.api.find(CONFIG_MAP, self.namespace, name)
            self._configmaps[name] = None if found is None else dict(found.get("data") or {})
        return self._configmaps[name]

    def read(self, container: dict[str, Any]) -> None:
        where = f"(container {container.get('name')})"
        values: dict[str, str] = {}
        secret: set[str] = set()
        for source in container.get("envFrom") or []:
            prefix = str(source.get("prefix", ""))
            if "secretRef" in source:
                self.uninspected.append(f"envFrom secret {source['secretRef'].get('name')} {where}")
            elif "configMapRef" in source:
                ref = source["configMapRef"]
                data = self._configmap(str(ref.get("name")))
                if data is None:
                    if not ref.get("optional"):
                        self.uninspected.append(f"envFrom configmap {ref.get('name')} (not found) {where}")
                    continue
                values.update({prefix + k: v for k, v in data.items()})
        for env in container.get("env") or []:
            name = str(env.get("name"))
            source = env.get("valueFrom") or {}
            if "value" in env:
                values[name] = self._expand(name, str(env["value"]), values, secret, where)
            elif "secretKeyRef" in source:
                secret.add(name)
                values.pop(name, None)
                self.uninspected.append(
                    f"env {name} from secret {source['secretKeyRef'].get('name')} {where}"
                )
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                data = self._configmap(str(ref.get("name")))
                value = None if data is None else data.get(str(ref.get("key")))
                if value is not None:
                    values[name] = value
                elif not ref.get("optional"):
                    missing = f"configmap {ref.get('name')} key {ref.get('key')} (not found)"
                    self.uninspected.append(f"env {name} from {missing} {where}")
        for name, value in values.items():
            found, refused = scan(value)
            self.hosts.extend(found)
            self.uninspected.extend(f"env {name} {where}: {reason}" for reason in refused)

    def _expand(self, name: str, value: str, values: dict[str, str], secret: set[str], where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            ref = match.group(1)
            if ref is None:
                return "$"
            if ref in secret:
                self.uninspected.append(f"env {name} uses $({ref}) from a secret {where}")
                return ""
            return values.get(ref, match.group(0))

        return _REFERENCE.sub(replace, value)


def hosts_in(text: str) -> list[str]:
    """The hosts a configuration value points at (an empty list when it names none)."""
    return scan(text)[0]


def scan(text: str) -> tuple[list[str], list[str]]:
    """The hosts a configuration value points at, and why any URL in it was refused (never the value).

    A URL is read by :func:`policies.hosts.host_of`, which refuses one that URL parsers read
    differently (``http://a.us.example.com\\@b.eu.example.com``): such a URL is reported, never
    guessed at, so the residency rule fails closed saying why.
    """
    found: list[str] = []
    refused: list[str] = []
    for match in _URL.finditer(text):
        if _hidden_continuation(text, match.end()):
            refused.append(
                "a URL goes on after a tab or line break, which some parsers drop: its host is ambiguous"
            )
            continue
        authority = match["authority"]
        hostlist = authority.rsplit("@", 1)[-1]
        if "," not in hostlist:
            _add(found, refused, match.group(0), "a URL")
            continue
        if "\\" in authority:
            refused.append("a URL of several hosts has a backslash, which parsers read differently")
            continue
        for part in hostlist.split(","):
            _add(found, refused, part, "a URL's host list")
    rest = _URL.sub(" ", text)
    for token in _SEPARATORS.split(rest):
        host = _token_host(token)
        if host is not None:
            try:
                found.append(host_rules.host_of(host))
            except ValueError:
                continue  # a token that only looked like a host
    return found, refused


def _hidden_continuation(text: str, end: int) -> bool:
    """Whether the URL ending at ``end`` goes on after tabs or line breaks, which WHATWG parsers and
    ``urllib.parse`` delete (``http://db\\t.us.example.com``, ``http://a.eu.example.com\\n@b.us``).

    A line break before an ordinary next line (``\\nuser=app``) is a separator, not a continuation.
    """
    gap = _INVISIBLE.match(text, end)
    if gap is None or gap.end() == len(text):
        return False
    following = text[gap.end()]
    return ("\t" in gap.group(0) and not following.isspace()) or following in "@.:\\[]"


def _add(found: list[str], refused: list[str], candidate: str, what: str) -> None:
    try:
        found.append(host_rules.host_of(candidate))
    except ValueError as exc:
        refused.append(f"{what} whose host cannot be read: {exc}")


def _strip_port(text: str) -> str:
    match = _HOST_PORT.fullmatch(text)
    return match["host"].strip("[]") if match else text.strip("[]")


def _token_host(token: str) -> str | None:
    token = token.strip().rstrip(".:")
    if not token or token.startswith(("/", ".", "-", "$")):
        return None
    if "@" in token:
        user, _, rest = token.rpartition("@")
        authority = rest.split("/", 1)[0]
        if ":" not in user and not _HOST_PORT.fullmatch(authority):
            return None  # an e-mail address, not a connection string
        return _strip_port(authority)
    authority = token.split("/", 1)[0]
    port = _HOST_PORT.fullmatch(authority)
    if port is not None:
        host = port["host"].strip("[]")
        return host if _is_ip(host, alone=False) or any(c.isalpha() for c in host) else None  # not "12:30"
    if _is_ip(authority, alone=True):
        return authority
    labels = authority.split(".")
    last = labels[-1].lower()
    if len(labels) >= 2 and last.isalpha() and len(last) >= 2 and last not in _FILE_SUFFIXES:
        return authority
    return None


def _is_ip(text: str, *, alone: bool) -> bool:
    """An IP address: IPv6, or IPv4 as ``inet_aton`` reads it in four parts, or (before a port, not
    ``alone``) one part above 255.

    Two or three numeric parts (``1.2.3``) read as versions, a number alone as a count or a port, and
    a small number before a colon (``12:30``) as a time, so none is taken for an address outside a URL.
    """
    try:
        host = host_rules.parse_host(text.strip("[]"))
    except ValueError:
        return False
    if not isinstance(host.address, ipaddress.IPv4Address):
        return host.address is not None
    parts = text.split(".")
    return len(parts) == 4 or (not alone and len(parts) == 1 and int(host.address) > 255)
