"""Hypothesis strategies for hosts and URLs in every notation an attacker might try on the residency gate.

IPv4 in decimal, hex, octal and dotted-octal, in one to four parts; IPv4-mapped IPv6; IDN and
fullwidth names; upper case and trailing dots; URLs with userinfo, backslashes, several ``@``,
ports in and out of range. :data:`hosts` and :data:`urls` mix them with plain random text.
"""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

ADDRESSES = st.builds(ipaddress.IPv4Address, st.integers(min_value=0, max_value=2**32 - 1))


def fullwidth(text: str) -> str:
    """``text`` in fullwidth forms (U+FF01 onwards), as someone hiding a host from a naive check writes it."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _number(value: int, style: str) -> str:
    if style == "hex":
        return hex(value)
    if style == "HEX":
        return "0X" + format(value, "X")
    if style == "octal":
        return "0" + format(value, "o")
    if style == "padded":
        return "00" + format(value, "o")
    return str(value)


_STYLES = st.sampled_from(["decimal", "hex", "HEX", "octal", "padded"])


@st.composite
def ipv4_notations(draw: st.DrawFn) -> tuple[str, ipaddress.IPv4Address]:
    """An IPv4 address and one of the ways ``inet_aton`` lets it be written."""
    address = draw(ADDRESSES)
    value = int(address)
    octets = list(address.packed)
    parts = draw(st.integers(min_value=1, max_value=4))
    if parts == 1:
        numbers = [value]
    elif parts == 2:
        numbers = [octets[0], value & 0xFFFFFF]
    elif parts == 3:
        numbers = [octets[0], octets[1], value & 0xFFFF]
    else:
        numbers = octets
    text = ".".join(_number(n, draw(_STYLES)) for n in numbers)
    return text, address


@st.composite
def mapped_ipv6(draw: st.DrawFn) -> tuple[str, ipaddress.IPv4Address]:
    """An IPv4 address written as an IPv4-mapped IPv6 address, bracketed or not."""
    address = draw(ADDRESSES)
    mapped = ipaddress.IPv6Address("::ffff:" + str(address))
    text = draw(st.sampled_from([str(mapped), mapped.exploded, f"::ffff:{address}"]))
    return (f"[{text}]" if draw(st.booleans()) else text), address


_LABEL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_"
_UNICODE = "üßéøåçñжфあ中\u0131\u017f\u212a"  # dotless i, long s and Kelvin fold to ASCII
LABELS = st.text(alphabet=_LABEL_CHARS + _UNICODE, min_size=1, max_size=12)
SUFFIXES = st.sampled_from(
    ["", ".eu.example.com", ".us.example.com", ".svc", ".svc.cluster.local", ".example.org", ".123"]
)


@st.composite
def names(draw: st.DrawFn) -> str:
    """A host name: random labels, maybe IDN, upper case, fullwidth or with a trailing dot."""
    labels = draw(st.lists(LABELS, min_size=1, max_size=3))
    text = ".".join(labels) + draw(SUFFIXES)
    if draw(st.booleans()):
        text = text.upper()
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        text = fullwidth(text)
    if draw(st.booleans()):
        text += "."
    return text


JUNK = st.text(alphabet="abc019xX.:@/\\[]%#?-_ \tü\uff0e\uff41", max_size=24)
"""Short text of the characters that matter to host and URL parsers."""

hosts = st.one_of(
    ipv4_notations().map(lambda found: found[0]),
    mapped_ipv6().map(lambda found: found[0]),
    names(),
    JUNK,
)
"""Anything that might be written where a host is expected."""

_USERINFO = st.sampled_from(["", "u@", "u:p@", "u:p%40x@", "a@b@", "u\\@", "u:p\\@", "@"])
_PORTS = st.sampled_from(["", ":80", ":9090", ":0", ":65535", ":65536", ":99999", ":x", ":"])
_PATHS = st.sampled_from(["", "/", "/prom", "/a\\b", "\\@evil.us.example.com", "?q=1", "#f", "/x?y#z"])
SCHEMES = st.sampled_from(["http", "https", "HTTP", "postgres", "redis", "mongodb+srv", "ftp"])


@st.composite
def urls(draw: st.DrawFn) -> str:
    """A URL built from adversarial parts: userinfo, any host notation, odd ports, backslash paths."""
    host = draw(hosts)
    if ":" in host and not host.startswith("[") and draw(st.booleans()):
        host = f"[{host}]"
    text = f"{draw(SCHEMES)}://{draw(_USERINFO)}{host}{draw(_PORTS)}{draw(_PATHS)}"
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        at = draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:at] + draw(st.sampled_from(["\\", "@", "\\@", "/", ":", "%2e", " "])) + text[at:]
    return text
