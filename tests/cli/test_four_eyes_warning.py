"""``validate`` and ``submit`` warn when a plan requires four eyes but the identity mode is ``trusted``.

The CLI judges the mode from the settings a worker started with its environment would read
(``RINGMASTER_IDENTITY_POLICY`` and that file's ``mode``; no file is ``trusted``). ``validate`` runs
in-process from a folder without ``.env``; ``submit`` runs for real as a subprocess against an
address where no Temporal listens, so it exits 3 once it has done everything before connecting.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ringmaster.cli import plans
from ringmaster.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"
FLEET = str(EXAMPLES / "fleet.yaml")
FOUR_EYES = (EXAMPLES / "plan.yaml").read_text()
APPROVAL = "approval: {required: true, fourEyes: true}"
assert APPROVAL in FOUR_EYES, "the example plan's beta ring requires four eyes"
ONE_APPROVER = FOUR_EYES.replace(APPROVAL, "approval: {required: true}")
WARNING = "warning: ring beta requires four eyes"
POLICIES = {
    "trusted": "mode: trusted\n",
    "verified": "mode: verified\nallowedSigners: allowed_signers\n",
    "broken": "mode: verified\nallowedSigners: allowed_signers\nmaxAge: forever\n",
}


@dataclass(frozen=True)
class Run:
    """The outcome of one CLI invocation."""

    code: int
    stdout: str
    stderr: str


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder without ``.env``, the plans and every policy in it, and no identity setting."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RINGMASTER_IDENTITY_POLICY", raising=False)
    (tmp_path / "four-eyes.yaml").write_text(FOUR_EYES)
    (tmp_path / "one-approver.yaml").write_text(ONE_APPROVER)
    for name, text in POLICIES.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


def _validate(plan: Path, *extra: str) -> Run:
    """``ringmaster validate PLAN --fleet FLEET``, in-process on an app holding only validate and plan."""
    app = typer.Typer(pretty_exceptions_enable=False)
    for command in plans.COMMANDS:
        app.command()(command)
    result = CliRunner().invoke(app, ["validate", str(plan), "--fleet", FLEET, *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


class TestValidate:
    @pytest.mark.parametrize(
        ("plan", "policy", "warning"),
        [
            (
                "four-eyes",
                None,
                "RINGMASTER_IDENTITY_POLICY is not set, so a worker with these settings runs",
            ),
            ("four-eyes", "trusted", "trusted.yaml sets identity mode trusted"),
            ("four-eyes", "verified", None),
            (
                "four-eyes",
                "missing",
                "missing.yaml, which does not exist here: cannot tell whether the worker",
            ),
            ("one-approver", None, None),
            ("one-approver", "trusted", None),
        ],
        ids=["4eyes-unset", "4eyes-trusted", "4eyes-verified", "4eyes-missing", "one-unset", "one-trusted"],
    )
    def test_warns_only_when_four_eyes_would_take_the_clients_word(
        self,
        folder: Path,
        monkeypatch: pytest.MonkeyPatch,
        plan: str,
        policy: str | None,
        warning: str | None,
    ) -> None:
        """A four-eyes ring under trusted (or an unknown mode) is warned about on stderr, naming the ring
        and why; under verified, or without four eyes, nothing is; the plan stays valid (exit 0)."""
        if policy is not None:
            monkeypatch.setenv("RINGMASTER_IDENTITY_POLICY", str(folder / f"{policy}.yaml"))
        run = _validate(folder / f"{plan}.yaml")
        assert run.code == ExitCode.OK, run.stderr
        assert "valid against" in run.stdout
        if warning is None:
            assert "warning" not in run.stderr
        else:
            assert run.stderr.startswith(WARNING), run.stderr
            assert warning in run.stderr
            if policy != "missing":
                assert "the approver's identity is then the client's word (--by), not verified" in run.stderr

    def test_the_warning_leaves_the_json_document_alone(self, folder: Path) -> None:
        """With --output json the warning goes to stderr and stdout is the document, valid as before."""
        run = _validate(folder / "four-eyes.yaml", "--output", "json")
        assert run.code == ExitCode.OK
        assert run.stdout.lstrip().startswith("{") and '"valid": true' in run.stdout
        assert run.stderr.startswith(WARNING)

    def test_an_invalid_policy_file_exits_2_naming_file_and_field(
        self, folder: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A policy file that is named but invalid is bad input: exit 2, its file, line and field."""
        monkeypatch.setenv("RINGMASTER_IDENTITY_POLICY", str(folder / "broken.yaml"))
        run = _validate(folder / "four-eyes.yaml")
        assert run.code == ExitCode.INVALID
        assert f"{folder / 'broken.yaml'}:3:1: maxAge: " in run.stderr

    def test_invalid_settings_only_make_the_mode_unknown(
        self, folder: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A RINGMASTER_* value validate does not use never fails it: the warning names it instead."""
        monkeypatch.setenv("RINGMASTER_MAX_CONCURRENT_ACTIVITIES", "0")
        run = _validate(folder / "four-eyes.yaml")
        assert run.code == ExitCode.OK
        assert "the settings are invalid (RINGMASTER_MAX_CONCURRENT_ACTIVITIES: " in run.stderr


SUBMITS: dict[str, tuple[str, str | None]] = {
    "four-eyes-unset": ("four-eyes", None),
    "four-eyes-trusted": ("four-eyes", "trusted"),
    "four-eyes-verified": ("four-eyes", "verified"),
    "four-eyes-broken": ("four-eyes", "broken"),
    "one-approver-unset": ("one-approver", None),
}
"""Each submit run: its plan and its identity policy file (None: RINGMASTER_IDENTITY_POLICY unset)."""


@pytest.fixture(scope="module")
def submits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every run of ``SUBMITS`` against an unreachable Temporal, started at once and awaited together."""
    folder = tmp_path_factory.mktemp("submit")
    (folder / "four-eyes.yaml").write_text(FOUR_EYES)
    (folder / "one-approver.yaml").write_text(ONE_APPROVER)
    for name, text in POLICIES.items():
        (folder / f"{name}.yaml").write_text(text)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RINGMASTER_", "TEMPORAL_"))}
    base["TEMPORAL_ADDRESS"] = "127.0.0.1:1"

    def start(plan: str, policy: str | None) -> subprocess.Popen[str]:
        env = (
            base if policy is None else {**base, "RINGMASTER_IDENTITY_POLICY": str(folder / f"{policy}.yaml")}
        )
        argv = [
            "submit",
            str(folder / f"{plan}.yaml"),
            "--version",
            "v2",
            "--image",
            "r/api:v2",
            "--fleet",
            FLEET,
        ]
        return subprocess.Popen(
            [sys.executable, "-m", "ringmaster.cli", *argv],
            env=env,
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    started = {name: start(plan, policy) for name, (plan, policy) in SUBMITS.items()}
    results = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=120)
        results[name] = Run(process.returncode, stdout, stderr)
    return results


class TestSubmit:
    @pytest.mark.parametrize(
        ("name", "warned"),
        [
            ("four-eyes-unset", True),
            ("four-eyes-trusted", True),
            ("four-eyes-verified", False),
            ("one-approver-unset", False),
        ],
    )
    def test_warns_under_trusted_and_keeps_its_exit_code(
        self, submits: dict[str, Run], name: str, warned: bool
    ) -> None:
        """A four-eyes plan under trusted (no policy, or mode: trusted) is warned about before connecting;
        under verified, or without four eyes, it is not; either way submit goes on and exits as before
        (3: no Temporal listens)."""
        run = submits[name]
        assert run.code == ExitCode.UNREACHABLE, run.stderr
        assert "cannot reach Temporal" in run.stderr
        assert (WARNING in run.stderr) is warned, run.stderr
        assert "Traceback" not in run.stderr

    def test_an_invalid_policy_file_exits_2_before_connecting(self, submits: dict[str, Run]) -> None:
        """A named but invalid policy file stops submit with exit 2, naming the file and the field."""
        run = submits["four-eyes-broken"]
        assert run.code == ExitCode.INVALID
        assert run.stderr.startswith("error: ") and "broken.yaml:3:1: maxAge: " in run.stderr
        assert "cannot reach Temporal" not in run.stderr
