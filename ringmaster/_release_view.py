"""How a release's status reads: one progress line, a text report, and the JSON shape scripts use."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from workflows.models import ReleaseStatus

_COLORS = {"succeeded": "green", "rolled-back": "red", "failed": "red", "aborted": "yellow", "denied": "red"}


def progress_line(st: ReleaseStatus, *, color: bool = False) -> str:
    """A compact line that changes whenever something worth seeing changes."""
    clusters = " ".join(
        f"{c.name}={c.state}" + (f"@{c.weight}%" if c.state in ("deploying", "analyzing", "holding") else "")
        for c in st.clusters
        if c.state != "pending"
    )
    held = f" held: {st.hold_reason}" if st.held else ""
    line = f"[{st.phase}] ring={st.ring or '-'} {clusters}{held}".rstrip()
    if color and st.phase in _COLORS:
        return f"\x1b[1m{line}\x1b[0m"
    return line


def _gate_json(gate: Any) -> dict[str, Any] | None:
    return None if gate is None else gate.model_dump(mode="json")


def status_json(st: ReleaseStatus, live: list[dict[str, Any]]) -> dict[str, Any]:
    """The documented JSON of ``ringmaster status`` (more keys may be added, none removed)."""
    recorded = [
        {
            "cluster": c.name,
            "ring": c.ring,
            "live": False,
            "verdict": _gate_json(c.gate),
            "measurements": [m.model_dump(mode="json") for m in c.measurements],
        }
        for c in st.clusters
        if c.gate is not None
    ]
    running = [
        {
            "cluster": g.get("cluster"),
            "stage": g.get("stage"),
            "live": True,
            "verdict": g.get("verdict"),
            "measurements": g.get("checks", []),
            "totalChecks": g.get("total_checks"),
        }
        for g in live
    ]
    return {
        "release": st.release,
        "workflowId": st.workflow_id,
        "phase": st.phase,
        "reason": st.reason,
        "ring": st.ring,
        "held": st.held,
        "holdReason": st.hold_reason,
        "rollbackScope": st.rollback_scope,
        "needsAttention": st.needs_attention,
        "clusters": [
            {
                "name": c.name,
                "ring": c.ring,
                "region": c.region,
                "jurisdiction": c.jurisdiction,
                "state": c.state,
                "version": c.version,
                "weight": c.weight,
                "step": c.step,
                "message": c.message,
                "nextWindow": c.next_window.isoformat() if c.next_window else None,
                "residency": [
                    {"rule": d.rule, "verdict": d.verdict, "reason": d.reason} for d in c.residency
                ],
            }
            for c in st.clusters
        ],
        "gates": running + recorded,
        "actions": [a.model_dump(mode="json") for a in st.actions],
    }


def status_text(st: ReleaseStatus, live: list[dict[str, Any]]) -> str:
    """A readable report for people."""
    lines = [f"{st.release}  phase {st.phase}  ring {st.ring or '-'}"]
    if st.reason:
        lines.append(f"  {st.reason}")
    if st.held:
        lines.append(f"  held: {st.hold_reason}")
    if st.needs_attention:
        lines.append(f"  NEEDS ATTENTION: {', '.join(st.needs_attention)}")
    lines.append("")
    lines.append(f"  {'cluster':<16}{'ring':<10}{'state':<20}{'version':<12}{'weight':>6}  step")
    for c in st.clusters:
        lines.append(f"  {c.name:<16}{c.ring:<10}{c.state:<20}{c.version:<12}{c.weight:>5}%  {c.step}")
    gates = [(c.name, c.gate) for c in st.clusters if c.gate is not None]
    if live or gates:
        lines.append("")
        lines.append("  gates")
        for g in live:
            verdict = g.get("verdict") or {}
            lines.append(
                f"    {g.get('cluster')} ({g.get('stage')}, live, {g.get('total_checks')} checks): "
                f"{verdict.get('status')} {verdict.get('reason', '')}"
            )
        for name, gate in gates:
            lines.append(f"    {name}: {gate.status} {gate.reason}")
    if st.actions:
        lines.append("")
        lines.append("  operator actions")
        for a in st.actions:
            verdict = "" if a.accepted else f" REJECTED: {a.rejection}"
            what = a.reason or a.cluster or a.ring or ""
            lines.append(f"    {a.at:%Y-%m-%d %H:%M:%S} {a.kind} by {a.by} via {a.via} {what}{verdict}")
    return "\n".join(lines)


_STATE_STYLE = {
    "promoted": "green",
    "rolled-back": "red",
    "failed": "bold red",
    "denied": "red",
    "rolling-back": "yellow",
    "holding": "yellow",
    "awaiting-approval": "cyan",
    "waiting-window": "cyan",
}


def status_table(st: ReleaseStatus) -> Table:
    """The live view of ``submit --wait`` on a terminal: one row per cluster."""
    held = f"  held: {st.hold_reason}" if st.held else ""
    table = Table(
        title=f"{st.release}  [bold]{st.phase}[/bold]  ring {st.ring or '-'}{held}", title_justify="left"
    )
    for column in ("cluster", "ring", "state", "version", "weight", "step", "gate"):
        table.add_column(column, justify="right" if column == "weight" else "left")
    for c in st.clusters:
        gate = f"{c.gate.status}: {c.gate.reason}" if c.gate else ""
        style = _STATE_STYLE.get(c.state, "")
        table.add_row(
            c.name,
            c.ring,
            f"[{style}]{c.state}[/]" if style else c.state,
            c.version,
            f"{c.weight}%",
            c.step,
            gate,
        )
    return table
