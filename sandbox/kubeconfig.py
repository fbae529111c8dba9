"""Kubeconfig files for emulated clusters: one context per cluster, no credentials.

The emulator does not authenticate, so the user entry is empty rather than carrying a made-up
token that could be mistaken for a real one. Context names are chosen by the caller (the sandbox
uses the fleet's cluster names) and each points at ``<base>/clusters/<cluster>``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

USER = "sandbox"


def document(
    base_url: str, contexts: Sequence[tuple[str, str]], *, current: str | None = None
) -> dict[str, Any]:
    """A kubeconfig with one ``(context name, emulated cluster name)`` pair per entry."""
    base = base_url.rstrip("/")
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {"name": ctx, "cluster": {"server": f"{base}/clusters/{cluster}"}} for ctx, cluster in contexts
        ],
        "users": [{"name": USER, "user": {}}],
        "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": USER}} for ctx, _ in contexts],
        "current-context": current or (contexts[0][0] if contexts else ""),
    }


def write(path: str | os.PathLike[str], base_url: str, contexts: Sequence[tuple[str, str]]) -> Path:
    """Write a kubeconfig (readable by the owner only, as kubectl does) and return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(yaml.safe_dump(document(base_url, contexts), sort_keys=False), encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(target)
    return target
