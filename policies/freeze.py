"""Stop the line: what a freeze is, and which releases it holds. Pure, like every policy.

A freeze has one scope: every release (``all``), one service's, or every release that deploys to one
region. ``ringmaster freeze`` records it in the freeze registry (``workflows.freezes``) with the
verified principal who froze and why; a release in its scope holds before its next step and a
submission in its scope is refused, until ``ringmaster unfreeze`` lifts it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Literal

from pydantic import Field

from policies import messages
from policies.identity import Method

Scope = Literal["all", "service", "region"]


class Freeze(messages.Message):
    """One freeze in force: its scope, who froze and why, and when."""

    scope: Scope
    target: str = ""
    """The service or region; empty for ``all``."""
    reason: str
    by: str
    """The principal as the worker verified it (the client's word on a trusted worker)."""
    method: Method | Literal[""] = ""
    """How ``by`` was established (``ssh``, ``oidc``, ``trusted``)."""
    at: datetime

    @property
    def key(self) -> str:
        """What names the freeze's scope: ``all``, ``service:payments``, ``region:eu-west-1``."""
        return key(self.scope, self.target)

    def describe(self) -> str:
        """One line for status, the UI and a refused submission."""
        return f"frozen ({self.key}): {self.reason} (by {self.by}, since {self.at:%Y-%m-%d %H:%M:%SZ})"


def key(scope: Scope, target: str) -> str:
    """The name of a scope: one freeze per scope at a time."""
    return "all" if scope == "all" else f"{scope}:{target}"


def applies(freeze: Freeze, service: str, regions: Collection[str]) -> bool:
    """Whether ``freeze`` holds a release of ``service`` deploying to ``regions``.

    A submission is judged before its plan is scheduled, with no regions: only ``all`` and its
    service's freezes refuse it; a region's freeze holds the release before its first step.
    """
    if freeze.scope == "all":
        return True
    if freeze.scope == "service":
        return freeze.target == service
    return freeze.target in regions


def in_force(freezes: Collection[Freeze], service: str, regions: Collection[str]) -> list[Freeze]:
    """The freezes among ``freezes`` that hold such a release, in scope order (stable)."""
    return sorted((f for f in freezes if applies(f, service, regions)), key=lambda f: f.key)


class FreezeList(messages.Message):
    """Every freeze in force, as the registry answers its ``freezes`` query."""

    freezes: list[Freeze] = Field(default_factory=list)


Action = Literal["freeze", "unfreeze"]
"""The two requests the registry takes (both :data:`policies.identity.Action`)."""
