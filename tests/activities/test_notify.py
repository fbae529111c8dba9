"""``notify``: webhooks hear of a release as JSON or Slack, retried within a budget, never failing it.

Deliveries go over real HTTP to a receiver in the test process (:mod:`tests.support.receiver`); the
backoff schedule alone is checked on a scripted sender and a clock that sleeps instantly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs
from temporalio.testing import ActivityEnvironment

from activities import notify
from activities.notify import (
    GateSummary,
    Notification,
    NotifyActivities,
    NotifyInput,
    NotifyResult,
    Webhook,
)
from sandbox.processes import free_port
from tests.support import receiver
from tests.support.receiver import Reply
from tests.support.waiting import assert_eventually

AT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
SECRET = "T0SECRET/B0SECRET/xoxb-s3cr3t-t0ken"
UI = "https://temporal.example.com"
FAILED_GATE = GateSummary(
    metric="success-rate", status="failed", value=91.2, bound=">= 99", cluster="euw1-canary"
)


def notification(kind: notify.NotificationKind = "rolled-back", **fields: Any) -> Notification:
    """A rollback of api:v2 in euw1-canary on a failed success-rate gate (``fields`` change it)."""
    values: dict[str, Any] = {
        "id": f"release:api:v2/run-1/{kind}/1",
        "kind": kind,
        "release": "api:v2",
        "service": "api",
        "version": "v2",
        "workflow_id": "release:api:v2",
        "run_id": "run-1",
        "phase": "canary",
        "reason": "success-rate failed 3 checks in a row",
        "ring": "canary",
        "cluster": "euw1-canary",
        "gate": FAILED_GATE,
        "at": AT,
    }
    return Notification.model_validate({**values, **fields})


def hook(name: str, url: str, **fields: Any) -> Webhook:
    """A webhook with quick defaults for tests (one second a request, two for the delivery)."""
    return Webhook.model_validate(
        {"name": name, "url": url, "timeout_seconds": 1, "give_up_after_seconds": 2, **fields}
    )


async def run(
    acts: NotifyActivities, n: Notification, env: ActivityEnvironment | None = None
) -> NotifyResult:
    """The activity run once in an activity context."""
    return await (env or ActivityEnvironment()).run(acts.notify, NotifyInput(notification=n))


def requests_of(r: receiver.Receiver) -> Any:
    """A probe of how many requests ``r`` has received, for :func:`assert_eventually`."""
    return lambda: asyncio.sleep(0, len(r.requests))


class TestPayloads:
    async def test_json_carries_the_notification_its_summary_and_link(self) -> None:
        """A ``json`` webhook receives the notification's fields, the one-line text and the UI link."""
        n = notification()
        async with receiver.running() as r:
            found = await run(NotifyActivities([hook("oncall", r.url())], ui_url=UI + "/"), n)
        [delivery] = found.deliveries
        assert (delivery.outcome, delivery.attempts, delivery.status, delivery.error) == (
            "delivered",
            1,
            200,
            "",
        )
        assert (delivery.webhook, delivery.notification_id, delivery.kind) == ("oncall", n.id, "rolled-back")
        [request] = r.requests
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Idempotency-Key"] == n.id
        body = request.json()
        assert {k: body[k] for k in n.model_dump(mode="json")} == n.model_dump(mode="json")
        assert body["gate"] == FAILED_GATE.model_dump(mode="json")
        assert (
            body["text"]
            == "api:v2 rolled back: success-rate = 91.2, outside >= 99 in euw1-canary (ring canary)"
        )
        assert body["link"] == f"{UI}/namespaces/default/workflows/release%3Aapi%3Av2/run-1"

    async def test_without_a_ui_url_the_link_is_empty(self) -> None:
        """A worker that knows no Temporal UI sends ``link: ""`` rather than a made-up address."""
        async with receiver.running() as r:
            await run(NotifyActivities([hook("oncall", r.url())]), notification())
        assert r.requests[0].json()["link"] == ""

    async def test_slack_gets_an_incoming_webhook_message(self) -> None:
        """A ``slack`` webhook receives fallback text, a section with reason and gate, and a context line."""
        n = notification()
        async with receiver.running() as r:
            await run(NotifyActivities([hook("slack", r.url(), format="slack")], ui_url=UI), n)
        body = r.requests[0].json()
        assert set(body) == {"text", "blocks"}
        assert body["text"] == notify.summary(n).replace(">", "&gt;")
        section, context = body["blocks"]
        assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
        assert section["text"]["text"].splitlines() == [
            ":rewind: *api:v2 rolled back*",
            "success-rate failed 3 checks in a row",
            "Gate: success-rate = 91.2, outside &gt;= 99 in euw1-canary",
        ]
        assert context["type"] == "context"
        assert [e["text"] for e in context["elements"]] == [
            "Release *api:v2*",
            "Phase *canary*",
            "Ring *canary*",
            "Cluster *euw1-canary*",
            f"<{UI}/namespaces/default/workflows/release%3Aapi%3Av2/run-1|Open in Temporal>",
        ]
        assert all(e["type"] == "mrkdwn" for e in context["elements"])


class TestSummary:
    @pytest.mark.parametrize(
        ("fields", "line"),
        [
            ({}, "api:v2 rolled back: success-rate = 91.2, outside >= 99 in euw1-canary (ring canary)"),
            (
                {"kind": "awaiting-approval", "ring": "prod", "cluster": "", "gate": None, "reason": ""},
                "api:v2 awaiting approval of ring prod",
            ),
            (
                {
                    "kind": "holding",
                    "gate": GateSummary(metric="", status="inconclusive", cluster="euw1-canary"),
                    "reason": "3 query errors in a row",
                    "waiting_for": "a resume",
                },
                "api:v2 holding: gate inconclusive in euw1-canary: 3 query errors in a row (ring canary); "
                "waiting for a resume",
            ),
            (
                {
                    "kind": "failed",
                    "gate": None,
                    "cluster": "euw1-prod",
                    "ring": "prod",
                    "reason": "apply\ntimed out",
                },
                "api:v2 failed in euw1-prod: apply timed out (ring prod)",
            ),
            (
                {"kind": "succeeded", "gate": None, "cluster": "", "ring": "", "reason": ""},
                "api:v2 succeeded",
            ),
        ],
        ids=["rolled-back", "awaiting-approval", "holding", "failed", "succeeded"],
    )
    def test_one_line_a_person_understands(self, fields: dict[str, Any], line: str) -> None:
        """The summary says what happened to which release, where and why, on one line."""
        assert notify.summary(notification(**fields)) == line


class TestRetries:
    async def test_a_receiver_that_is_down_is_given_up_on_after_its_budget(self) -> None:
        """Connection refused is retried with backoff until the budget would be exceeded, then given up
        with a plain reason."""
        down = hook("down", f"http://127.0.0.1:{free_port()}/hook", give_up_after_seconds=1.5)
        [delivery] = (await run(NotifyActivities([down]), notification())).deliveries
        assert (delivery.outcome, delivery.status, delivery.error) == ("gave-up", None, "connection refused")
        assert delivery.attempts > 1
        assert delivery.last_at - delivery.first_at < timedelta(seconds=1.5)

    async def test_a_server_error_then_success_is_delivered_on_the_second_attempt(self) -> None:
        """A 500 is retried after the first backoff (0.5 s); the 200 that follows delivers."""
        async with receiver.running([500]) as r:
            [delivery] = (await run(NotifyActivities([hook("oncall", r.url())]), notification())).deliveries
        assert (delivery.outcome, delivery.attempts, delivery.status, delivery.error) == (
            "delivered",
            2,
            200,
            "",
        )
        first, second = r.requests
        assert second.at - first.at >= 0.45
        assert first.body == second.body, "a retry sends the same notification, id included"

    async def test_a_client_error_is_given_up_on_at_once(self) -> None:
        """A 404 (a webhook that was deleted) is not retried."""
        async with receiver.running(then=404) as r:
            [delivery] = (await run(NotifyActivities([hook("oncall", r.url())]), notification())).deliveries
        assert (delivery.outcome, delivery.attempts, delivery.status, delivery.error) == (
            "gave-up",
            1,
            404,
            "HTTP 404",
        )
        assert len(r.requests) == 1

    async def test_a_redirect_is_not_followed(self) -> None:
        """A 3xx is given up on at once: a webhook that moved is a configuration to fix."""
        async with receiver.running(then=Reply(302)) as r:
            [delivery] = (await run(NotifyActivities([hook("oncall", r.url())]), notification())).deliveries
        assert (delivery.outcome, delivery.attempts) == ("gave-up", 1)
        assert delivery.error == "HTTP 302 (redirects are not followed)"

    async def test_retry_after_is_honoured(self) -> None:
        """A 503 with ``Retry-After: 1`` is tried again a second later, not after the 0.5 s backoff."""
        async with receiver.running([Reply(503, retry_after="1")]) as r:
            [delivery] = (await run(NotifyActivities([hook("oncall", r.url())]), notification())).deliveries
        assert (delivery.outcome, delivery.attempts) == ("delivered", 2)
        assert r.requests[1].at - r.requests[0].at >= 0.95

    async def test_a_retry_after_past_the_budget_gives_up_at_once(self) -> None:
        """A 429 asking for two minutes, with a budget of two seconds, is given up on without waiting."""
        async with receiver.running(then=Reply(429, retry_after="120")) as r:
            [delivery] = (await run(NotifyActivities([hook("oncall", r.url())]), notification())).deliveries
        assert (delivery.outcome, delivery.attempts, delivery.status) == ("gave-up", 1, 429)
        assert delivery.error == "HTTP 429, Retry-After 120 s is past the 2 s budget"

    async def test_a_receiver_that_never_answers_times_out(self) -> None:
        """An attempt waits ``timeout_seconds`` at most; the error says so."""
        slow = {"timeout_seconds": 0.3, "give_up_after_seconds": 0.5}
        async with receiver.running(hold_until=99) as r:
            [delivery] = (
                await run(NotifyActivities([hook("slow", r.url(), **slow)]), notification())
            ).deliveries
        assert (delivery.outcome, delivery.attempts, delivery.status) == ("gave-up", 1, None)
        assert delivery.error == "timed out after 0.3 s"


class ScriptedSender:
    """Answers from a script without any network, recording the timeout of each attempt."""

    def __init__(self, *answers: notify.Answer | Exception) -> None:
        self.answers = list(answers)
        self.timeouts: list[float] = []

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], seconds: float) -> notify.Answer:
        self.timeouts.append(seconds)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class InstantClock:
    """A clock whose sleeps pass at once, recording how long each was."""

    def __init__(self) -> None:
        self.at = AT
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class TestBackoffSchedule:
    async def test_waits_double_from_half_a_second_up_to_eight_within_the_budget(self) -> None:
        """Against a receiver that always fails, waits run 0.5, 1, 2, 4, 8, 8 s, and no attempt starts
        once the next wait would pass the 30 s budget."""
        sender, clock = ScriptedSender(notify.Answer(503)), InstantClock()
        acts = NotifyActivities(
            [hook("oncall", "https://hooks.example.com/x", give_up_after_seconds=30, timeout_seconds=5)],
            sender=sender,
            clock=clock,
        )
        [delivery] = (await run(acts, notification())).deliveries
        assert clock.slept == [0.5, 1, 2, 4, 8, 8]
        assert (delivery.outcome, delivery.attempts, delivery.error) == ("gave-up", 7, "HTTP 503")
        assert delivery.last_at - delivery.first_at == timedelta(seconds=23.5)
        assert sender.timeouts == [5] * 7

    async def test_an_attempt_never_outlasts_the_budget(self) -> None:
        """The last attempt's timeout is cut to what is left of the budget."""
        sender, clock = ScriptedSender(notify.Unreachable("timed out after 5 s")), InstantClock()
        acts = NotifyActivities(
            [hook("oncall", "https://hooks.example.com/x", give_up_after_seconds=2, timeout_seconds=5)],
            sender=sender,
            clock=clock,
        )
        await run(acts, notification())
        assert clock.slept == [0.5, 1]
        assert sender.timeouts == [2, 1.5, 0.5]

    async def test_an_unexpected_error_is_a_delivery_that_gave_up(self) -> None:
        """Whatever goes wrong inside a delivery, the activity returns a result rather than raising."""
        acts = NotifyActivities(
            [hook("oncall", "https://hooks.example.com/x")],
            sender=ScriptedSender(RuntimeError("boom")),
            clock=InstantClock(),
        )
        [delivery] = (await run(acts, notification())).deliveries
        assert (delivery.outcome, delivery.error) == ("gave-up", "internal error: RuntimeError")


class TestSelection:
    async def test_only_subscribed_webhooks_are_told(self) -> None:
        """A webhook whose ``events`` leave out the kind receives nothing and has no delivery."""
        async with receiver.running() as rollbacks, receiver.running() as successes:
            acts = NotifyActivities(
                [
                    hook("rollbacks", rollbacks.url(), events=["rolled-back", "failed"]),
                    hook("successes", successes.url(), events=["succeeded"]),
                ]
            )
            found = await run(acts, notification())
        assert [d.webhook for d in found.deliveries] == ["rollbacks"]
        assert len(rollbacks.requests) == 1 and successes.requests == []

    async def test_no_webhooks_no_deliveries(self) -> None:
        """A worker without webhooks returns an empty result."""
        assert (await run(NotifyActivities([]), notification())).deliveries == []

    async def test_several_webhooks_are_delivered_concurrently(self) -> None:
        """Three webhooks are posted at once: the receiver answers none until all three are in flight,
        so one at a time would time out."""
        async with receiver.running(hold_until=3) as r:
            hooks = [
                hook(f"hook-{i}", r.url(f"/{i}"), timeout_seconds=3, give_up_after_seconds=3)
                for i in range(3)
            ]
            found = await run(NotifyActivities(hooks), notification())
        assert [(d.webhook, d.outcome, d.attempts) for d in found.deliveries] == [
            (f"hook-{i}", "delivered", 1) for i in range(3)
        ]
        assert sorted(q.path for q in r.requests) == ["/0", "/1", "/2"]

    def test_webhook_names_are_unique(self) -> None:
        """Two webhooks of one name are refused: deliveries name their webhook."""
        with pytest.raises(ValueError, match="given more than once: a"):
            NotifyActivities([hook("a", "https://x.example.com/1"), hook("a", "https://x.example.com/2")])


class TestSecrecy:
    async def test_the_url_appears_in_no_log_result_error_or_heartbeat(self) -> None:
        """Delivered, refused and unreachable webhooks with a secret in their path (and one in their
        userinfo) leave it in no log event, delivery, error or heartbeat."""
        env = ActivityEnvironment()
        beats: list[object] = []
        env.on_heartbeat = lambda *details: beats.append(details)
        async with receiver.running([500]) as ok, receiver.running(then=404) as refused:
            hooks = [
                hook("ok", ok.url(f"/services/{SECRET}")),
                hook("refused", refused.url(f"/services/{SECRET}")),
                hook("down", f"http://bot:xoxb-s3cr3t-pw@127.0.0.1:{free_port()}/services/{SECRET}"),
            ]
            with capture_logs() as logs:
                found = await run(NotifyActivities(hooks), notification(), env)
        assert [d.outcome for d in found.deliveries] == ["delivered", "gave-up", "gave-up"]
        shown = [repr(logs), found.model_dump_json(), repr(beats), repr(hooks)]
        assert not [text for text in shown if "s3cr3t" in text or "services/" in text]
        ends = [e for e in logs if e["event"] in ("notification delivered", "notification gave up")]
        assert {(e["webhook"], e["kind"], e["outcome"], e["attempts"]) for e in ends} == {
            ("ok", "rolled-back", "delivered", 2),
            ("refused", "rolled-back", "gave-up", 1),
            ("down", "rolled-back", "gave-up", found.deliveries[2].attempts),
        }

    async def test_userinfo_is_sent_as_basic_auth(self) -> None:
        """``user:password@`` in a webhook URL becomes an ``Authorization`` header, not part of the URL."""
        async with receiver.running() as r:
            await run(
                NotifyActivities([hook("oncall", r.url().replace("//", "//bot:pw@", 1))]), notification()
            )
        assert r.requests[0].headers["Authorization"] == "Basic Ym90OnB3"

    @pytest.mark.parametrize(
        "url",
        [
            f"ftp://hooks.example.com/{SECRET}",
            f"hooks.slack.com/services/{SECRET}",
            f"https://a\\b@c/{SECRET}",
        ],
    )
    def test_a_bad_url_is_refused_naming_the_webhook_not_the_url(self, url: str) -> None:
        """A URL that is not http(s) is refused with the webhook's name and what is allowed, never the URL."""
        with pytest.raises(ValidationError) as refused:
            Webhook(name="oncall", url=url)  # type: ignore[arg-type]
        assert "webhook oncall: its url is not an allowed http:// or https:// URL: " in str(refused.value)
        assert "s3cr3t" not in str(refused.value)
        assert "s3cr3t" not in refused.value.json(include_input=False)

    @pytest.mark.parametrize("name", ["On-Call", "on_call", ""])
    def test_a_name_must_be_lowercase_letters_digits_and_dashes(self, name: str) -> None:
        """Webhook names are lowercase ``[a-z0-9-]+``, as they are written in deliveries and logs."""
        with pytest.raises(ValidationError, match="lowercase letters, digits and '-'"):
            Webhook(name=name, url="https://hooks.example.com/x")  # type: ignore[arg-type]

    def test_a_webhook_shows_no_url(self) -> None:
        """A webhook's repr and dump hide its URL (it is a credential)."""
        webhook = hook("oncall", f"https://hooks.example.com/{SECRET}")
        assert "s3cr3t" not in repr(webhook) + webhook.model_dump_json()
        assert webhook.events == list(notify.KINDS)


class TestHeartbeatsAndCancellation:
    async def test_it_heartbeats_while_backing_off(self) -> None:
        """Between a 503 asking for a second and the next attempt, heartbeats carry the attempts so far."""
        env = ActivityEnvironment()
        beats: list[tuple[int, tuple[Any, ...]]] = []
        async with receiver.running([Reply(503, retry_after="1")]) as r:
            env.on_heartbeat = lambda *details: beats.append((len(r.requests), details))
            acts = NotifyActivities([hook("oncall", r.url())], heartbeat_seconds=0.05)
            [delivery] = (await run(acts, notification(), env)).deliveries
        assert delivery.attempts == 2
        between = [details for seen, details in beats if seen == 1]
        assert len(between) >= 5, "heartbeats every 0.05 s through the one-second wait"
        assert ({"oncall": 1},) in between

    async def test_a_cancellation_propagates(self) -> None:
        """Cancelling the activity while it backs off ends it with the cancellation, not a result."""
        env = ActivityEnvironment()
        async with receiver.running(then=503) as r:
            acts = NotifyActivities([hook("oncall", r.url(), give_up_after_seconds=60)])
            running = asyncio.create_task(run(acts, notification(), env))
            await assert_eventually(requests_of(r), lambda n: n >= 1, timeout=5, every=0.01)
            env.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(running, timeout=5)
