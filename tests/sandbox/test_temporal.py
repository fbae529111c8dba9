"""Tests of the sandbox's Temporal dev server as a process (restarted on its address, it keeps its history)
and of ringmaster's search attributes on it: registered with their types, or only checked (Temporal Cloud)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client, WorkflowExecutionStatus

from policies import loading
from ringmaster import searchattributes
from ringmaster.exitcodes import ExitCode
from sandbox import kubeconfig, settings
from sandbox import temporal as sandbox_temporal
from sandbox.processes import Processes
from tests.support.cli import run_worker
from tests.support.waiting import assert_eventually
from workflows import search

EXAMPLE_FLEET = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "fleet.yaml"


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
        bare = await _bare_namespace(client)
        await searchattributes.ensure_search_attributes(bare)
        registered = await _registered(bare)
        assert {key.name: registered.get(key.name) for key in search.ALL} == {
            key.name: key.indexed_value_type.value for key in search.ALL
        }


class TestCheckOnlySearchAttributes:
    """``RINGMASTER_REGISTER_SEARCH_ATTRIBUTES=false`` (Temporal Cloud): check, name what is missing."""

    async def test_a_bare_namespace_is_refused_naming_every_key_and_nothing_is_registered(
        self, client: Client
    ) -> None:
        """Checking only, each missing key is named with its type and none is registered."""
        bare = await _bare_namespace(client)
        with pytest.raises(searchattributes.SearchAttributesMissing) as raised:
            await searchattributes.ensure_search_attributes(bare, register=False)
        assert raised.value.missing == sorted(key.name for key in search.ALL)
        assert "RingmasterClusters (KeywordList)" in str(raised.value)
        assert "RingmasterService (Keyword)" in str(raised.value)
        assert f"--namespace {bare.namespace}" in str(raised.value)
        assert await _registered(bare) == {}

    async def test_only_the_missing_keys_are_named(self, client: Client) -> None:
        """With some keys created by other tooling, the check names just the rest."""
        bare = await _bare_namespace(client)
        await bare.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=bare.namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
                    for key in search.ALL
                    if key is not search.CLUSTERS
                },
            )
        )
        with pytest.raises(searchattributes.SearchAttributesMissing) as raised:
            await searchattributes.ensure_search_attributes(bare, register=False)
        assert raised.value.missing == [search.CLUSTERS.name]

    async def test_a_namespace_with_every_key_passes(self, client: Client) -> None:
        """The dev server's default namespace has them all: checking passes and changes nothing."""
        before = await _registered(client)
        await searchattributes.ensure_search_attributes(client, register=False)
        assert await _registered(client) == before

    async def test_the_worker_command_exits_2_naming_the_missing_keys(
        self, client: Client, tmp_path: Path
    ) -> None:
        """``ringmaster worker`` checking only, on a bare namespace, exits 2 naming them (no trace)."""
        bare = await _bare_namespace(client)
        fleet = loading.load_fleet(EXAMPLE_FLEET)
        config = kubeconfig.write(
            tmp_path / "kubeconfig", "http://127.0.0.1:9", [(c.kube_context, c.name) for c in fleet.clusters]
        )
        env = {
            "TEMPORAL_ADDRESS": bare.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": bare.namespace,
            "RINGMASTER_FLEET": str(EXAMPLE_FLEET),
            "RINGMASTER_KUBECONFIG": str(config),
            "RINGMASTER_REGISTER_SEARCH_ATTRIBUTES": "false",
        }
        done = await asyncio.to_thread(run_worker, env)
        assert done.returncode == ExitCode.INVALID, done.stderr
        error = done.stderr.strip().splitlines()[-1]
        assert error.startswith("error: Temporal namespace"), done.stderr
        assert all(key.name in error for key in search.ALL)
        assert "Traceback" not in done.stderr
        assert await _registered(bare) == {}


async def _bare_namespace(client: Client) -> Client:
    """A client of a new namespace on the same server, with no custom search attribute."""
    namespace = f"bare-{uuid.uuid4().hex[:12]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    return await Client.connect(client.service_client.config.target_host, namespace=namespace)
