"""Host names and the patterns a fleet's ``hosts`` table uses to place them in a jurisdiction.

A pattern is an exact host (``orders.db.eu.example.com``), a ``*.suffix`` wildcard that matches any
host ending in ``.suffix`` at any depth, an IP address, or a CIDR block. In-cluster names
(``*.svc``, ``*.svc.cluster.local``, single-label names, loopback addresses) never leave the cluster
that resolves them, so they belong to that cluster's jurisdiction rather than to any table row.

Residency decisions record hosts only: :func:`host_of` reduces a URL or ``host:port`` to its host, so
nothing that could carry a credential (``user:password@``, a query string, a path) reaches evidence.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_IN_CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")
IN_CLUSTER_RULE = "single-label names, *.svc, *.svc.cluster.local, *.cluster.local and loopback addresses"
"""How in-cluster names are recognised; part of the residency policy digest."""


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def normalise_host(text: str) -> str:
    """Lower-case ``text``, drop a trailing dot and IPv6 brackets; raise ValueError if it is no host."""
    host = text.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if _ip(host) is not None:
        return str(_ip(host))
    if not _HOSTNAME.fullmatch(host) or len(host) > 253:
        raise ValueError(f"{text!r} is not a host name or IP address")
    return host


def host_of(text: str) -> str:
    """The host in a URL, ``host:port`` or bare host; never the credentials, port, path or query.

    Raises ValueError when no host can be found.
    """
    candidate = text.strip()
    try:
        return normalise_host(candidate)  # a bare host or IP, including an unbracketed IPv6 address
    except ValueError:
        pass
    if "://" not in candidate:
        candidate = "//" + candidate
    try:
        host = urlsplit(candidate).hostname
    except ValueError:
        host = None
    if not host:
        raise ValueError("no host found in the given address")
    return normalise_host(host)


def is_in_cluster(host: str) -> bool:
    """True for names a pod resolves inside its own cluster, and for loopback addresses."""
    address = _ip(host)
    if address is not None:
        return address.is_loopback
    return "." not in host or host.endswith(_IN_CLUSTER_SUFFIXES)


@dataclass(frozen=True)
class HostPattern:
    """One parsed ``match`` of the hosts table."""

    text: str
    exact: str | None = None
    suffix: str | None = None
    network: IPNetwork | None = None

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        """Parse an exact host, ``*.suffix``, IP or CIDR; raise ValueError naming the accepted forms."""
        raw = text.strip().lower()
        if "/" in raw:
            try:
                return cls(text=raw, network=ipaddress.ip_network(raw, strict=False))
            except ValueError:
                raise ValueError(f"{text!r} is not a CIDR block such as 10.0.0.0/8") from None
        if raw.startswith("*."):
            try:
                suffix = normalise_host(raw[2:])
            except ValueError:
                raise ValueError(f"{text!r}: the part after '*.' must be a domain") from None
            return cls(text=raw, suffix=suffix)
        try:
            return cls(text=raw, exact=normalise_host(raw))
        except ValueError:
            raise ValueError(
                f"{text!r} is not an exact host, a '*.suffix' pattern, an IP address or a CIDR block"
            ) from None

    def matches(self, host: str) -> bool:
        """Whether the normalised ``host`` falls under this pattern."""
        if self.network is not None:
            address = _ip(host)
            return address is not None and address.version == self.network.version and address in self.network
        if self.suffix is not None:
            return _ip(host) is None and host.endswith("." + self.suffix)
        return host == self.exact

    @property
    def specificity(self) -> tuple[int, int]:
        """Sort key: exact matches beat CIDRs and suffixes; longer prefixes and suffixes beat shorter."""
        if self.exact is not None:
            return (2, 0)
        if self.network is not None:
            return (1, self.network.prefixlen)
        return (1, len(self.suffix or ""))


def most_specific(host: str, patterns: Iterable[tuple[HostPattern, str]]) -> str | None:
    """The value paired with the most specific pattern matching ``host``, or None if none does."""
    found = [(pattern.specificity, value) for pattern, value in patterns if pattern.matches(host)]
    if not found:
        return None
    return max(found, key=lambda item: item[0])[1]
