"""The labels, annotations and names ringmaster puts on the objects it writes.

Labels make objects findable (``kubectl get deploy -l ringmaster.dev/release=api.v2``); label values
are limited to 63 characters of ``[A-Za-z0-9-_.]``, so the exact values live in annotations of the
same keys. The scheme:

- ``ringmaster.dev/release``: label ``<service>.<version>`` (``api.v2``), annotation ``api:v2``;
- ``ringmaster.dev/version``: the version the object's pods run (label ``v2``, annotation exact);
- ``ringmaster.dev/ring``: the ring of the release that wrote the object (``beta``);
- ``ringmaster.dev/role`` (label only, on ringmaster's own objects): ``canary``, ``preview``, ``snapshot``;
- ``ringmaster.dev/workload`` (label only): the Deployment a canary, preview or snapshot belongs to.

A value that is not a valid label value (``1.4.0+build5``, or longer than 63) is written as its
valid characters followed by ``-`` and 10 hex digits of its SHA-256 (``1.4.0-build5-be6e249dc0``):
deterministic, so every writer and reader computes the same label; the annotation keeps the exact
text. Pods of a release's version carry ``ringmaster.dev/version`` so metrics can tell them apart.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from activities.models import ReleaseRef

PREFIX = "ringmaster.dev/"
RELEASE = PREFIX + "release"
VERSION = PREFIX + "version"
RING = PREFIX + "ring"
ROLE = PREFIX + "role"
WORKLOAD = PREFIX + "workload"

MARK_KEYS = (RELEASE, VERSION, RING)
"""The keys a rollback restores on objects ringmaster changed but did not create."""

FIELD_MANAGER = "ringmaster"

CANARY = "canary"
PREVIEW = "preview"
SNAPSHOT = "snapshot"

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def _digest(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def label_value(text: str) -> str:
    """``text`` when it is a valid label value, else its valid characters and a short digest."""
    if len(text) <= 63 and _LABEL_VALUE.fullmatch(text):
        return text
    kept = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:52]
    kept = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", kept)
    return f"{kept}-{_digest(text)}" if kept else f"h{_digest(text)}"


def release_label(release: ReleaseRef) -> str:
    """The release as a label value: ``api.v2``."""
    return label_value(f"{release.service}.{release.version}")


def snapshot_key(release: ReleaseRef) -> str:
    """The release's run as a ConfigMap data key: ``api.v2.run-<run id>`` (``api.v2`` without a run)."""
    base = release_label(release)
    return f"{base}.run-{label_value(release.run)}" if release.run else base


def version_label(version: str) -> str:
    """A version as a label value."""
    return label_value(version)


def object_name(base: str, suffix: str, limit: int = 253) -> str:
    """``<base>-<suffix>``, shortened with a digest when longer than ``limit`` (a Deployment name)."""
    name = f"{base}-{suffix}"
    if len(name) <= limit:
        return name
    head = base[: limit - len(suffix) - 12].rstrip("-.")
    return f"{head}-{_digest(base)}-{suffix}"


def service_name(base: str, suffix: str) -> str:
    """A Service name (an RFC 1035 label of at most 63) for ``<base>-<suffix>``."""
    name = f"{base.replace('.', '-')}-{suffix}"
    if not name[0].isalpha():
        name = f"s-{name}"
    if len(name) <= 63 and _DNS_1035.fullmatch(name):
        return name
    head = re.sub(r"[^a-z0-9-]", "-", name[: 63 - len(suffix) - 12]).rstrip("-")
    return f"{head}-{_digest(base)}-{suffix}"


@dataclass(frozen=True)
class Marks:
    """The labels and annotations of one write, for a release and the version the object runs."""

    labels: dict[str, str]
    annotations: dict[str, str]

    @classmethod
    def of(cls, release: ReleaseRef, version: str | None = None) -> Marks:
        """Marks for an object written by ``release`` whose pods run ``version`` (default: the release's)."""
        runs = release.version if version is None else version
        labels = {RELEASE: release_label(release), VERSION: version_label(runs)}
        annotations = {RELEASE: release.name, VERSION: runs}
        if release.ring:
            labels[RING] = label_value(release.ring)
            annotations[RING] = release.ring
        return cls(labels, annotations)

    def with_labels(self, **extra: str) -> Marks:
        """The same marks plus ``ringmaster.dev/<key>`` labels (``role=...``, ``workload=...``)."""
        return Marks({**self.labels, **{PREFIX + k: v for k, v in extra.items()}}, dict(self.annotations))


def found_marks(meta: dict[str, object]) -> dict[str, dict[str, str]]:
    """The mark keys present in an object's metadata, to restore them exactly on rollback."""
    found: dict[str, dict[str, str]] = {}
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        assert isinstance(values, dict)
        found[field] = {k: str(v) for k, v in values.items() if k in MARK_KEYS}
    return found
