"""The release commands as CI runs them: a subprocess, its exit code and its JSON."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.support.fleets import ROOT
from tests.support.waiting import assert_eventually
from tests.workflows.support import ScriptedMetrics, canary, ended, plan, running_worker, unique_service
from workflows.release import ReleaseWorkflow

FAST = [{"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}}]
GATED = [
    {"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}},
    {
        "name": "beta",
        "clusters": ["euc1-beta"],
        "approval": {"required": True, "fourEyes": True},
        "strategy": canary(("w", 50), ("p", "1s")),
    },
]


class Cli:
    """Runs ``ringmaster`` against the test's Temporal server and worker task queue."""

    def __init__(self, client: Any, task_queue: str, tmp_path: Path) -> None:
        # Nothing of the developer's shell (a sourced sandbox env, say) reaches the commands.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RINGMASTER_", "TEMPORAL_"))}
        self.env = {
            **inherited,
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": client.namespace,
            "RINGMASTER_TASK_QUEUE": task_queue,
            "GITHUB_ACTOR": "ci-bot",
        }
        self.tmp_path = tmp_path

    def plan_file(self, svc: str, rings: list[dict[str, Any]], **kwargs: Any) -> Path:
        path = self.tmp_path / f"{svc}.yaml"
        path.write_text(plan(svc, rings, **kwargs))
        return path

    async def run(
        self, *args: str, env: dict[str, str] | None = None, module: str = "ringmaster.cli"
    ) -> tuple[int, str, str]:
        """``python -m MODULE ARGS`` (the CLI, or a test's variant of it): exit code, stdout, stderr."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *args,
            env=env or self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert "Traceback" not in err.decode(), err.decode()
        return proc.returncode or 0, out.decode(), err.decode()

    async def json(self, *args: str, module: str = "ringmaster.cli") -> tuple[int, dict[str, Any]]:
        code, out, err = await self.run(*args, "--output", "json", module=module)
        try:
            return code, json.loads(out)
        except json.JSONDecodeError:
            raise AssertionError(f"not JSON (exit {code}): {out!r} {err!r}") from None


class TestSubmit:
    async def test_submit_prints_the_release_and_a_resubmission_returns_it(self, client, tmp_path):
        """Exit 0 with release, workflowId, runId, created and url; the same again: created false."""
        async with running_worker(client, tmp_path) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            svc = unique_service()
            path = cli.plan_file(svc, GATED, metrics=False)
            args = ("submit", str(path), "--version", "v2", "--image", "registry.eu.example.com/api:v2")
            code, first = await cli.json(*args)
            assert code == 0
            assert first["release"] == f"{svc}:v2" and first["created"] is True
            assert first["workflowId"] == f"release:{svc}:v2" and first["runId"]
            assert first["url"].endswith(f"/workflows/release:{svc}:v2/{first['runId']}")
            code, again = await cli.json(*args)
            assert (code, again["created"], again["runId"]) == (0, False, first["runId"])
            code, other = await cli.json(
                "submit", str(path), "--version", "v3", "--image", "registry.eu.example.com/api:v3"
            )
            assert code == 2 and f"{svc}:v2" in other["error"], "one release per service at a time"

    async def test_wait_exits_0_on_success_and_1_on_rollback(self, client, tmp_path):
        """--wait follows the release: 0 when it succeeds, 1 when a gate rolls it back."""
        async with running_worker(client, tmp_path, metrics=ScriptedMetrics(failing={"euw1-internal"})) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            good = cli.plan_file(unique_service(), FAST, metrics=False)
            code, out = await cli.json("submit", str(good), "--version", "v2", "--image", "r/a:v2", "--wait")
            assert (code, out["phase"]) == (0, "succeeded")
            bad = cli.plan_file(unique_service(), FAST)
            code, out = await cli.json("submit", str(bad), "--version", "v2", "--image", "r/a:v2", "--wait")
            assert (code, out["phase"]) == (1, "rolled-back")

    async def test_an_ended_release_is_returned_not_rerun(self, client, tmp_path):
        """After the end: same image returns it (created false), another image exits 2, --rerun runs it."""
        async with running_worker(client, tmp_path) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            path = cli.plan_file(unique_service(), FAST, metrics=False)
            args = ("submit", str(path), "--version", "v2", "--wait")
            code, first = await cli.json(*args, "--image", "r/a:v2")
            assert (code, first["phase"]) == (0, "succeeded")
            code, again = await cli.json(*args, "--image", "r/a:v2")
            assert (code, again["created"], again["runId"], again["phase"]) == (
                0,
                False,
                first["runId"],
                "succeeded",
            )
            code, other = await cli.json(*args, "--image", "r/a:other")
            assert code == 2 and "image" in other["error"]
            code, rerun = await cli.json(*args, "--image", "r/a:v2", "--rerun")
            assert (code, rerun["created"]) == (0, True) and rerun["runId"] != first["runId"]

    async def test_wait_timeout_exits_4_while_the_release_runs(self, client, tmp_path):
        """--wait --timeout gives up watching, not the release: exit 4."""
        async with running_worker(client, tmp_path) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            path = cli.plan_file(unique_service(), GATED, metrics=False)
            code, _, err = await cli.run(
                "submit", str(path), "--version", "v2", "--image", "r/a:v2", "--wait", "--timeout", "2s"
            )
            assert code == 4, err

    async def test_invalid_plans_exit_2_naming_the_path(self, client, tmp_path):
        """A plan error is reported with its path before anything is submitted."""
        cli = Cli(client, "unused", tmp_path)
        svc = unique_service()
        path = cli.plan_file(
            svc, [{"name": "internal", "clusters": ["euw1-internal"], "strategy": canary(("w", 120))}]
        )
        code, _, err = await cli.run(
            "submit",
            str(path),
            "--version",
            "v2",
            "--image",
            "r/a:v2",
            "--fleet",
            "deploy/examples/fleet.yaml",
        )
        assert code == 2
        assert "rings[0].strategy.canary.steps[0].setWeight" in err

    async def test_a_plan_the_workers_fleet_rejects_exits_2(self, client, tmp_path):
        """Without --fleet the worker's fleet is the judge: an unknown cluster ends the release invalid."""
        async with running_worker(client, tmp_path) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            rings = [{"name": "internal", "clusters": ["mars-1"], "strategy": {"rolling": {}}}]
            path = cli.plan_file(unique_service(), rings, metrics=False)
            code, out = await cli.json("submit", str(path), "--version", "v2", "--image", "r/a:v2", "--wait")
            assert (code, out["phase"]) == (2, "failed")
            assert "mars-1" in out["reason"]

    async def test_an_unreachable_temporal_exits_3(self, client, tmp_path):
        """No server at the address: exit 3, a one-line reason, no traceback."""
        cli = Cli(client, "unused", tmp_path)
        path = cli.plan_file(unique_service(), FAST, metrics=False)
        env = {**cli.env, "TEMPORAL_ADDRESS": "127.0.0.1:1"}
        code, _, err = await cli.run("submit", str(path), "--version", "v2", "--image", "r/a:v2", env=env)
        assert code == 3
        assert "cannot reach Temporal" in err


class TestStatusAndControls:
    async def test_status_shows_live_gate_measurements_and_abort_rolls_back(self, client, tmp_path):
        """While a canary is judged, status carries the running analysis' latest checks; abort ends it."""
        async with running_worker(client, tmp_path) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            svc = unique_service()
            rings = [
                {
                    "name": "internal",
                    "clusters": ["euw1-internal"],
                    "strategy": canary(("w", 20), ("p", "5m")),
                }
            ]
            code, _ = await cli.json(
                "submit", str(cli.plan_file(svc, rings)), "--version", "v2", "--image", "r/a:v2"
            )
            assert code == 0
            handle = client.get_workflow_handle(f"release:{svc}:v2")
            await assert_eventually(
                lambda: handle.query(ReleaseWorkflow.status), lambda s: s.phase == "analyzing"
            )

            async def live_gates() -> list[dict[str, Any]]:
                _, st = await cli.json("status", f"{svc}:v2")
                return [g for g in st["gates"] if g["live"] and g["measurements"]]

            gates = await assert_eventually(live_gates, bool, what="a live gate", every=0.5)
            assert gates[0]["cluster"] == "euw1-internal"
            assert {m["metric"] for m in gates[0]["measurements"][-1]["measurements"]} == {
                "success-rate",
                "p99",
            }
            code, answer = await cli.json("abort", f"{svc}:v2", "--reason", "enough")
            assert (code, answer["accepted"]) == (0, True)
            final = await ended(client.get_workflow_handle(f"release:{svc}:v2"))
            assert final.phase == "aborted"
            assert h.versions()["euw1-internal"] == "v1"

    async def test_status_and_controls_from_the_command_line(self, client, tmp_path):
        """status JSON; hold and resume; a rejected control exits 2; a colleague approves the ring."""
        async with running_worker(client, tmp_path) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            svc = unique_service()
            path = cli.plan_file(svc, GATED, metrics=False)
            code, _ = await cli.json("submit", str(path), "--version", "v2", "--image", "r/a:v2")
            assert code == 0
            release = f"{svc}:v2"
            handle = client.get_workflow_handle(f"release:{release}")
            await assert_eventually(
                lambda: handle.query(ReleaseWorkflow.status), lambda s: s.phase == "awaiting-approval"
            )
            code, st = await cli.json("status", release)
            assert code == 0
            assert {"release", "phase", "ring", "clusters", "gates", "actions"} <= st.keys()
            assert st["phase"] == "awaiting-approval" and st["ring"] == "beta"
            assert {c["name"]: (c["state"], c["version"]) for c in st["clusters"]}["euw1-internal"] == (
                "promoted",
                "v2",
            )
            assert {"name", "ring", "state", "version", "weight"} <= st["clusters"][0].keys()
            code, text, _ = await cli.run("status", release)
            assert code == 0 and f"ui  {st['url']}" in text
            # A release waiting for a person links to every release waiting the same way.
            others = text.split("ui  every release awaiting-approval now: ", 1)[1].split()[0]
            assert others.startswith(st["url"].split("/workflows/")[0] + "/workflows?query=")
            assert "RingmasterPhase%20%3D%20%27awaiting-approval%27" in others

            assert (await cli.json("hold", release, "--reason", "change freeze"))[0] == 0
            code, again = await cli.json("hold", release, "--reason", "twice")
            assert code == 2 and "already held" in again["error"]
            assert (await cli.json("resume", release))[0] == 0
            code, denied = await cli.json("approve", release, "--ring", "beta")  # ci-bot submitted it
            assert code == 2 and "four eyes" in denied["error"]
            assert (await cli.json("approve", release, "--ring", "beta", "--by", "dana"))[0] == 0
            final = await ended(client.get_workflow_handle(f"release:{release}"))
            assert final.phase == "succeeded"
            code, st = await cli.json("status", release)
            assert [(a["kind"], a["by"]) for a in st["actions"]] == [
                ("hold", "ci-bot"),
                ("resume", "ci-bot"),
                ("approve", "dana"),
            ]
            assert all(a["identity"] for a in st["actions"]), "the client identity is recorded beside --by"
        code, closed = await cli.json("status", release)  # the worker has stopped: nobody answers queries
        assert code == 0 and closed["phase"] == "succeeded", "an ended release's status is its result"
        assert closed["actions"] == st["actions"]


class TestSettings:
    async def test_invalid_settings_exit_2_naming_the_variable(self, client, tmp_path):
        """A bad RINGMASTER_* value stops a release command before it connects: exit 2, no trace."""
        cli = Cli(client, "unused", tmp_path)
        env = {**cli.env, "RINGMASTER_MAX_CONCURRENT_ACTIVITIES": "0"}
        code, out, err = await cli.run("status", "api:v2", env=env)
        assert code == 2, (out, err)
        assert "invalid settings: RINGMASTER_MAX_CONCURRENT_ACTIVITIES:" in err
