"""``ringmaster freeze``, ``unfreeze`` and ``freezes`` as CI and people run them: exit codes and messages."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from tests.cli.test_release_cli import FAST, Cli
from tests.support.waiting import assert_eventually
from tests.workflows.support import canary, plan, running_worker, unique_service
from workflows.release import ReleaseWorkflow

PAUSED = [{"name": "internal", "clusters": ["euw1-internal"], "strategy": canary(("w", 20), ("p", None))}]


class TestFreezeCommands:
    async def test_freeze_refuses_a_submission_and_unfreeze_lets_it_through(
        self, client: Client, tmp_path: Any
    ) -> None:
        """freeze exits 0 naming scope, reason and who; a submission of the service exits 2 naming the
        freeze; freezes lists it; unfreeze exits 0 and the same submission starts."""
        async with running_worker(client, tmp_path) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            svc = unique_service()
            code, out, err = await cli.run("freeze", "--service", svc, "--reason", "INC-42", "--by", "sre")
            assert code == 0, err
            assert f"frozen (service:{svc}): INC-42 (by sre" in out

            path = cli.plan_file(svc, FAST, metrics=False)
            submit = ("submit", str(path), "--version", "v2", "--image", "r/a:v2")
            code, refused = await cli.json(*submit)
            assert code == 2
            assert f"frozen (service:{svc}): INC-42 (by sre" in refused["error"]
            assert "ringmaster unfreeze" in refused["error"]

            code, listed = await cli.json("freezes")
            assert code == 0
            assert [(f["scope"], f["target"], f["reason"], f["by"]) for f in listed["freezes"]] == [
                ("service", svc, "INC-42", "sre")
            ]

            code, out, err = await cli.run("unfreeze", "--service", svc, "--by", "sre")
            assert code == 0, err
            assert f"unfrozen (service:{svc}) by sre" in out
            code, started = await cli.json(*submit)
            assert (code, started["created"]) == (0, True)

    async def test_misuse_exits_2_with_a_message(self, client: Client, tmp_path: Any) -> None:
        """Not exactly one scope, a scope frozen twice, and an unfreeze of what is not frozen exit 2."""
        async with running_worker(client, tmp_path) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            code, _, err = await cli.run("freeze", "--reason", "x")
            assert code == 2 and "exactly one scope" in err
            code, _, err = await cli.run("freeze", "--all", "--region", "eu-west-1", "--reason", "x")
            assert code == 2 and "exactly one scope" in err
            code, _, err = await cli.run("freeze", "--all", "--reason", "first", "--by", "sre")
            assert code == 0, err
            code, _, err = await cli.run("freeze", "--all", "--reason", "second", "--by", "sre")
            assert code == 2 and "already frozen (all): first" in err
            code, _, err = await cli.run("unfreeze", "--region", "eu-west-1", "--by", "sre")
            assert code == 2 and "region:eu-west-1 is not frozen (frozen: all)" in err
            code, out, err = await cli.run("unfreeze", "--all", "--by", "sre")
            assert code == 0, err
            code, out, _ = await cli.run("freezes")
            assert (code, out.strip()) == (0, "nothing is frozen")

    async def test_an_unreachable_temporal_exits_3(self, client: Client, tmp_path: Any) -> None:
        """freeze against an address where no Temporal listens exits 3."""
        cli = Cli(client, "unused", tmp_path)
        env = {**cli.env, "TEMPORAL_ADDRESS": "127.0.0.1:1"}
        code, _, err = await cli.run("freeze", "--all", "--reason", "x", env=env)
        assert code == 3, err


class TestStatusOfAFrozenRelease:
    async def test_status_shows_the_freeze_its_reason_and_who(self, client: Client, tmp_path: Any) -> None:
        """A release held by a freeze reads as holding, with the freeze's scope, reason and principal."""
        async with running_worker(client, tmp_path) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            svc = unique_service()
            code, _, err = await cli.run("freeze", "--service", svc, "--reason", "INC-9", "--by", "sre")
            assert code == 0, err
            handle = await h.start(plan(svc, PAUSED, metrics=False), service=svc)
            await assert_eventually(
                lambda: handle.query(ReleaseWorkflow.status), lambda s: s.phase == "holding"
            )
            code, out, err = await cli.run("status", f"{svc}:v2")
            assert code == 0, err
            assert f"held: frozen (service:{svc}): INC-9 (by sre" in out
            code, doc = await cli.json("status", f"{svc}:v2")
            assert (doc["phase"], doc["held"]) == ("holding", True)
            assert "INC-9 (by sre" in doc["holdReason"]
