"""``ringmaster list``'s queries, its ``--since`` and its ages, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringmaster.cli import _query

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


def _unquote(literal: str) -> str:
    """A single-quoted literal read back as Temporal's query parser reads it (``\\'`` is a quote)."""
    assert literal.startswith("'") and literal.endswith("'")
    body = literal[1:-1]
    assert "'" not in body.replace("\\'", ""), f"an unescaped quote would end the literal: {literal!r}"
    return body.replace("\\'", "'")


class TestLiteral:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("api", "'api'"),
            ("o'brien", "'o\\'brien'"),
            ("x' OR WorkflowType != '", "'x\\' OR WorkflowType != \\''"),
            ("''", "'\\'\\''"),
            ("zürich", "'zürich'"),
        ],
    )
    def test_quotes_are_escaped(self, value: str, expected: str) -> None:
        """A value is one literal whatever quotes it holds: it cannot end the string."""
        assert _query.literal(value, "--service") == expected

    @given(
        st.text(alphabet=st.characters(exclude_categories=["Cc", "Cs"], exclude_characters='\\"'), min_size=1)
    )
    def test_every_value_without_control_characters_reads_back_as_itself(self, value: str) -> None:
        """Whatever a user types (short of the refused characters), the parser reads that exact value."""
        assert _unquote(_query.literal(value, "--ring")) == value

    @pytest.mark.parametrize("value", ["a\nb", "a\x00", "\t", "x\x7f", "a\rb"])
    def test_control_characters_are_refused_naming_the_flag(self, value: str) -> None:
        """A control character is an error naming the flag, never a query."""
        with pytest.raises(ValueError, match=r"^--cluster: .*control character"):
            _query.literal(value, "--cluster")

    @pytest.mark.parametrize("value", ["a\\b", 'say "hi"'])
    def test_backslashes_and_double_quotes_are_refused(self, value: str) -> None:
        """The SQL visibility stores cannot match them reliably: refused, never silently unmatched."""
        with pytest.raises(ValueError, match=r"^--submitter: .* cannot match reliably"):
            _query.literal(value, "--submitter")

    def test_an_empty_value_is_refused(self) -> None:
        """``--service ''`` would match nothing silently: it is an error."""
        with pytest.raises(ValueError, match="--service: must not be empty"):
            _query.literal("", "--service")


class TestSince:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("30m", NOW - timedelta(minutes=30)),
            ("2h", NOW - timedelta(hours=2)),
            ("1d", NOW - timedelta(days=1)),
            ("1h30m", NOW - timedelta(hours=1, minutes=30)),
            ("2026-12-06T03:00:00Z", datetime(2026, 12, 6, 3, tzinfo=UTC)),
            ("2026-12-06T05:00:00+02:00", datetime(2026, 12, 6, 3, tzinfo=UTC)),
            ("2026-12-06T03:00:00", datetime(2026, 12, 6, 3, tzinfo=UTC)),
            ("2026-12-06", datetime(2026, 12, 6, tzinfo=UTC)),
        ],
    )
    def test_a_duration_or_an_iso_time(self, text: str, expected: datetime) -> None:
        """A duration counts back from now; an ISO time without an offset is UTC."""
        assert _query.parse_since(text, NOW) == expected

    @pytest.mark.parametrize("text", ["", "yesterday", "-2h", "2 hours", "12/06/2026", "2026-13-01"])
    def test_anything_else_names_both_forms(self, text: str) -> None:
        """A bad --since says it is neither a duration nor an ISO time, with an example of each."""
        with pytest.raises(ValueError, match=r"^--since: .* neither a duration .* nor an ISO 8601 time"):
            _query.parse_since(text, NOW)


class TestFilters:
    def test_an_unknown_phase_lists_the_allowed_ones(self) -> None:
        """--phase names what it allows: every phase of workflows.models.Phase."""
        with pytest.raises(ValueError, match="--phase: 'runing' is not a phase; allowed: pending,") as err:
            _query.filters(
                service=None, phases=["runing"], ring=None, cluster=None, submitter=None, since=None, now=NOW
            )
        assert all(p in str(err.value) for p in ("succeeded", "holding", "rolled-back", "aborted"))

    @pytest.mark.parametrize("flag", ["service", "ring", "cluster", "submitter"])
    def test_a_control_character_in_any_filter_names_its_flag(self, flag: str) -> None:
        """Every text filter is checked before anything is sent."""
        options = dict.fromkeys(("service", "ring", "cluster", "submitter"))
        options[flag] = "bad\nname"
        with pytest.raises(ValueError, match=f"^--{flag}: "):
            _query.filters(phases=(), since=None, now=NOW, **options)


class TestQueries:
    def test_no_filter_lists_release_workflows_only(self) -> None:
        """Lanes, cluster workflows, undos and the freeze registry are never listed."""
        assert _query.release_query(_query.Filters()) == "WorkflowType = 'ReleaseWorkflow'"

    def test_every_filter_is_one_condition_of_one_query(self) -> None:
        """Service, phases, ring, submitter, since and cluster each add one AND-ed condition."""
        f = _query.Filters(
            service="api",
            phases=("holding", "deploying"),
            ring="beta",
            cluster="euw1-prod",
            submitter="alice",
            since=datetime(2026, 12, 6, 3, tzinfo=UTC),
        )
        assert _query.release_query(f) == (
            "WorkflowType = 'ReleaseWorkflow' AND RingmasterService = 'api'"
            " AND RingmasterPhase IN ('holding', 'deploying') AND RingmasterRing = 'beta'"
            " AND RingmasterSubmitter = 'alice' AND StartTime >= '2026-12-06T03:00:00.000000Z'"
            " AND RingmasterClusters = 'euw1-prod'"
        )

    def test_the_cluster_workflows_runs_widen_only_the_cluster_condition(self) -> None:
        """A release the cluster workflows name matches even if its bounded list left the cluster out;
        the other filters still apply to it, and each run is named once."""
        f = _query.Filters(service="api", cluster="c1")
        query = _query.release_query(f, run_ids=["r1", "r2", "r1"], workflow_ids=["release:api:v1"])
        assert query == (
            "WorkflowType = 'ReleaseWorkflow' AND RingmasterService = 'api' AND (RingmasterClusters = 'c1'"
            " OR RunId IN ('r1', 'r2') OR WorkflowId IN ('release:api:v1'))"
        )

    def test_the_cluster_workflows_query_keeps_what_they_carry(self) -> None:
        """Cluster workflows are narrowed by cluster, service and start; not by phase, ring or
        submitter, which only releases carry (and never an undo, which carries a cluster too)."""
        f = _query.Filters(
            service="api", cluster="c1", phases=("holding",), since=datetime(2026, 1, 1, tzinfo=UTC)
        )
        assert _query.cluster_query(f) == (
            "WorkflowType = 'ClusterRolloutWorkflow' AND RingmasterCluster = 'c1'"
            " AND RingmasterService = 'api' AND StartTime >= '2026-01-01T00:00:00.000000Z'"
        )

    def test_a_cluster_workflow_maps_to_its_release(self) -> None:
        """Dropping the ring and the cluster from the id leaves the release's."""
        assert _query.release_of("release:api:v2:beta:euc1-beta") == "release:api:v2"

    def test_the_ui_link_carries_the_query(self) -> None:
        """The UI lists the same workflows: the query travels URL-encoded."""
        link = _query.ui_link("http://ui:8233/", "default", "RingmasterService = 'a b'")
        assert (
            link == "http://ui:8233/namespaces/default/workflows?query=RingmasterService%20%3D%20%27a%20b%27"
        )


class TestAge:
    @pytest.mark.parametrize(
        ("delta", "shown"),
        [
            (timedelta(seconds=-3), "0s"),
            (timedelta(seconds=45), "45s"),
            (timedelta(minutes=5, seconds=59), "5m"),
            (timedelta(hours=2, minutes=59), "2h"),
            (timedelta(days=3, hours=23), "3d"),
            (timedelta(days=800), "2y"),
        ],
    )
    def test_like_kubectl(self, delta: timedelta, shown: str) -> None:
        """Ages read as kubectl's: the largest whole unit."""
        assert _query.age(delta) == shown
