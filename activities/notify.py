"""Webhook notifications: tell on-call engineers when a release needs them, or has ended.

The release workflow starts one ``notify`` activity per :class:`Notification` and never lets it
block or fail the release. :class:`NotifyActivities` posts the notification to every configured
:class:`Webhook` subscribed to its kind, concurrently, each as plain JSON or as a Slack
incoming-webhook message (:mod:`activities._payloads`), through a :class:`Sender` (by default
:class:`activities._webhook.Urllib3Sender`: urllib3 on threads, no redirects, no urllib3 retries).

Retries are this module's: 408, 429, 5xx and answers that never came are tried again after 0.5 s,
doubling up to 8 s (or after the receiver's ``Retry-After`` seconds), until the webhook's
``give_up_after_seconds`` would be exceeded; another 4xx (or a redirect) gives up at once. Every
outcome is a :class:`Delivery` (delivered, or gave up with a plain reason), never an exception: only
a cancellation propagates. While deliveries run the activity heartbeats, so the workflow can bound
it with a heartbeat timeout. A notification's ``id`` (the JSON payload's ``id``, and the
``Idempotency-Key`` header of every format) lets a receiver drop a redelivery after a retried activity.

A webhook URL is a credential (a Slack incoming webhook's path is its secret): it is a ``SecretStr``
in the worker's configuration and appears in no log event, result, error or payload.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Literal, Protocol
from urllib.parse import quote

import structlog
from pydantic import AwareDatetime, Field
from temporalio import activity

from activities import _payloads, _webhook
from activities.analysis import Clock, SystemClock
from activities.webhooks import KINDS, LONGEST_BUDGET_SECONDS, SCHEMES, NotificationKind, Webhook
from policies import hosts, messages
from policies.gates import GateVerdict, Status

log = structlog.get_logger("ringmaster.notify")

__all__ = [
    "KINDS",
    "LONGEST_BUDGET_SECONDS",
    "Answer",
    "Delivery",
    "GateSummary",
    "Notification",
    "NotificationKind",
    "NotifyActivities",
    "NotifyInput",
    "NotifyResult",
    "Sender",
    "Unreachable",
    "Webhook",
]

FIRST_BACKOFF_SECONDS = 0.5
"""The wait after a first failed attempt; it doubles after each further one."""
MAX_BACKOFF_SECONDS = 8.0
"""The longest wait between two attempts (unless the receiver's ``Retry-After`` asks for longer)."""
HEARTBEAT_SECONDS = 1.0
"""How often a running notification heartbeats (the SDK throttles what reaches the server)."""
USER_AGENT = "ringmaster-notify"
Answer = _webhook.Answer
Unreachable = _webhook.Unreachable


class _Model(messages.Message):
    """Strict when built, tolerant when decoded from a payload (``policies.messages``)."""


class GateSummary(_Model):
    """The metric gate behind a notification: which metric, what it read, against which bound, where."""

    metric: str
    status: Status
    value: float | None = None
    bound: str | None = None
    cluster: str = ""

    @classmethod
    def of(cls, verdict: GateVerdict, cluster: str) -> GateSummary:
        """The summary of a gate's verdict in ``cluster``."""
        return cls(
            metric=verdict.metric or "",
            status=verdict.status,
            value=verdict.value,
            bound=verdict.bound,
            cluster=cluster,
        )


class Notification(_Model):
    """What a release tells on-call engineers. No URL, no credential."""

    id: str
    """An idempotency key: the same for a redelivery, so receivers can drop it."""
    kind: NotificationKind
    release: str
    """``service:version``."""
    service: str
    version: str
    workflow_id: str
    run_id: str
    phase: str
    """Where the release is: ``canary``, ``approval``, ``rollback``..."""
    reason: str
    """Why, in a sentence (may be empty)."""
    ring: str = ""
    cluster: str = ""
    waiting_for: str = ""
    """What the release waits for now, in words (``a release manager``, ``a resume``)."""
    gate: GateSummary | None = None
    at: AwareDatetime


class Delivery(_Model):
    """How one webhook's delivery of one notification ended."""

    webhook: str
    notification_id: str
    kind: NotificationKind
    outcome: Literal["delivered", "gave-up"]
    attempts: int
    status: int | None = None
    """The last HTTP status; None when the last attempt had no answer."""
    error: str = ""
    """Why it gave up (``HTTP 404``, ``connection refused``, ``timed out after 5 s``); never the URL."""
    first_at: datetime
    last_at: datetime


class NotifyInput(_Model):
    """The notification to deliver."""

    notification: Notification


class NotifyResult(_Model):
    """One delivery per webhook subscribed to the notification's kind (none: none configured)."""

    deliveries: list[Delivery] = Field(default_factory=list)


class Sender(Protocol):
    """Sends one POST; :class:`activities._webhook.Urllib3Sender` is the real one."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], seconds: float) -> Answer:
        """POST once, following no redirect; raise :class:`Unreachable` (a few words, no
        address) when no answer came within ``seconds``."""
        ...


def summary(n: Notification) -> str:
    """One line a person understands: ``api:v2 rolled back: success-rate = 91.2, outside >= 99 in
    euw1-canary (ring canary)``."""
    return _payloads.summary(n)


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): 0.5, 1, 2, 4, 8, 8..."""
    return min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2.0 ** min(attempt - 1, 16))


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


class NotifyActivities:
    """Delivers notifications to the worker's webhooks (see the module docstring).

    ``sender`` and ``clock`` are for tests; ``ui_url`` is the Temporal UI's base URL, for links.
    """

    def __init__(
        self,
        webhooks: list[Webhook],
        *,
        ui_url: str = "",
        sender: Sender | None = None,
        clock: Clock | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        names = [w.name for w in webhooks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"webhook names must be unique; given more than once: {', '.join(twice)}")
        self._webhooks = list(webhooks)
        self._targets = {
            w.name: _webhook.target(hosts.parse_url(w.url.get_secret_value(), schemes=SCHEMES))
            for w in webhooks
        }
        self._ui_url = ui_url.rstrip("/")
        self._owned: _webhook.Urllib3Sender | None = None
        if sender is None:
            sender = real = _webhook.Urllib3Sender()
            self._owned = real
        self._sender = sender
        self._clock: Clock = clock or SystemClock()
        self._beat = heartbeat_seconds

    @property
    def configured(self) -> bool:
        """Whether there is any webhook (the release records that when it is prepared)."""
        return bool(self._webhooks)

    def close(self) -> None:
        """Stop the request threads of the real sender (after the worker stopped)."""
        if self._owned is not None:
            self._owned.close()

    def link(self, n: Notification, namespace: str) -> str:
        """The Temporal UI page of the notification's workflow run; empty without a UI URL."""
        if not self._ui_url:
            return ""
        parts = (quote(namespace, safe=""), quote(n.workflow_id, safe=""), quote(n.run_id, safe=""))
        return f"{self._ui_url}/namespaces/{parts[0]}/workflows/{parts[1]}/{parts[2]}"

    @activity.defn(name="notify")
    async def notify(self, inp: NotifyInput) -> NotifyResult:
        """Deliver the notification to every webhook subscribed to its kind, concurrently; never
        raises for a delivery problem (see :class:`Delivery`), only for a cancellation."""
        n = inp.notification
        chosen = [w for w in self._webhooks if n.kind in w.events]
        if not chosen:
            return NotifyResult()
        info = activity.info()
        link = self.link(n, info.workflow_namespace or info.namespace)
        attempts = dict.fromkeys((w.name for w in chosen), 0)
        pulse = asyncio.create_task(self._pulse(attempts))
        try:
            deliveries = await asyncio.gather(*(self._deliver(w, n, link, attempts) for w in chosen))
        finally:
            pulse.cancel()
        return NotifyResult(deliveries=list(deliveries))

    async def _pulse(self, attempts: dict[str, int]) -> None:
        """Heartbeat, with each webhook's attempts so far, until the deliveries end."""
        while True:
            activity.heartbeat(dict(attempts))
            await asyncio.sleep(self._beat)  # real time: a liveness signal, whatever the injected clock

    async def _deliver(
        self, webhook: Webhook, n: Notification, link: str, attempts: dict[str, int]
    ) -> Delivery:
        logger = log.bind(
            webhook=webhook.name,
            kind=n.kind,
            notification=n.id,
            release=n.release,
            ring=n.ring,
            cluster=n.cluster,
        )
        first = self._clock.now()
        status: int | None = None
        error = ""
        delivered = False
        try:
            delivered, status, error = await self._attempts(webhook, n, link, attempts, logger)
        except Exception as exc:  # a delivery problem is a result, never a failure of the release
            error = f"internal error: {type(exc).__name__}"
        outcome: Literal["delivered", "gave-up"] = "delivered" if delivered else "gave-up"
        tried = attempts[webhook.name]
        if delivered:
            logger.info("notification delivered", outcome=outcome, attempts=tried, status=status)
        else:
            logger.warning(
                "notification gave up", outcome=outcome, attempts=tried, status=status, error=error
            )
        return Delivery(
            webhook=webhook.name,
            notification_id=n.id,
            kind=n.kind,
            outcome=outcome,
            attempts=tried,
            status=status,
            error=error,
            first_at=first,
            last_at=self._clock.now(),
        )

    async def _attempts(
        self,
        webhook: Webhook,
        n: Notification,
        link: str,
        attempts: dict[str, int],
        logger: structlog.typing.FilteringBoundLogger,
    ) -> tuple[bool, int | None, str]:
        """Attempt until delivered or given up: (delivered, last status, error)."""
        target = self._targets[webhook.name]
        body = json.dumps(_payloads.payload(webhook.format, n, link)).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": n.id,
            **target.headers,
        }
        budget = webhook.give_up_after_seconds
        start = self._clock.now()

        def left() -> float:
            return budget - (self._clock.now() - start).total_seconds()

        while True:
            attempts[webhook.name] += 1
            timeout = min(webhook.timeout_seconds, max(left(), 0.1))
            wait: float | None = None
            try:
                answer = await self._sender.post(target.url, body, headers, timeout)
            except Unreachable as exc:
                status, error = None, str(exc)
            else:
                status, wait = answer.status, answer.retry_after
                if 200 <= status < 300:
                    return True, status, ""
                error = f"HTTP {status}"
                if 300 <= status < 400:
                    return False, status, f"{error} (redirects are not followed)"
                if not _retryable(status):
                    return False, status, error
            delay = backoff(attempts[webhook.name]) if wait is None else wait
            if delay >= left():
                if wait is not None:
                    error += f", Retry-After {wait:g} s is past the {budget:g} s budget"
                return False, status, error
            logger.info(
                "notification attempt failed",
                attempts=attempts[webhook.name],
                status=status,
                error=error,
                retry_in=delay,
            )
            await self._clock.sleep(delay)
