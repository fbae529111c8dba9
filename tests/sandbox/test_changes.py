"""Contract tests of the emulator's change log: which writes it records, what an entry says, reading it."""

from __future__ import annotations

import time
from typing import Any

from sandbox.apiserver.changes import ChangeLog
from tests.sandbox.support import deployment, http
from tests.support import manifests
from tests.support.cluster import Cluster
from tests.support.waiting import eventually

REVISION = "deployment.kubernetes.io/revision"
APPLY = "application/apply-patch+yaml"


def _work(cluster: Cluster, name: str = "work") -> str:
    cluster.core.create_namespace(body={"metadata": {"name": name}})
    return name


def _rolled_out(cluster: Cluster, ns: str, name: str = "web") -> None:
    eventually(lambda: cluster.rolled_out(ns, name), what=f"{name} rolled out")


def _image(obj: dict[str, Any]) -> str:
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def _summary(changes: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """Per Deployment entry: the operation, the app's image and the revision annotation."""
    return [
        (c["op"], _image(c["object"]), (c["object"]["metadata"].get("annotations") or {}).get(REVISION))
        for c in changes
        if c["kind"] == "Deployment"
    ]


def _last(cluster: Cluster) -> int:
    found = cluster.admin.changes(cluster.name)
    return int(found[-1]["seq"]) if found else 0


class TestWhatIsLogged:
    def test_a_creation_says_what_when_and_where(self, cluster: Cluster) -> None:
        """A created Deployment is one new entry with its time, kind, place and content, without status."""
        ns = _work(cluster)
        since, before = _last(cluster), time.time()
        cluster.apps.create_namespaced_deployment(ns, deployment("web"))
        after = time.time()
        entry = cluster.admin.changes(cluster.name, namespace=ns, since=since)[0]
        assert entry["seq"] == since + 1
        assert entry["op"] == "created"
        assert before <= entry["time"] <= after
        assert (entry["kind"], entry["namespace"], entry["name"]) == ("Deployment", ns, "web")
        assert _image(entry["object"]) == "registry.example.com/app:v1"
        assert "status" not in entry["object"]
        assert not {"resourceVersion", "managedFields"} & set(entry["object"]["metadata"])

    def test_a_new_image_is_logged_and_status_writes_are_not(self, cluster: Cluster) -> None:
        """A new image logs the image change and the controller's revision, none of the status writes."""
        ns = _work(cluster)
        cluster.apps.create_namespaced_deployment(ns, deployment("web", replicas=4))
        _rolled_out(cluster, ns)
        assert _summary(cluster.admin.changes(cluster.name, namespace=ns)) == [
            ("created", "registry.example.com/app:v1", None),
            ("updated", "registry.example.com/app:v1", "1"),
        ]
        since = _last(cluster)
        patch = {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:v2"}]}
                }
            }
        }
        cluster.apps.patch_namespaced_deployment("web", ns, patch)
        _rolled_out(cluster, ns)
        assert _summary(cluster.admin.changes(cluster.name, namespace=ns, since=since)) == [
            ("updated", "registry.example.com/app:v2", "1"),
            ("updated", "registry.example.com/app:v2", "2"),
        ]

    def test_an_apply_that_changes_nothing_is_not_logged(self, cluster: Cluster) -> None:
        """Applying the same manifest again, or as a second manager, writes managedFields only: no entry."""
        ns = _work(cluster)
        body = deployment("web")
        cluster.apply_as("gitops", ns, body)
        _rolled_out(cluster, ns)
        since = _last(cluster)
        version = cluster.apps.read_namespaced_deployment("web", ns).metadata.resource_version
        cluster.apply_as("gitops", ns, body)
        cluster.apply_as("ringmaster", ns, body)
        assert cluster.apps.read_namespaced_deployment("web", ns).metadata.resource_version != version
        assert cluster.admin.changes(cluster.name, namespace=ns, since=since) == []

    def test_a_deletion_is_logged_with_the_last_content(self, cluster: Cluster) -> None:
        """Deleting an object logs ``deleted`` with what it said last."""
        ns = _work(cluster)
        cluster.apps.create_namespaced_deployment(ns, deployment("web"))
        cluster.apps.delete_namespaced_deployment("web", ns)
        last = cluster.admin.changes(cluster.name, namespace=ns)[-1]
        assert (last["op"], last["kind"], last["name"]) == ("deleted", "Deployment", "web")
        assert _image(last["object"]) == "registry.example.com/app:v1"


class TestReading:
    def test_namespace_and_since_select_entries(self, cluster: Cluster) -> None:
        """A namespace leaves out other namespaces and cluster-scoped kinds; since leaves out older ones."""
        for ns in ("a", "b"):
            _work(cluster, ns)
            cluster.core.create_namespaced_service(ns, manifests.service("one", {"app": "x"}, [{"port": 80}]))
        every = cluster.admin.changes(cluster.name)
        assert {("Namespace", None, "a"), ("Service", "a", "one")} <= {
            (c["kind"], c["namespace"], c["name"]) for c in every
        }
        in_a = cluster.admin.changes(cluster.name, namespace="a")
        assert [(c["kind"], c["name"]) for c in in_a] == [("Service", "one")]
        cluster.core.create_namespaced_service("a", manifests.service("two", {"app": "x"}, [{"port": 80}]))
        newer = cluster.admin.changes(cluster.name, namespace="a", since=in_a[-1]["seq"])
        assert [c["name"] for c in newer] == ["two"]

    def test_the_answer_says_the_last_number_and_how_many_were_dropped(self, cluster: Cluster) -> None:
        """The endpoint answers the newest change's number (to ask since next) and the dropped count."""
        _work(cluster)
        status, _, answer = http(
            "GET", f"{cluster.admin.base_url}/admin/clusters/{cluster.name}/changes?since=0"
        )
        assert status == 200
        assert answer["last"] == answer["changes"][-1]["seq"]
        assert answer["dropped"] == 0

    def test_since_must_be_a_number(self, cluster: Cluster) -> None:
        """A since that is not a number answers 400."""
        status, _, _ = http("GET", f"{cluster.admin.base_url}/admin/clusters/{cluster.name}/changes?since=x")
        assert status == 400


class TestBounds:
    def test_keeps_the_newest_and_counts_the_dropped(self) -> None:
        """A full log forgets its oldest entries, counts them, and still reads after any number."""
        log = ChangeLog(3)
        for n in range(5):
            log.record("Service", None, {"metadata": {"name": f"s{n}", "namespace": "a"}})
        assert (log.last, log.dropped) == (5, 2)
        assert [c.seq for c in log.since(0)] == [3, 4, 5]
        assert [c.seq for c in log.since(4)] == [5]
        assert log.since(5) == []
