"""How resolvers and URL parsers read a host: the rules behind :mod:`policies.hosts`, kept private.

- **IPv4** is whatever ``inet_aton`` accepts (without whitespace): one to four parts separated by dots,
  each decimal, octal (leading ``0``) or hex (``0x``), the last part filling the remaining bytes. So
  ``878636280``, ``0x345eecf8``, ``0x34.0x5e.0xec.0xf8`` and ``064.94.236.248`` are all 52.94.236.248.
  The grammar is written out here, not taken from ``socket``, so every platform reads it alike; the
  fuzz tests check it against ``socket.inet_aton``.
- **A name** whose last label is a number (``foo.123``, ``1.2.3.4.5``) but which is no IPv4 address
  is refused, as the WHATWG URL standard does: some readers take it for an address, others for a name.
- **IPv6** is bracketed or bare; an IPv4-mapped address (``::ffff:10.0.0.1``) is its IPv4 address,
  which is where a dual-stack socket connects. Zone ids (``%eth0``) are refused.
- **Names** are IDNA-encoded with UTS 46, as ``requests`` encodes them before connecting (fullwidth
  letters and dots map to ASCII, ``bücher`` becomes ``xn--bcher-kva``), lower-cased, and lose one
  trailing dot.
- **URLs** are read by ``urllib.parse``, urllib3 and a WHATWG parser (ada); :func:`readings` gives the
  host each finds, so callers can refuse a URL they read differently.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import ada_url
import idna
from urllib3.util import parse_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_IPV4_PART = re.compile(r"0[xX](?P<hex>[0-9a-fA-F]+)|0(?P<octal>[0-7]*)|(?P<decimal>[1-9][0-9]*)")
_NUMERIC_LABEL = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_MAX_NAME = 253
WHATWG_SPECIAL = frozenset({"http", "https", "ws", "wss", "ftp"})
"""Schemes whose host the WHATWG standard parses as a host; any other is read as if it were http."""


def ipv4(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``inet_aton`` reads in ``text``, or None when it reads none."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        found = _IPV4_PART.fullmatch(part)
        if found is None:
            return None
        if found["hex"] is not None:
            digits, base, longest = found["hex"].lstrip("0"), 16, 8
        elif found["octal"] is not None:
            digits, base, longest = found["octal"].lstrip("0"), 8, 11
        else:
            digits, base, longest = found["decimal"], 10, 10
        if len(digits) > longest:  # more than 32 bits; also keeps int() away from huge texts
            return None
        numbers.append(int(digits or "0", base))
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _ipv6(text: str) -> tuple[str, IPAddress]:
    if "%" in text:
        raise ValueError("an IPv6 zone id (%...) names no place; write the address alone")
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError("not an IPv6 address") from None
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped), address.ipv4_mapped
    return str(address), address


def canonical(text: str) -> tuple[str, IPAddress | None]:
    """The canonical host of ``text`` (a bare host or IP, IPv6 possibly bracketed) and its address.

    Raises ValueError saying why ``text`` is no host; the message never repeats ``text``.
    """
    if not text:
        raise ValueError("the host is empty")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError("a host must not contain spaces or control characters")
    if text.startswith("[") and text.endswith("]"):
        return _ipv6(text[1:-1])
    if ":" in text:
        return _ipv6(text)
    host = text
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise ValueError("not a valid internationalised domain name (IDNA, UTS 46)") from None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    address = ipv4(host)
    if address is not None:
        return str(address), address
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        raise ValueError("it ends in a number but is no IPv4 address (inet_aton reads none)")
    if len(host) > _MAX_NAME or not _HOSTNAME.fullmatch(host):
        raise ValueError(
            "not a host name: dot-separated labels of letters, digits, '-' and '_' (at most 63 each)"
        )
    return host, None


def _urllib(url: str) -> str | None:
    return urlsplit(url).hostname


def _urllib3(url: str) -> str | None:
    return parse_url(url).host


def _whatwg(url: str) -> str | None:
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() not in WHATWG_SPECIAL:
        url = "http://" + rest  # postgres://, redis://: read the authority as a host, not opaque text
    return ada_url.URL(url).hostname or None


PARSERS = {"urllib.parse": _urllib, "urllib3": _urllib3, "WHATWG": _whatwg}


def readings(url: str) -> dict[str, str | None]:
    """The canonical host each URL parser finds in ``url``; None where it finds none it can read."""
    found: dict[str, str | None] = {}
    for name, read in PARSERS.items():
        try:
            raw = read(url)
            found[name] = canonical(raw)[0] if raw else None
        except ValueError:
            found[name] = None
    return found
