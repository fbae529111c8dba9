"""Error classification: what retries, what fails at once, and what the message says."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes.client.exceptions import ApiException
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs
from temporalio.exceptions import CancelledError

from activities.errors import ClusterError
from activities.kubernetes import errors
from activities.kubernetes.clients import DEPLOYMENT, ClusterApi
from tests.activities.support import V1, V2, Kube, Release, strategy
from tests.support import manifests
from tests.support.cluster import container_image, owners
from tests.support.waiting import eventually

ROLLING = strategy({"rolling": {}})
OLD = "registry.k8s.io/pause:3.8"


def _failure(release: Release) -> ClusterError:
    with pytest.raises(ClusterError) as failed:
        release.take_snapshot()
    return failed.value


class TestClassificationOfAnswers:
    @pytest.mark.parametrize(
        ("status", "kind"),
        [
            (409, "transient"),
            (429, "transient"),
            (500, "transient"),
            (503, "transient"),
            (504, "transient"),
            (401, "permanent"),
            (403, "permanent"),
            (404, "permanent"),
            (422, "permanent"),
        ],
    )
    def test_status_decides_the_kind(self, emulator: Kube, app: str, status: int, kind: str) -> None:
        """Optimistic locks, throttling and server errors retry; refusals fail at once, non-retryable."""
        assert emulator.admin is not None and emulator.emulated is not None
        path = f"/apis/apps/v1/namespaces/{app}/deployments/api"
        emulator.admin.add_fault(emulator.emulated, verb="get", path=path, status=status, count=1)
        error = _failure(Release(emulator, app, ROLLING))
        assert error.kind == kind
        application = error.to_application_error()
        assert application.non_retryable == (kind != "transient")
        assert f"cluster {emulator.cluster}:" in application.message
        assert f"Deployment {app}/api" in application.message
        assert f"{status} " in application.message  # the status and the API's reason

    def test_the_api_reason_and_message_are_quoted(self, emulator: Kube, app: str) -> None:
        """The Status reason and message of the answer reach the error."""
        assert emulator.admin is not None and emulator.emulated is not None
        emulator.admin.add_fault(
            emulator.emulated, verb="get", status=403, count=1, message='user "ci" cannot get deployments'
        )
        error = _failure(Release(emulator, app, ROLLING))
        assert 'Forbidden: user "ci" cannot get deployments' in str(error)

    def test_a_dropped_connection_retries(self, emulator: Kube, app: str) -> None:
        """A connection closed without an answer is transient."""
        assert emulator.admin is not None and emulator.emulated is not None
        emulator.admin.add_fault(emulator.emulated, verb="get", drop=True, count=1)
        error = _failure(Release(emulator, app, ROLLING))
        assert error.kind == "transient" and "connection failed" in str(error)

    def test_a_timeout_retries(self, emulator: Kube, app: str) -> None:
        """An answer slower than the read timeout is transient."""
        assert emulator.admin is not None and emulator.emulated is not None
        emulator.admin.add_fault(emulator.emulated, verb="get", latencySeconds=1.5, count=1)
        impatient = emulator.backend_with(read_timeout=0.5)
        error = _failure(Release(emulator, app, ROLLING, backend=impatient))
        assert error.kind == "transient" and "timed out" in str(error)

    def test_a_missing_namespace_is_permanent(self, kube: Kube) -> None:
        """A workload in a namespace that does not exist fails at once, naming the object."""
        error = _failure(Release(kube, "rm-absent", ROLLING))
        assert error.kind == "permanent" and "Deployment rm-absent/api" in str(error)

    def test_a_missing_container_is_permanent(self, kube: Kube, app: str) -> None:
        """A plan naming a container the Deployment lacks fails at once, listing the containers it has."""
        release = Release(kube, app, ROLLING)
        wrong = release.workload.model_copy(update={"container": "web"})
        with pytest.raises(ClusterError) as failed:
            kube.backend.snapshot(kube.cluster, wrong, release.ref)
        assert failed.value.kind == "permanent" and "no container 'web' (it has api)" in str(failed.value)


class TestOwnership:
    def test_a_field_another_manager_applies_is_never_taken(self, kube: Kube, app: str) -> None:
        """A GitOps controller applying the image makes the step fail as an ownership conflict naming it."""
        kube.apply_as(
            "argocd-controller",
            app,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "api"},
                "spec": {"template": {"spec": {"containers": [{"name": "api", "image": V1}]}}},
            },
        )
        release = Release(kube, app, ROLLING)
        release.take_snapshot()
        with pytest.raises(ClusterError) as failed:
            release.step("deploy")
        error = failed.value
        assert error.kind == "ownership-conflict"
        assert '"argocd-controller" (apply) owns .spec.template.spec.containers[name="api"].image' in str(
            error
        )
        application = error.to_application_error()
        assert application.type == "OwnershipConflict" and application.non_retryable
        stable = kube.deployment(app, "api")
        assert stable is not None and container_image(stable) == V1

    def test_a_protected_release_tool_is_never_overridden(self, kube: Kube, app: str) -> None:
        """Helm writes with Update, yet owns what it writes: its image is not taken either."""
        kube.apps.patch_namespaced_deployment(
            "api",
            app,
            body={"spec": {"template": {"spec": {"containers": [{"name": "api", "image": OLD}]}}}},
            field_manager="helm",
        )
        eventually(lambda: kube.rolled_out(app, "api"), what="helm's rollout")
        release = Release(kube, app, ROLLING)
        release.take_snapshot()
        with pytest.raises(ClusterError) as failed:
            release.step("deploy")
        assert failed.value.kind == "ownership-conflict" and '"helm" (update)' in str(failed.value)

    def test_fields_of_imperative_writers_are_taken_over(self, kube: Kube, app: str) -> None:
        """Fields last written by ``kubectl create`` become ringmaster's, as with ``kubectl set image``."""
        release = Release(kube, app, ROLLING)
        release.take_snapshot()
        release.step("deploy")
        stable = kube.deployment(app, "api")
        assert stable is not None and container_image(stable) == V2
        image = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"api"}', "f:image")
        assert owners(stable, image) == {"ringmaster:Apply"}

    def test_a_takeover_is_logged_with_release_ring_and_cluster(self, kube: Kube, app: str) -> None:
        """Taking fields over is logged, naming the release, ring, cluster, object and previous owner."""
        release = Release(kube, app, ROLLING)
        release.take_snapshot()
        with capture_logs(processors=[merge_contextvars]) as logs:
            release.step("deploy")
        [event] = [e for e in logs if e["event"] == "taking fields over from imperative writers"]
        assert (event["release"], event["ring"], event["cluster"]) == ("api:v2", "beta", kube.cluster)
        assert event["object"] == f"Deployment {app}/api"
        assert any('"kubectl-create" (update) owns' in field for field in event["fields"])


class TestConflictAnswers:
    def test_kube_apiserver_conflicts_are_read(self) -> None:
        """The real server's 409 (causes keyed ``reason``, Update writers with a time) names every manager."""
        body = {
            "kind": "Status",
            "status": "Failure",
            "reason": "Conflict",
            "code": 409,
            "message": "Apply failed with 2 conflicts: ...",
            "details": {
                "causes": [
                    {
                        "reason": "FieldManagerConflict",
                        "message": 'conflict with "helm" using apps/v1 at 2026-01-02T03:04:05Z',
                        "field": ".spec.replicas",
                    },
                    {
                        "reason": "FieldManagerConflict",
                        "message": 'conflict with "flux" with subresource "scale"',
                        "field": ".spec.replicas",
                    },
                ]
            },
        }
        exc = ApiException(status=409, reason="Conflict")
        exc.body = json.dumps(body)
        found = errors.field_conflicts(exc)
        assert [(c.manager, c.applied, c.subresource) for c in found] == [
            ("helm", False, ""),
            ("flux", True, "scale"),
        ]
        error = errors.classify(exc, cluster="c", what="apply Deployment a/b")
        assert error.kind == "ownership-conflict" and '"flux" (apply, subresource scale)' in str(error)

    def test_an_optimistic_lock_is_not_an_ownership_conflict(self) -> None:
        """A 409 without field-manager causes is the retryable stale-version conflict."""
        exc = ApiException(status=409, reason="Conflict")
        exc.body = json.dumps(
            {"kind": "Status", "reason": "Conflict", "message": "the object has been modified"}
        )
        assert errors.classify(exc, cluster="c", what="apply x").kind == "transient"


class _CancelledApi:
    """The official client's ``ApiClient`` at the moment the activity is cancelled mid-call."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def param_serialize(self, **_: object) -> tuple[object, ...]:
        return ()

    def call_api(self, *_: object, **__: object) -> object:
        raise self._error


class TestCancellation:
    @pytest.mark.parametrize("error", [CancelledError("Cancelled"), asyncio.CancelledError()])
    def test_a_cancellation_is_never_classified(self, error: BaseException) -> None:
        """classify() re-raises a cancellation as it is: never a transient ClusterError to retry."""
        with pytest.raises(type(error)) as raised:
            errors.classify(error, cluster="c1", what="get Deployment api/api")
        assert raised.value is error

    @pytest.mark.parametrize("error", [CancelledError("Cancelled"), asyncio.CancelledError()])
    def test_a_cancellation_inside_a_call_leaves_the_call_as_it_is(self, error: BaseException) -> None:
        """A cancellation raised inside a read, a write or a watch stops it unclassified."""
        api = ClusterApi("c1", _CancelledApi(error))  # type: ignore[arg-type]
        with pytest.raises(type(error)):
            api.get(DEPLOYMENT, "api", "api")
        with pytest.raises(type(error)):
            api.apply(manifests.deployment("api", [manifests.container("api", "r/api:v2")]))
        with pytest.raises(type(error)):
            list(api.watch(DEPLOYMENT, "api", "api", "1", 1.0))


class TestErrorClassesOfTheRequestsMetric:
    @pytest.mark.parametrize(
        ("exc", "expected"),
        [
            (None, "none"),
            (ApiException(status=429), "throttled"),
            (ApiException(status=409), "conflict"),
            (ApiException(status=403), "client"),
            (ApiException(status=503), "server"),
            (ApiException(status=0), "other"),
            (TimeoutError(), "timeout"),
            (ConnectionRefusedError(), "unreachable"),
            (ValueError("odd"), "other"),
        ],
    )
    def test_each_failure_has_one_bounded_class(self, exc: BaseException | None, expected: str) -> None:
        """``ringmaster_kubernetes_requests{error}`` takes one of a fixed set of values, whatever failed."""
        assert errors.error_class(exc) == expected
