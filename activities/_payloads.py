"""What a webhook receives: the one-line summary of a notification, and the JSON or Slack body around it.

:func:`summary` is the line a person reads in a chat or a pager (``api:v2 rolled back: success-rate
= 91.2, outside >= 99 in euw1-canary (ring canary)``); :func:`payload` wraps it for a webhook's
format: ``json``, the notification itself plus ``text`` and ``link``; ``slack``, an incoming-webhook
message (a fallback ``text``, a section with what happened and why, a context line with the release,
phase, ring and the Temporal UI link). Used by :mod:`activities.notify`; nothing here does I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the models live in activities.notify, which imports this module
    from activities.notify import GateSummary, Notification

VERBS = {
    "awaiting-approval": "awaiting approval",
    "holding": "holding",
    "rolled-back": "rolled back",
    "aborted": "aborted",
    "denied": "denied",
    "failed": "failed",
    "succeeded": "succeeded",
}
EMOJI = {
    "awaiting-approval": ":raising_hand:",
    "holding": ":double_vertical_bar:",
    "rolled-back": ":rewind:",
    "aborted": ":octagonal_sign:",
    "denied": ":no_entry:",
    "failed": ":x:",
    "succeeded": ":white_check_mark:",
}
REASON_IN_SUMMARY = 300
"""The most characters of a reason a summary line carries (a Slack message carries more)."""
REASON_IN_MESSAGE = 2000


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def gate_text(gate: GateSummary) -> str:
    """The gate in words: ``success-rate = 91.2, outside >= 99 in euw1-canary`` when it failed on a
    value, ``gate inconclusive on success-rate in euw1-canary`` without one."""
    where = f" in {gate.cluster}" if gate.cluster else ""
    if gate.value is None:
        on = f" on {gate.metric}" if gate.metric else ""
        return f"gate {gate.status}{on}{where}"
    failed = gate.status == "failed"
    bound = ""
    if gate.bound:
        bound = f", outside {gate.bound}" if failed else f" (bound {gate.bound})"
    text = f"{gate.metric} = {gate.value:g}{bound}{where}"
    return text if failed else f"gate {gate.status}: {text}"


def _speaks_for_itself(gate: GateSummary | None) -> bool:
    return gate is not None and gate.status == "failed" and gate.value is not None


def summary(n: Notification) -> str:
    """One line a person understands (see the module docstring)."""
    head = f"{n.release} {VERBS[n.kind]}"
    if n.kind == "awaiting-approval" and n.ring:
        head += f" of ring {n.ring}"
    reason = clip(n.reason, REASON_IN_SUMMARY)
    if n.gate is not None:
        detail = gate_text(n.gate)
        if reason and not _speaks_for_itself(n.gate):  # a failed value says why; the reason repeats it
            detail += f": {reason}"
    else:
        if n.cluster:
            head += f" in {n.cluster}"
        detail = reason
    line = f"{head}: {detail}" if detail else head
    if n.ring and n.kind != "awaiting-approval":
        line += f" (ring {n.ring})"
    if n.waiting_for:
        line += f"; waiting for {clip(n.waiting_for, 100)}"
    return line


def _escaped(text: str) -> str:
    """Text safe in Slack ``mrkdwn``: the three characters it reserves for links and mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(n: Notification, link: str) -> dict[str, Any]:
    """A Slack incoming-webhook message: fallback text, what happened and why, and where to look."""
    lines = [f"{EMOJI[n.kind]} *{_escaped(n.release)} {VERBS[n.kind]}*"]
    if n.reason:
        lines.append(_escaped(clip(n.reason, REASON_IN_MESSAGE)))
    if n.gate is not None:
        lines.append(f"Gate: {_escaped(gate_text(n.gate))}")
    if n.waiting_for:
        lines.append(f"Waiting for {_escaped(n.waiting_for)}")
    context = [f"Release *{_escaped(n.release)}*", f"Phase *{_escaped(n.phase)}*"]
    if n.ring:
        context.append(f"Ring *{_escaped(n.ring)}*")
    if n.cluster:
        context.append(f"Cluster *{_escaped(n.cluster)}*")
    if link:
        context.append(f"<{link}|Open in Temporal>")
    return {
        "text": _escaped(summary(n)),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in context]},
        ],
    }


def payload(form: str, n: Notification, link: str) -> dict[str, Any]:
    """The body posted to a webhook of format ``form`` (``json`` or ``slack``)."""
    if form == "slack":
        return slack(n, link)
    return {**n.model_dump(mode="json"), "text": summary(n), "link": link}
