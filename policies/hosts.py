"""One host model: hosts and URLs parsed once into a canonical form, and the fleet's host patterns.

Every rule and every client reads a host through this module, so what a rule judged is what a client
connects to. :func:`parse_host` gives the canonical :class:`Host` (IPv4 in any ``inet_aton``
notation, IDNA, case and a trailing dot normalised; see :mod:`policies._hostnames` for the rules);
:func:`parse_url` gives a :class:`Url`, refused when ``urllib.parse``, urllib3 and a WHATWG parser
read its host differently (a backslash before ``@``, say). A URL ringmaster connects to (a region's
Prometheus) is connected through :meth:`Url.connect_form`, rebuilt from the parsed parts.

A pattern of the fleet's ``hosts`` table is an exact host (``orders.db.eu.example.com``), a
``*.suffix`` wildcard that matches any host ending in ``.suffix`` at any depth, an IP address, or a
CIDR block. In-cluster names (``*.svc``, ``*.svc.cluster.local``, single-label names, loopback
addresses) never leave the cluster that resolves them, so they belong to that cluster's jurisdiction
rather than to any table row.

Residency decisions record hosts only: :func:`host_of` reduces a URL or ``host:port`` to its host, so
nothing that could carry a credential (``user:password@``, a query string, a path) reaches evidence.
Error messages here never repeat the text they refuse.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit

from policies import _errors, _hostnames, _ports

IPAddress = _hostnames.IPAddress
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_IN_CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")
IN_CLUSTER_RULE = "single-label names, *.svc, *.svc.cluster.local, *.cluster.local and loopback addresses"
"""How in-cluster names are recognised; part of the residency policy digest."""
HOST_RULE = "inet_aton IPv4 (decimal, octal, hex, 1-4 parts), mapped IPv6 as IPv4, IDNA UTS 46, trailing dot"
"""How hosts are canonicalised; part of the residency policy digest."""
_CACHE = 4096
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


@dataclass(frozen=True)
class Host:
    """A host in canonical form: ``name`` is an IDNA A-label name or an IP address's text."""

    name: str
    address: IPAddress | None = None

    @property
    def url_form(self) -> str:
        """The host as a URL writes it (IPv6 in brackets)."""
        return f"[{self.name}]" if isinstance(self.address, ipaddress.IPv6Address) else self.name

    def __str__(self) -> str:
        return self.name


@lru_cache(maxsize=_CACHE)
def parse_host(text: str) -> Host:
    """The canonical host of a bare host or IP address; ValueError saying why it is none."""
    name, address = _hostnames.canonical(text.strip())
    return Host(name, address)


@dataclass(frozen=True)
class Url:
    """A URL parsed once: the host it names, and the parts needed to connect to exactly that host."""

    scheme: str
    host: Host
    port: int | None = None
    path: str = ""
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def connect_form(self) -> str:
        """The URL a client is given: rebuilt from the parsed parts, so it names ``host`` and no other."""
        userinfo = ""
        if self.username is not None:
            userinfo = quote(self.username, safe="")
            if self.password is not None:
                userinfo += ":" + quote(self.password, safe="")
            userinfo += "@"
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}://{userinfo}{self.host.url_form}{port}{self.path}"


def _disagreement_hint(text: str) -> str:
    if "\\" in text:
        return "a backslash is a path separator to some parsers and part of the credentials to others"
    if text.count("@") > 1:
        return "it has more than one '@'"
    return "write it as scheme://host[:port]/path"


@lru_cache(maxsize=_CACHE)
def parse_url(text: str, *, schemes: tuple[str, ...] | None = None) -> Url:
    """``text`` parsed as a URL with a host that every parser reads alike; ValueError saying why not.

    ``schemes`` (lower case) limits the schemes accepted; a URL without ``scheme://`` is refused.
    """
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError("a URL must not contain spaces or control characters")
    scheme, sep, _ = text.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme or not scheme[0].isalpha():
        form = " or ".join(s + "://" for s in schemes) if schemes else "scheme://"
        raise ValueError(f"not a URL: write {form}host[:port]/path")
    if schemes is not None and scheme not in schemes:
        raise ValueError(f"the scheme must be {' or '.join(s + '://' for s in schemes)}")
    try:
        split = urlsplit(text)
    except ValueError:
        raise ValueError("its host has brackets that enclose no IPv6 address") from None
    try:
        port = split.port
    except ValueError:
        raise ValueError(_ports.PORTS) from None
    if port == 0:
        raise ValueError(_ports.PORTS)
    read = _hostnames.readings(text)
    hosts = set(read.values())
    if hosts == {None}:
        raise ValueError("no host found in the URL")
    if len(hosts) > 1:
        missing = [name for name, host in read.items() if host is None]
        found = f" (none valid for {', '.join(missing)})" if missing else ""
        raise ValueError(
            "urllib.parse, urllib3 and a WHATWG URL parser read different hosts in it"
            f"{found}: {_disagreement_hint(text)}"
        )
    host = parse_host(split.hostname or "")
    username = None if split.username is None else unquote(split.username)
    password = None if split.password is None else unquote(split.password)
    path = split.path + (f"?{split.query}" if split.query else "")
    return Url(scheme, host, port, path, username, password)


def host_of(text: str) -> str:
    """The host in a URL, ``host:port``, ``user@host`` or bare host; never the credentials, port, path
    or query.

    Raises ValueError saying why, when no host can be found or parsers read the host differently.
    """
    candidate = text.strip()
    try:
        return parse_host(candidate).name  # a bare host or IP, including an unbracketed IPv6 address
    except ValueError as error:
        if not any(c in candidate for c in ":/@\\"):
            raise ValueError(str(error)) from None
    if "://" not in candidate:
        candidate = "tcp://" + candidate.removeprefix("//")
    return parse_url(candidate).host.name


def is_in_cluster(host: str) -> bool:
    """True for canonical names a pod resolves inside its own cluster, and for loopback addresses."""
    try:
        parsed = parse_host(host)
    except ValueError:
        return False
    if parsed.address is not None:
        return parsed.address.is_loopback
    return "." not in parsed.name or parsed.name.endswith(_IN_CLUSTER_SUFFIXES)


def shown(text: str) -> str:
    """``text`` quoted for a message, cut to a few dozen characters (as every message clips a value)."""
    return _errors.quote(text)


@dataclass(frozen=True)
class HostPattern:
    """One parsed ``match`` of the hosts table; ``text`` is its canonical form."""

    text: str
    exact: str | None = None
    suffix: str | None = None
    network: IPNetwork | None = None

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        """Parse an exact host, ``*.suffix``, IP or CIDR; raise ValueError naming the accepted forms."""
        return _parse_pattern(text)

    def matches(self, host: str) -> bool:
        """Whether the canonical ``host`` falls under this pattern."""
        if self.network is not None:
            address = _address(host)
            return address is not None and address.version == self.network.version and address in self.network
        if self.suffix is not None:
            return _address(host) is None and host.endswith("." + self.suffix)
        return host == self.exact

    def overlaps(self, other: HostPattern) -> bool:
        """Whether the two rows may not name different jurisdictions: the same canonical pattern, or
        address rows (IPs, CIDRs) whose ranges share an address. Names may nest (``*.db.eu.example.com``
        under ``*.eu.example.com``), as DNS delegates; address blocks are written disjoint.
        """
        if self.network is not None and other.network is not None:
            return self.network.version == other.network.version and self.network.overlaps(other.network)
        return self.text == other.text

    @property
    def specificity(self) -> tuple[int, int]:
        """Sort key: exact matches beat CIDRs and suffixes; longer prefixes and suffixes beat shorter."""
        if self.exact is not None:
            return (2, 0)
        if self.network is not None:
            return (1, self.network.prefixlen)
        return (1, len(self.suffix or ""))


@lru_cache(maxsize=_CACHE)
def _parse_pattern(text: str) -> HostPattern:
    raw = text.strip()
    if "/" in raw:
        try:
            network = ipaddress.ip_network(raw.strip("[]"), strict=False)
        except ValueError:
            raise ValueError(f"{shown(text)} is not a CIDR block such as 10.0.0.0/8") from None
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
            base = network.network_address.ipv4_mapped
            assert base is not None
            network = ipaddress.IPv4Network((base, network.prefixlen - 96))
        return HostPattern(text=network.with_prefixlen, network=network)
    if raw.startswith("*."):
        try:
            suffix = parse_host(raw[2:])
        except ValueError as exc:
            raise ValueError(f"{shown(text)}: the part after '*.' must be a domain ({exc})") from None
        if suffix.address is not None:
            raise ValueError(f"{shown(text)}: the part after '*.' must be a domain, not an address")
        return HostPattern(text="*." + suffix.name, suffix=suffix.name)
    try:
        host = parse_host(raw)
    except ValueError as exc:
        raise ValueError(
            f"{shown(text)} is not an exact host, a '*.suffix' pattern, an IP address or a CIDR block ({exc})"
        ) from None
    if host.address is not None:
        return HostPattern(text=host.name, exact=host.name, network=ipaddress.ip_network(host.address))
    return HostPattern(text=host.name, exact=host.name)


def _address(host: str) -> IPAddress | None:
    try:
        return parse_host(host).address
    except ValueError:
        return None


def most_specific(host: str, patterns: Iterable[tuple[HostPattern, str]]) -> str | None:
    """The value paired with the most specific pattern matching ``host``, or None if none does."""
    found = [(pattern.specificity, value) for pattern, value in patterns if pattern.matches(host)]
    if not found:
        return None
    return max(found, key=lambda item: item[0])[1]
