"""The port of a URL or ``host:port`` a user wrote, checked to be a port (1-65535).

Kept apart from :mod:`policies.hosts`, which judges hosts: a port never decides a jurisdiction, but
a URL whose port no client can connect to is a mistake to report at load time.
"""

from __future__ import annotations

from urllib.parse import urlsplit

PORTS = "a port is a whole number from 1 to 65535"


def check_port(text: str) -> None:
    """Raise ValueError (saying what a port is) when ``text`` carries a port outside 1-65535."""
    candidate = text.strip()
    if "://" not in candidate:
        candidate = "//" + candidate
    try:
        port = urlsplit(candidate).port
    except ValueError:
        raise ValueError(PORTS) from None
    if port == 0:
        raise ValueError(PORTS)
