"""The README cannot drift from the code: its commands, paths, targets, settings and exit codes are checked.

What each kind of fenced block promises, and how it is held:

- ```` ```console ```` blocks run as written: every ``$ ringmaster ...`` line is run from the repository
  root (no server needed: ``validate``, ``plan``, ``policy check``), must exit with the code of its
  trailing ``# exit N`` comment, and print each line the README shows under it.
- ```` ```sh ```` blocks are only parsed: their ``ringmaster`` lines need a running Temporal (or Unleash),
  which ``make demo`` provides and exercises for real, so here the real CLI parses each line's exact
  arguments (every command, option and argument must exist and take that value) without running it.
  The same holds for the pages the README sends readers to for the detail (``docs/cli.md``,
  ``docs/sandbox.md``).
- The README's example plan (its ```` ```yaml ```` block) is validated against the example fleet.

Besides the blocks: every ``make`` target named exists in the Makefile, every repository path named
exists, every ``RINGMASTER_*`` variable named is a setting (or one the CLI reads itself), the exit-code
table names each :class:`~ringmaster.exitcodes.ExitCode` with its value, and the sections come in the
order a newcomer needs them.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from ringmaster import cli
from ringmaster.exitcodes import ExitCode
from ringmaster.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = (README, ROOT / "docs" / "cli.md", ROOT / "docs" / "sandbox.md")
TOP_FOLDERS = "policies|workflows|activities|ringmaster|sandbox|deploy|tests|scripts|docs"


@dataclass(frozen=True)
class Block:
    """One fenced block of a Markdown page: its info string, its lines, where it starts."""

    page: Path
    lang: str
    line: int
    lines: tuple[str, ...]


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, in order."""
    found: list[Block] = []
    lang: str | None = None
    start = 0
    body: list[str] = []
    for number, text in enumerate(page.read_text().splitlines(), start=1):
        if text.startswith("```"):
            if lang is None:
                lang, start, body = text[3:].strip(), number, []
            else:
                found.append(Block(page, lang, start, tuple(body)))
                lang = None
        elif lang is not None:
            body.append(text)
    assert lang is None, f"{page.name}: the block opened at line {start} is never closed"
    return found


def commands(lines: tuple[str, ...]) -> list[str]:
    """The shell lines of a block, continuation lines (ending in a backslash) joined."""
    joined: list[str] = []
    pending = ""
    for text in lines:
        if text.rstrip().endswith("\\"):
            pending += text.rstrip()[:-1] + " "
            continue
        joined.append(pending + text)
        pending = ""
    return joined


@dataclass(frozen=True)
class Console:
    """A ``$`` line of a console block: its arguments, the exit code it promises, the output it shows."""

    where: str
    args: tuple[str, ...]
    code: int
    shows: tuple[str, ...]


def consoles() -> list[Console]:
    """Every command of the README's console blocks."""
    found: list[Console] = []
    for block in blocks(README):
        if block.lang != "console":
            continue
        current: tuple[str, tuple[str, ...], int] | None = None
        shows: list[str] = []
        for offset, text in enumerate(block.lines, start=1):
            if text.startswith("$ "):
                if current:
                    found.append(Console(*current, tuple(shows)))
                promised = re.search(r"#\s*exit\s+(\d+)\s*$", text)
                assert promised, f"README.md:{block.line + offset}: a console line must end in '# exit N'"
                current, shows = (
                    (
                        f"README.md:{block.line + offset}",
                        tuple(shlex.split(text[2:], comments=True)),
                        int(promised[1]),
                    ),
                    [],
                )
            elif text.strip():
                shows.append(text.strip())
        if current:
            found.append(Console(*current, tuple(shows)))
    return found


def parse(args: list[str]) -> None:
    """Let the real CLI parse ``ringmaster ARGS`` down to its command, as a run would, without running it."""
    command = typer.main.get_command(cli.app)
    name = "ringmaster"
    while True:
        context = command.make_context(name, list(args))
        if not hasattr(command, "resolve_command"):
            return
        # A group: what follows its own options names the subcommand and its arguments.
        rest = [*context._protected_args, *context.args]  # click keeps the subcommand's name there
        name, sub, args = command.resolve_command(context, rest)
        assert sub is not None, name
        command = sub


def parsed_lines() -> list[tuple[str, list[str]]]:
    """Every ``ringmaster`` line of the sh blocks of the README and of the pages it links for detail."""
    found: list[tuple[str, list[str]]] = []
    for page in PAGES:
        for block in blocks(page):
            if block.lang != "sh":
                continue
            for text in commands(block.lines):
                words = shlex.split(text, comments=True)
                if words[:1] == ["ringmaster"]:
                    found.append((f"{page.name}:{block.line}: {text.strip()}", words[1:]))
    return found


def clean_env() -> dict[str, str]:
    """This process's environment without a developer's RINGMASTER_ or TEMPORAL_ settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("RINGMASTER_", "TEMPORAL_"))}


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[int, str]]:
    """Every console command, started at once and awaited together: exit code and output by place."""
    started = {}
    for command in consoles():
        assert command.args[0] == "ringmaster", f"{command.where}: only ringmaster commands run here"
        started[command.where] = subprocess.Popen(
            [sys.executable, "-m", "ringmaster.cli", *command.args[1:]],
            cwd=ROOT,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return {where: (p.wait(timeout=120), p.stdout.read() if p.stdout else "") for where, p in started.items()}


class TestConsoleBlocks:
    """The commands a newcomer can paste without a server do what the README says."""

    @pytest.mark.parametrize("command", consoles(), ids=lambda c: c.where)
    def test_a_console_command_exits_as_promised_and_prints_what_is_shown(
        self, command: Console, runs: dict[str, tuple[int, str]]
    ) -> None:
        """The exit code is the one in the README's comment, and every line shown under it is printed."""
        code, output = runs[command.where]
        assert code == command.code, f"{command.where}: exit {code}, README says {command.code}\n{output}"
        for shown in command.shows:
            assert shown in output, f"{command.where}: {shown!r} not printed\n{output}"

    def test_the_commands_that_need_no_server_are_run(self) -> None:
        """validate, plan and policy check each appear in a console block, with a success and a refusal."""
        run = {(c.args[1], c.code) for c in consoles()}
        assert {("validate", 0), ("plan", 0), ("policy", 0), ("policy", 5), ("policy", 2)} <= run

    def test_the_example_plan_is_valid_against_the_example_fleet(self, tmp_path: Path) -> None:
        """The README's plan block is one `validate` accepts: the reference cannot show a stale field."""
        (plan,) = [b for b in blocks(README) if b.lang == "yaml"]
        (tmp_path / "plan.yaml").write_text("\n".join(plan.lines) + "\n")
        done = subprocess.run(
            [sys.executable, "-m", "ringmaster.cli", "validate", str(tmp_path / "plan.yaml"), "--fleet",
             str(ROOT / "deploy" / "examples" / "fleet.yaml")],
            cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == ExitCode.OK, done.stdout + done.stderr


class TestParsedCommands:
    """The commands that need Temporal are spelled as the CLI accepts them (the demo runs them for real)."""

    @pytest.mark.parametrize(("where", "args"), parsed_lines(), ids=[w for w, _ in parsed_lines()])
    def test_a_ringmaster_line_parses_with_the_real_cli(self, where: str, args: list[str]) -> None:
        """Every command, option and argument of the line exists and accepts the value written."""
        try:
            parse(args)
        except Exception as err:  # typer's vendored click errors; any is a failure
            pytest.fail(f"{where}: {type(err).__name__}: {err}")

    def test_the_parser_refuses_what_the_cli_does_not_have(self) -> None:
        """The check can fail: an option no command has, or an unknown command, is refused."""
        for wrong in (["patches", "--retirable", "p"], ["promote", "api:v2"], ["policy", "check", "--as"]):
            with pytest.raises(Exception):  # noqa: B017, PT011 - typer's vendored click errors
                parse(wrong)

    def test_every_command_of_the_cli_is_in_the_readme(self) -> None:
        """The README's command list names every command a newcomer can run."""
        groups = {"policy", "flags", "deployment"}
        readme = [args for where, args in parsed_lines() if where.startswith("README")]
        named = {tuple(args[:2]) if args[0] in groups else (args[0],) for args in readme}
        app = typer.main.get_command(cli.app)
        every: set[tuple[str, ...]] = set()
        for name, command in app.commands.items():  # type: ignore[attr-defined]
            subs = getattr(command, "commands", None)
            every |= {(name, sub) for sub in subs} if subs else {(name,)}
        assert every <= named, f"missing from the README's command list: {sorted(every - named)}"


def prose(page: Path) -> str:
    """The page's text outside mermaid blocks."""
    return re.sub(r"```mermaid\n.*?```", "", page.read_text(), flags=re.DOTALL)


class TestNames:
    """What the README names exists, with the value it gives."""

    def test_every_make_target_named_is_in_the_makefile(self) -> None:
        """`make X` in the text or a block is a target of the Makefile."""
        targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))
        named = set(re.findall(r"(?:`|^|&& )make ([a-z][a-z-]*)", README.read_text(), flags=re.MULTILINE))
        assert {"demo", "test", "sandbox", "down"} <= named
        assert named <= targets, f"not targets of the Makefile: {sorted(named - targets)}"

    def test_the_two_commands_stay_at_the_top_exactly(self) -> None:
        """The first block is the two set-up commands, as written since they were first documented."""
        first = blocks(README)[0]
        assert [line.split("#")[0].strip() for line in first.lines] == ["make demo", "make test"]

    @pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
    def test_every_repository_path_named_exists(self, page: Path) -> None:
        """A path under one of the repository's folders, in backticks or a link, is a file or folder."""
        spans = re.findall(r"`([^`]+)`|\]\(([^)#]+)", prose(page))
        missing = set()
        for span in (a or b for a, b in spans):
            for path in re.findall(rf"(?<![\w./-])((?:{TOP_FOLDERS})/[\w./-]*)", span):
                if not (ROOT / path.rstrip(".")).exists() and not (page.parent / path).exists():
                    missing.add(path)
        assert not missing, f"{page.name} names paths that do not exist: {sorted(missing)}"

    @pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
    def test_every_ringmaster_variable_named_is_read(self, page: Path) -> None:
        """RINGMASTER_X is a field of the settings, or a variable the CLI reads itself (signing keys)."""
        known = {f"RINGMASTER_{name.upper()}" for name in Settings.model_fields}
        for module in (ROOT / "ringmaster" / "cli").glob("*.py"):
            known |= set(re.findall(r"\"(RINGMASTER_[A-Z_]+)\"", module.read_text()))
        named = set(re.findall(r"RINGMASTER_[A-Z_]*[A-Z]", page.read_text()))
        assert named <= known, f"{page.name} names variables nothing reads: {sorted(named - known)}"

    def test_the_exit_code_table_gives_each_code_its_value(self) -> None:
        """Each row names an ExitCode member and its number; every member has its row."""
        rows = re.findall(r"^\| (\d+) \| `([A-Z_]+)` \|", README.read_text(), flags=re.MULTILINE)
        assert {name: int(code) for code, name in rows} == {code.name: code.value for code in ExitCode}

    def test_the_sections_come_in_the_order_a_newcomer_needs(self) -> None:
        """What it is, the two commands, concepts (a diagram), plan and fleet, CLI, production, guarantees."""
        text = README.read_text()
        headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
        wanted = ["The two commands", "Concepts", "The plan and the fleet", "The CLI", "Running it for real",
                  "Guarantees"]  # fmt: skip
        assert [h for h in headings if h in wanted] == wanted
        assert any(b.lang == "mermaid" for b in blocks(README)), "the concepts' diagram GitHub renders"
