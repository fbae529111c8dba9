"""Decoding of the Kubernetes protobuf request bodies kubectl's typed clients send.

``kubectl create namespace|configmap|deployment|service`` encode their object as
``application/vnd.kubernetes.protobuf`` (the ``k8s\\x00`` magic, then a ``runtime.Unknown``
envelope holding apiVersion, kind and the object's bytes). client-go does not fall back to JSON
when a server answers 415 to protobuf (it only does so for CBOR), so the emulator decodes these
bodies itself. It knows the field numbers of the fields those commands set, taken from the
``generated.proto`` files of ``k8s.io/api``; other fields are skipped, and other kinds are
refused with 415 naming the kinds it decodes. Answers are always JSON, which client-go accepts.
"""

from __future__ import annotations

import base64
from typing import Any

from sandbox.apiserver.errors import unsupported_media_type

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

Schema = dict[int, tuple[str, Any]]

_META: Schema = {
    1: ("name", "str"),
    2: ("generateName", "str"),
    3: ("namespace", "str"),
    5: ("uid", "str"),
    6: ("resourceVersion", "str"),
    11: ("labels", "map"),
    12: ("annotations", "map"),
    14: ("finalizers", "strs"),
}
_SELECTOR: Schema = {
    1: ("matchLabels", "map"),
    2: ("matchExpressions", ("msgs", {1: ("key", "str"), 2: ("operator", "str"), 3: ("values", "strs")})),
}
_CONTAINER: Schema = {
    1: ("name", "str"),
    2: ("image", "str"),
    3: ("command", "strs"),
    4: ("args", "strs"),
    5: ("workingDir", "str"),
    6: (
        "ports",
        (
            "msgs",
            {1: ("name", "str"), 2: ("hostPort", "int"), 3: ("containerPort", "int"), 4: ("protocol", "str")},
        ),
    ),
    7: ("env", ("msgs", {1: ("name", "str"), 2: ("value", "str")})),
    8: ("resources", ("msg", {1: ("limits", "quantities"), 2: ("requests", "quantities")})),
    14: ("imagePullPolicy", "str"),
}
_POD_SPEC: Schema = {
    2: ("containers", ("msgs", _CONTAINER)),
    20: ("initContainers", ("msgs", _CONTAINER)),
    3: ("restartPolicy", "str"),
    4: ("terminationGracePeriodSeconds", "intp"),
    6: ("dnsPolicy", "str"),
    7: ("nodeSelector", "map"),
    8: ("serviceAccountName", "str"),
    19: ("schedulerName", "str"),
}
_ROLLING: Schema = {1: ("maxUnavailable", "intorstr"), 2: ("maxSurge", "intorstr")}
_DEPLOYMENT_SPEC: Schema = {
    1: ("replicas", "intp"),
    2: ("selector", ("msg", _SELECTOR)),
    3: ("template", ("msg", {1: ("metadata", ("msg", _META)), 2: ("spec", ("msg", _POD_SPEC))})),
    4: ("strategy", ("msg", {1: ("type", "str"), 2: ("rollingUpdate", ("msg", _ROLLING))})),
    5: ("minReadySeconds", "int"),
    6: ("revisionHistoryLimit", "intp"),
    7: ("paused", "bool"),
    9: ("progressDeadlineSeconds", "intp"),
}
_SERVICE_PORT: Schema = {
    1: ("name", "str"),
    2: ("protocol", "str"),
    3: ("port", "int"),
    4: ("targetPort", "intorstr"),
    5: ("nodePort", "int"),
    6: ("appProtocol", "str"),
}
_SERVICE_SPEC: Schema = {
    1: ("ports", ("msgs", _SERVICE_PORT)),
    2: ("selector", "map"),
    3: ("clusterIP", "str"),
    4: ("type", "str"),
    5: ("externalIPs", "strs"),
    7: ("sessionAffinity", "str"),
}
KINDS: dict[tuple[str, str], Schema] = {
    ("v1", "Namespace"): {1: ("metadata", ("msg", _META)), 2: ("spec", ("msg", {1: ("finalizers", "strs")}))},
    ("v1", "ConfigMap"): {
        1: ("metadata", ("msg", _META)),
        2: ("data", "map"),
        3: ("binaryData", "bytesmap"),
        4: ("immutable", "bool"),
    },
    ("v1", "Service"): {1: ("metadata", ("msg", _META)), 2: ("spec", ("msg", _SERVICE_SPEC))},
    ("apps/v1", "Deployment"): {1: ("metadata", ("msg", _META)), 2: ("spec", ("msg", _DEPLOYMENT_SPEC))},
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return (value - (1 << 64) if value >= 1 << 63 else value), pos


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of a message: ints for varints, bytes for the rest."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _pairs(raw: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, part in _fields(raw):
        if isinstance(part, bytes):
            if number == 1:
                key = part.decode()
            elif number == 2:
                value = part
    return key, value


def _value(kind: Any, raw: int | bytes) -> Any:
    if kind in ("int", "intp"):
        return raw if isinstance(raw, int) else None
    if kind == "bool":
        return bool(raw) if isinstance(raw, int) else None
    if not isinstance(raw, bytes):
        return None
    if kind == "str":
        return raw.decode()
    if kind == "intorstr":
        parts = dict(_fields(raw))
        return parts.get(3, b"").decode() if parts.get(1) == 1 else parts.get(2, 0)  # type: ignore[union-attr]
    return decode_message(raw, kind[1])


def decode_message(data: bytes, schema: Schema) -> dict[str, Any]:
    """A protobuf message as a JSON-style dict; zero scalars and empty values are left out."""
    out: dict[str, Any] = {}
    for number, raw in _fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind in ("map", "bytesmap", "quantities"):
            key, value = _pairs(raw) if isinstance(raw, bytes) else ("", b"")
            if kind == "quantities":
                value = dict(_fields(value)).get(1, b"")  # type: ignore[assignment]
            text = base64.b64encode(value).decode() if kind == "bytesmap" else value.decode()
            out.setdefault(name, {})[key] = text
        elif kind == "strs" and isinstance(raw, bytes):
            out.setdefault(name, []).append(raw.decode())
        elif isinstance(kind, tuple) and kind[0] == "msgs" and isinstance(raw, bytes):
            out.setdefault(name, []).append(decode_message(raw, kind[1]))
        else:
            value = _value(kind, raw)
            if (kind == "intp" and value is not None) or (value is not None and value not in ("", {}, 0)):
                out[name] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as a JSON-style object; 415 for kinds this module does not decode."""
    accepted = [f"{v}/{k}" for v, k in KINDS]
    if not body.startswith(_MAGIC):
        raise unsupported_media_type(MEDIA_TYPE, ["application/json", "application/yaml"])
    try:
        envelope = dict(_fields(body[len(_MAGIC) :]))
        type_meta = dict(_fields(envelope.get(1, b"")))  # type: ignore[arg-type]
        api_version = type_meta.get(1, b"").decode()  # type: ignore[union-attr]
        kind = type_meta.get(2, b"").decode()  # type: ignore[union-attr]
        schema = KINDS.get((api_version, kind))
        if schema is None:
            raise unsupported_media_type(
                f"{MEDIA_TYPE} ({api_version}/{kind})",
                ["application/json", f"{MEDIA_TYPE} for {', '.join(accepted)}"],
            )
        obj = decode_message(envelope.get(2, b""), schema)  # type: ignore[arg-type]
    except (ValueError, UnicodeDecodeError):
        raise unsupported_media_type(MEDIA_TYPE, ["application/json"]) from None
    return {"apiVersion": api_version, "kind": kind, **obj}
