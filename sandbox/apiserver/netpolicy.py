"""Validation of NetworkPolicy specs, as ``ValidateNetworkPolicySpec`` does it.

The checks an operator can trip over when filling in the placeholders of
``deploy/worker/networkpolicy.yaml``: a CIDR that does not parse (a placeholder left as text),
an ``except`` block outside its CIDR, a port out of range, ``endPort`` with a named port, an
unknown protocol or policy type. Returns ``(field, message)`` causes.
"""

from __future__ import annotations

import ipaddress
from typing import Any

Causes = list[tuple[str, str]]

_PROTOCOLS = ("TCP", "UDP", "SCTP")
_POLICY_TYPES = ("Ingress", "Egress")


def _cidr(value: Any, where: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network | None, Causes]:
    try:
        return ipaddress.ip_network(str(value), strict=False), []
    except ValueError:
        return None, [(where, f"Invalid value: {value!r}: must be a valid CIDR, e.g. 10.0.0.0/16")]


def _peer(peer: Any, where: str) -> Causes:
    if not isinstance(peer, dict) or not peer:
        return [(where, "Required value: must specify a peer")]
    block = peer.get("ipBlock")
    if block is None:
        return []
    if len(peer) > 1:
        return [(where, "Forbidden: may not specify more than 1 peer type when ipBlock is set")]
    network, causes = _cidr((block or {}).get("cidr"), f"{where}.ipBlock.cidr")
    for i, excepted in enumerate((block or {}).get("except") or []):
        inner, bad = _cidr(excepted, f"{where}.ipBlock.except[{i}]")
        causes += bad
        if (
            network is not None
            and inner is not None
            and not (
                inner.version == network.version and inner.subnet_of(network)  # type: ignore[arg-type]
            )
        ):
            causes.append(
                (
                    f"{where}.ipBlock.except[{i}]",
                    f"Invalid value: {excepted!r}: must be a strict subset of cidr",
                )
            )
    return causes


def _port(port: Any, where: str) -> Causes:
    if not isinstance(port, dict):
        return [(where, "Invalid value: must be an object")]
    causes: Causes = []
    protocol = port.get("protocol", "TCP")
    if protocol not in _PROTOCOLS:
        causes.append(
            (f"{where}.protocol", f"Unsupported value: {protocol!r}: supported values: TCP, UDP, SCTP")
        )
    number, end = port.get("port"), port.get("endPort")
    if isinstance(number, int):
        if not 1 <= number <= 65535:
            causes.append((f"{where}.port", f"Invalid value: {number}: must be between 1 and 65535"))
        if end is not None and (not isinstance(end, int) or not number <= end <= 65535):
            causes.append((f"{where}.endPort", f"Invalid value: {end!r}: must be between port and 65535"))
    elif number is not None and end is not None:
        causes.append((f"{where}.endPort", "Forbidden: may not be specified when port is a named port"))
    elif number is None and end is not None:
        causes.append((f"{where}.endPort", "Forbidden: may not be specified when port is not specified"))
    return causes


def validate(spec: dict[str, Any]) -> Causes:
    """Every reason a NetworkPolicy ``spec`` is invalid (empty when it is valid)."""
    causes: Causes = []
    if not isinstance(spec.get("podSelector"), dict):
        causes.append(("spec.podSelector", "Required value"))
    for i, kind in enumerate(spec.get("policyTypes") or []):
        if kind not in _POLICY_TYPES:
            causes.append(
                (f"spec.policyTypes[{i}]", f"Unsupported value: {kind!r}: supported values: Ingress, Egress")
            )
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(direction) or []):
            where = f"spec.{direction}[{i}]"
            if not isinstance(rule, dict):
                causes.append((where, "Invalid value: must be an object"))
                continue
            for j, port in enumerate(rule.get("ports") or []):
                causes += _port(port, f"{where}.ports[{j}]")
            for j, peer in enumerate(rule.get(peers) or []):
                causes += _peer(peer, f"{where}.{peers}[{j}]")
    return causes
