"""The webhooks of the worker's configuration, and the kinds of notification they subscribe to.

Kept apart from :mod:`activities.notify` (and its Temporal and HTTP imports) because the settings
every command reads are built from it: ``ringmaster validate`` imports no worker stack.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from policies import hosts, messages

SCHEMES = ("http", "https")
"""The only URL schemes a webhook may use."""

NotificationKind = Literal[
    "awaiting-approval", "holding", "rolled-back", "aborted", "denied", "failed", "succeeded"
]
KINDS: tuple[NotificationKind, ...] = get_args(NotificationKind)

LONGEST_BUDGET_SECONDS = 120.0
"""The most a webhook's ``give_up_after_seconds`` may be: the release's notify call allows three
minutes (``workflows._options.NOTIFY``), and its ending waits for its final notification."""
LONGEST_TIMEOUT_SECONDS = 30.0
"""The most a webhook's ``timeout_seconds`` (one request) may be."""


_NAME = re.compile(r"[a-z0-9-]+")


class Webhook(messages.Message):
    """A receiver of notifications, from the worker's configuration."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    name: str
    """Lowercase letters, digits and '-'; names the webhook in deliveries and logs."""
    url: SecretStr
    """``http://`` or ``https://``; a credential, shown nowhere. (A refused URL is hidden from the
    ``ValidationError``'s message, but pydantic keeps it in ``errors()[...]["input"]``: report its str.)"""
    format: Literal["json", "slack"] = "json"
    """``json``: the notification with ``text`` and ``link``; ``slack``: an incoming-webhook message."""
    events: list[NotificationKind] = Field(default_factory=lambda: list(KINDS))
    """The kinds this webhook is told of (default: all)."""
    timeout_seconds: float = Field(default=5.0, gt=0, le=LONGEST_TIMEOUT_SECONDS)
    """One request, connect to answer, in seconds."""
    give_up_after_seconds: float = Field(default=60.0, gt=0, le=LONGEST_BUDGET_SECONDS)
    """The whole delivery, retries included, in seconds: no attempt starts after it."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("a webhook's name must be lowercase letters, digits and '-'")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        name = info.data.get("name", "with an invalid name")
        try:
            hosts.parse_url(value.get_secret_value(), schemes=SCHEMES)
        except ValueError as exc:  # parse_url's messages never repeat the URL
            raise ValueError(
                f"webhook {name}: its url is not an allowed http:// or https:// URL: {exc}"
            ) from None
        return value
