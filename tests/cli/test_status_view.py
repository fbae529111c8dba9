"""How ``ringmaster status`` reads: who submitted, what the release waits for, how each actor was verified."""

from __future__ import annotations

from datetime import UTC, datetime

from ringmaster.cli import status
from workflows.models import OperatorAction, ReleaseStatus

AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def _release(*actions: OperatorAction, waiting_for: str = "") -> ReleaseStatus:
    return ReleaseStatus(
        release="api:v2",
        service="api",
        version="v2",
        image="r/api:v2",
        phase="awaiting-approval" if waiting_for else "deploying",
        ring="beta",
        submitted_by="alice@example.com",
        waiting_for=waiting_for,
        actions=list(actions),
    )


class TestStatusText:
    def test_names_the_submitter_and_what_the_release_waits_for(self) -> None:
        """The report says who submitted the release and, while it waits, for what."""
        text = status.status_text(_release(waiting_for="approval of ring beta"), [])
        assert "  submitted by alice@example.com\n  waiting for approval of ring beta\n" in text

    def test_each_action_says_how_its_person_was_verified(self) -> None:
        """An action shows its method and what verified it; a refused one its refusal; an old one neither."""
        refused = OperatorAction(
            kind="approve",
            by="alice@example.com",
            at=AT,
            ring="beta",
            accepted=False,
            rejection="ring beta requires four eyes",
            method="ssh",
            verification="SHA256:alice",
        )
        approved = OperatorAction(
            kind="approve", by="bob@example.com", at=AT, ring="beta", method="ssh", verification="SHA256:bob"
        )
        old = OperatorAction(kind="hold", by="ci-bot", at=AT, reason="freeze")
        lines = status.status_text(_release(refused, approved, old), []).splitlines()
        assert lines[-3:] == [
            "    2026-12-06 10:00:00 approve by alice@example.com (ssh, SHA256:alice) via update beta"
            " REJECTED: ring beta requires four eyes",
            "    2026-12-06 10:00:00 approve by bob@example.com (ssh, SHA256:bob) via update beta",
            "    2026-12-06 10:00:00 hold by ci-bot via update freeze",
        ]

    def test_the_json_carries_the_submitter_and_the_wait(self) -> None:
        """``submittedBy`` and ``waitingFor`` join the documented JSON; actions keep how each was verified."""
        approved = OperatorAction(
            kind="approve", by="bob@example.com", at=AT, method="oidc", verification="iss bob"
        )
        document = status.status_json(_release(approved, waiting_for="approval of ring beta"), [])
        assert (document["submittedBy"], document["waitingFor"]) == (
            "alice@example.com",
            "approval of ring beta",
        )
        assert (document["actions"][0]["method"], document["actions"][0]["verification"]) == (
            "oidc",
            "iss bob",
        )
