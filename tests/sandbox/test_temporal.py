"""Tests of the sandbox's Temporal dev server as a process: restarted on its address, it keeps its history."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client, WorkflowExecutionStatus

from ringmaster import worker
from sandbox import settings
from sandbox import temporal as sandbox_temporal
from sandbox.processes import Processes
from tests.support.waiting import assert_eventually
from workflows import search


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """A sandbox directory of its own, every process in it stopped afterwards."""
    found = Processes(tmp_path)
    yield found
    found.stop_all()


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


class TestRestartOnTheSameAddress:
    async def test_a_restarted_server_still_knows_its_workflows(self, processes: Processes) -> None:
        """Stopped and started again on its ports, the server tells an old client of a running workflow."""
        first = sandbox_temporal.start_temporal(processes)
        address, ui = str(first.info["address"]), str(first.info["ui"])
        client = await Client.connect(address)
        workflow_id = f"restart-{uuid.uuid4()}"
        await client.start_workflow("NoWorkerRunsThis", id=workflow_id, task_queue=f"nobody-{uuid.uuid4()}")
        processes.stop(sandbox_temporal.TEMPORAL)

        again = sandbox_temporal.start_temporal(processes, port=_port(address), ui_port=_port(ui))

        assert (again.info["address"], again.info["ui"]) == (address, ui)
        assert again.pid != first.pid

        async def status() -> WorkflowExecutionStatus | None:
            return (await client.get_workflow_handle(workflow_id).describe()).status

        found = await assert_eventually(status, timeout=20, what="the old client reconnected")
        assert found == WorkflowExecutionStatus.RUNNING

    def test_a_running_server_is_returned_whatever_ports_are_asked(self, processes: Processes) -> None:
        """Asking for a server while one runs returns that one: ports only choose where a new one listens."""
        first = sandbox_temporal.start_temporal(processes)
        assert sandbox_temporal.start_temporal(processes, port=1, ui_port=2).pid == first.pid


class TestWorkerTuning:
    def test_sandbox_yaml_tunes_the_worker_and_nothing_else_leaks_in(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``worker: {bakePartitionClusters: 1}`` reaches the worker's environment as its setting; a
        RINGMASTER_ variable of the calling shell does not."""
        (tmp_path / settings.FILE_NAME).write_text("worker: {bakePartitionClusters: 1}\n")
        tuning = settings.load(None, tmp_path).worker.env()
        assert tuning == {"RINGMASTER_BAKE_PARTITION_CLUSTERS": "1"}
        monkeypatch.setenv("RINGMASTER_BAKE_PARTITION_CLUSTERS", "7")
        where = {
            "address": "127.0.0.1:1",
            "ui": "http://x",
            "fleet": tmp_path / "f",
            "kubeconfig": tmp_path / "k",
        }
        assert (
            sandbox_temporal.worker_env(**where, tuning=tuning)["RINGMASTER_BAKE_PARTITION_CLUSTERS"] == "1"
        )
        assert "RINGMASTER_BAKE_PARTITION_CLUSTERS" not in sandbox_temporal.worker_env(**where)
        assert settings.load(None, tmp_path / "none").worker.env() == {}


async def _registered(client: Client) -> dict[str, int]:
    found = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    return dict(found.custom_attributes)


class TestSearchAttributeTypes:
    async def test_the_sandbox_server_registers_each_key_with_its_own_type(
        self, processes: Processes
    ) -> None:
        """A keyword list (RingmasterClusters) is registered as one: as a keyword, every upsert fails."""
        record = sandbox_temporal.start_temporal(processes)
        registered = await _registered(await Client.connect(str(record.info["address"])))
        assert {key.name: registered.get(key.name) for key in search.ALL} == {
            key.name: key.indexed_value_type.value for key in search.ALL
        }

    async def test_the_worker_registers_each_key_with_its_own_type(self, client: Client) -> None:
        """On a namespace that has none of them, the worker registers every key with its own type."""
        namespace = f"bare-{uuid.uuid4().hex[:12]}"
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
            )
        )
        bare = await Client.connect(client.service_client.config.target_host, namespace=namespace)
        await worker.ensure_search_attributes(bare)
        registered = await _registered(bare)
        assert {key.name: registered.get(key.name) for key in search.ALL} == {
            key.name: key.indexed_value_type.value for key in search.ALL
        }
