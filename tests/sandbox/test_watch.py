"""Contract tests of watch: versions, selectors, timeouts, 410 Gone and the watch-list protocol."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from kubernetes import watch
from kubernetes.client.rest import ApiException

from tests.support.cluster import Cluster


@pytest.fixture
def ns(cluster: Cluster) -> str:
    """A namespace ``work``."""
    cluster.core.create_namespace(body={"metadata": {"name": "work"}})
    return "work"


def _events(cluster: Cluster, ns: str, count: int, **kwargs: Any) -> list[tuple[str, str, int]]:
    """The first ``count`` config-map events of a watch, as (type, name, resourceVersion)."""
    seen: list[tuple[str, str, int]] = []
    stream = watch.Watch()
    for event in stream.stream(cluster.core.list_namespaced_config_map, ns, timeout_seconds=5, **kwargs):
        meta = event["raw_object"]["metadata"]
        seen.append((event["type"], meta.get("name", ""), int(meta["resourceVersion"])))
        if len(seen) == count:
            stream.stop()
    return seen


def _raw_watch(url: str) -> list[dict[str, Any]]:
    """Every event of a raw watch request until the server ends it."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our emulator
        return [json.loads(line) for line in response if line.strip()]


class TestWatch:
    def test_replays_changes_after_a_version_in_order(self, cluster: Cluster, ns: str) -> None:
        """A watch from a list's version sees ADDED, MODIFIED, DELETED in order, with rising versions."""
        start = cluster.core.list_namespaced_config_map(ns).metadata.resource_version
        cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": "c"}, "data": {"k": "1"}})
        cluster.core.patch_namespaced_config_map("c", ns, body={"data": {"k": "2"}})
        cluster.core.delete_namespaced_config_map("c", ns)
        events = _events(cluster, ns, 3, resource_version=start)
        assert [(t, n) for t, n, _ in events] == [("ADDED", "c"), ("MODIFIED", "c"), ("DELETED", "c")]
        versions = [v for _, _, v in events]
        assert versions == sorted(versions)
        assert versions[0] > int(start)

    def test_without_version_starts_with_current_state(self, cluster: Cluster, ns: str) -> None:
        """A watch without resourceVersion first lists existing objects as ADDED, then streams changes."""
        cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": "a"}})
        seen: list[tuple[str, str]] = []
        stream = watch.Watch()
        for event in stream.stream(cluster.core.list_namespaced_config_map, ns, timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 1:
                cluster.core.patch_namespaced_config_map("a", ns, body={"data": {"k": "v"}})
            else:
                stream.stop()
        assert seen == [("ADDED", "a"), ("MODIFIED", "a")]

    def test_label_selector_turns_transitions_into_added_and_deleted(self, cluster: Cluster, ns: str) -> None:
        """An object leaving a watch's label selector arrives as DELETED, and coming back as ADDED."""
        start = cluster.core.list_namespaced_config_map(ns).metadata.resource_version
        cluster.core.create_namespaced_config_map(
            ns, body={"metadata": {"name": "c", "labels": {"tier": "web"}}}
        )
        cluster.core.patch_namespaced_config_map("c", ns, body={"metadata": {"labels": {"tier": "db"}}})
        cluster.core.patch_namespaced_config_map("c", ns, body={"data": {"ignored": "while outside"}})
        cluster.core.patch_namespaced_config_map("c", ns, body={"metadata": {"labels": {"tier": "web"}}})
        events = _events(cluster, ns, 3, resource_version=start, label_selector="tier=web")
        assert [t for t, _, _ in events] == ["ADDED", "DELETED", "ADDED"]

    def test_field_selector_watches_one_object(self, cluster: Cluster, ns: str) -> None:
        """A ``metadata.name`` field selector limits a watch to that object."""
        start = cluster.core.list_namespaced_config_map(ns).metadata.resource_version
        for name in ("a", "b"):
            cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": name}})
        events = _events(cluster, ns, 1, resource_version=start, field_selector="metadata.name=b")
        assert events[0][:2] == ("ADDED", "b")

    def test_timeout_seconds_ends_the_stream(self, cluster: Cluster, ns: str) -> None:
        """A watch with timeoutSeconds=1 and nothing happening ends after about a second."""
        start = time.monotonic()
        rv = cluster.core.list_namespaced_config_map(ns).metadata.resource_version
        events = list(
            watch.Watch().stream(
                cluster.core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=1
            )
        )
        elapsed = time.monotonic() - start
        assert events == []
        assert 0.9 <= elapsed < 3

    def test_too_old_version_is_410_gone(self, cluster: Cluster, ns: str) -> None:
        """After the history is compacted, a watch from an older version gets a 410 Expired ERROR event."""
        old = cluster.core.list_namespaced_config_map(ns).metadata.resource_version
        cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": "c"}})
        cluster.admin.compact(cluster.name)
        with pytest.raises(ApiException) as exc:
            _events(cluster, ns, 1, resource_version=old)
        assert exc.value.status == 410
        raw = _raw_watch(f"{cluster.url}/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={old}")
        assert raw[0]["type"] == "ERROR"
        assert raw[0]["object"]["reason"] == "Expired"
        assert raw[0]["object"]["code"] == 410

    def test_watch_list_ends_initial_events_with_a_bookmark(self, cluster: Cluster, ns: str) -> None:
        """sendInitialEvents lists the state as ADDED, then a BOOKMARK annotated initial-events-end."""
        for name in ("a", "b"):
            cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": name}})
        query = "&".join(
            [
                "watch=1",
                "sendInitialEvents=true",
                "resourceVersionMatch=NotOlderThan",
                "allowWatchBookmarks=true",
                "timeoutSeconds=1",
            ]
        )
        events = _raw_watch(f"{cluster.url}/api/v1/namespaces/{ns}/configmaps?{query}")
        assert [e["type"] for e in events[:3]] == ["ADDED", "ADDED", "BOOKMARK"]
        marker = events[2]["object"]["metadata"]
        assert marker["annotations"] == {"k8s.io/initial-events-end": "true"}
        assert int(marker["resourceVersion"]) >= int(events[1]["object"]["metadata"]["resourceVersion"])
        assert events[-1]["type"] == "BOOKMARK"  # sent before the timeout closes the stream

    def test_deletion_of_a_namespace_reaches_watchers(self, cluster: Cluster, ns: str) -> None:
        """Objects removed with their namespace arrive as DELETED events."""
        start = cluster.core.list_config_map_for_all_namespaces().metadata.resource_version
        cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": "c"}})
        cluster.core.delete_namespace(ns)
        seen: list[str] = []
        stream = watch.Watch()
        for event in stream.stream(
            cluster.core.list_config_map_for_all_namespaces, resource_version=start, timeout_seconds=5
        ):
            seen.append(event["type"])
            if len(seen) == 2:
                stream.stop()
        assert seen == ["ADDED", "DELETED"]
