"""``ringmaster rollback`` and ``ringmaster retry`` as CI runs them: a subprocess, its exit code, its JSON."""

from __future__ import annotations

from tests.cli.test_release_cli import FAST, Cli
from tests.workflows.support import ended, plan, running_worker, unique_service

INTERNAL = "euw1-internal"


class TestUndoCommands:
    async def test_exit_codes_say_restored_not_restored_and_refused(self, client, tmp_path):
        """0 when every chosen cluster is restored, 1 when one is not (a newer release changed it), 2 when
        the request is refused and nothing changed; without --wait, 0 once started."""
        async with running_worker(client, tmp_path) as h:
            cli = Cli(client, h.task_queue, tmp_path)
            svc = unique_service()
            for version in ("v2", "v3"):
                handle = await h.start(plan(svc, FAST, metrics=False), service=svc, version=version)
                assert (await ended(handle)).phase == "succeeded"

            code, older = await cli.json("rollback", f"{svc}:v2", "--wait", "--reason", "bad")
            assert code == 1, older
            assert older["phase"] == "incomplete"
            assert [(c["name"], c["outcome"]) for c in older["clusters"]] == [(INTERNAL, "refused")]
            assert "runs version v3" in older["clusters"][0]["message"]
            assert h.versions()[INTERNAL] == "v3"

            code, newer = await cli.json("rollback", f"{svc}:v3", "--wait", "--cluster", INTERNAL)
            assert code == 0, newer
            assert (newer["phase"], newer["by"], newer["mode"]) == ("restored", "ci-bot", "rollback")
            assert h.versions()[INTERNAL] == "v2"

            code, out, _ = await cli.run("retry", f"{svc}:v3", "--cluster", INTERNAL, "--wait")
            assert code == 2
            assert "does not need attention" in out

            code, _, err = await cli.run("rollback", f"{svc}:v9")
            assert code == 2
            assert "not found" in err

            code, started = await cli.json("rollback", f"{svc}:v3")
            assert code == 0, started
            assert started["workflowId"] == f"undo:{svc}:v3"
            assert "phase" not in started
