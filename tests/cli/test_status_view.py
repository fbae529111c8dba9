"""How ``ringmaster status`` reads: who submitted, what the release waits for, how each actor was verified."""

from __future__ import annotations

from datetime import UTC, datetime

from activities.children import ClusterWorkflowEnd
from ringmaster.cli import status
from workflows.models import ClusterStatus, OperatorAction, ReleaseStatus
from workflows.undo import UndoCluster, UndoStatus

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


class TestAReleaseThatClosedWithoutItsRecord:
    def test_each_cluster_reads_as_its_own_cluster_workflow_left_it(self) -> None:
        """A terminated release shows `terminated`, each cluster's end from its cluster workflow, and a
        cluster whose rollback failed (or whose workflow was itself terminated) as needing attention."""
        st = _release()
        st.clusters = [
            ClusterStatus(
                name=n, ring=r, region="eu-west-1", jurisdiction="EU", state="deploying", version="v1"
            )
            for n, r in (
                ("internal-1", "internal"),
                ("beta-1", "beta"),
                ("beta-2", "beta"),
                ("beta-3", "beta"),
            )
        ]
        ends = [
            ClusterWorkflowEnd(
                workflow_id="w1", cluster="internal-1", ring="internal", outcome="promoted", version="v2"
            ),
            ClusterWorkflowEnd(
                workflow_id="w2",
                cluster="beta-1",
                ring="beta",
                outcome="failed",
                rollback_failed=True,
                message="403",
            ),
            ClusterWorkflowEnd(workflow_id="w3", cluster="beta-2", ring="beta", running=True),
            ClusterWorkflowEnd(workflow_id="w4", cluster="beta-3", ring="beta", outcome="closed"),
        ]
        shown = status.with_cluster_workflows(st, "terminated", ends)
        assert shown.phase == "terminated"
        assert [(c.name, c.state, c.version) for c in shown.clusters] == [
            ("internal-1", "promoted", "v2"),
            ("beta-1", "failed", "v1"),
            ("beta-2", "rolling-back", "v1"),
            ("beta-3", "failed", "v1"),
        ]
        assert shown.needs_attention == ["beta-1", "beta-3"]
        assert "terminated" in shown.reason and "beta-2 still rolling back" in shown.reason
        assert st.phase == "deploying" and st.clusters[0].state == "deploying", "the input is untouched"


class TestUndoText:
    def test_the_undo_shows_who_asked_and_each_clusters_outcome(self) -> None:
        """`status` appends the release's undo: mode, verified principal, phase, and each cluster."""
        undo = UndoStatus(
            release_workflow_id="release:api:v2",
            mode="rollback",
            phase="incomplete",
            by="bob@example.com",
            reason="bad after an hour",
            clusters=[
                UndoCluster(name="euw1-prod", outcome="restored", from_version="v2", to_version="v1"),
                UndoCluster(name="use1-prod", outcome="refused", from_version="v2", message="it runs v3"),
            ],
        )
        assert status.undo_text(undo).splitlines() == [
            "",
            "  rollback by bob@example.com: incomplete (bad after an hour)",
            "    euw1-prod       restored   v2 -> v1",
            "    use1-prod       refused    v2              it runs v3",
        ]
