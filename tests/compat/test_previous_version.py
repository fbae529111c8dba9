"""Today's code and the previous tagged version decode each other's messages.

Forward: the payloads in ``fixtures/<tag>/payloads.json`` were written by the previous version's own
code (its history recorder's main paths, run in its own checkout and virtual environment by
``python -m tests.compat.record``); today's converter decodes each as the type today's code declares.

Reverse: today's converter writes the same messages again (as today's models hold them, new fields
at their defaults) and the previous version's code, in a subprocess with its own interpreter and
``surface.py``, decodes each as the type *its* code declares. What this proves, and what not: both
versions read each other's encoding of every message kind the recorded paths produce (workflow and
activity inputs and results, signals, updates, outcome failures), with today's values of the fields
they share. It does not cover messages only a new feature writes (a feature-flag release's fields
set): a strict previous version (0.1.0) cannot read those, which ``CHANGELOG.md`` says. Queries and
heartbeat details are not in histories; their models are the ones checked by ``test_messages.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.compat import record, samples
from tests.support import previous


@pytest.fixture(scope="module")
def prev() -> previous.Previous:
    """The previous version, checked out with its virtual environment (fails when not in this clone)."""
    return previous.checkout()


class TestFindingThePreviousVersion:
    def test_a_clone_without_the_tag_uses_the_recorded_commit(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """CI's checkout may carry no tags: the commit, which every full clone has, is enough."""
        commit = str(previous.record()["commit"])
        monkeypatch.setattr(previous, "RECORD", _record(tmp_path, "v0.0.0-never-tagged", commit))
        assert previous.resolve_commit() == commit

    def test_neither_tag_nor_commit_fails_saying_how_to_get_them(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """No silent skip: a clone without the previous version is told to fetch it."""
        monkeypatch.setattr(previous, "RECORD", _record(tmp_path, "v0.0.0-never-tagged", "0" * 40))
        with pytest.raises(previous.PreviousVersionUnavailable, match="is not in this clone: fetch it"):
            previous.resolve_commit()


class TestPreviousVersionsMessages:
    def test_the_fixtures_cover_the_main_message_kinds(self) -> None:
        """The recorded paths gave payloads of every kind histories hold."""
        keys = {m["key"] for m in samples.fixture("payloads.json")}
        assert {k.split(":")[0] for k in keys} >= {"workflow", "activity", "signal", "update"}
        assert {
            "workflow:ReleaseWorkflow:input",
            "workflow:ClusterRolloutWorkflow:input",
            "workflow:ReleaseWorkflow:failure",
            "activity:prepare_release:result",
            "activity:apply_step:input",
            "signal:ReleaseWorkflow:cluster_progress",
            "update:ReleaseWorkflow:approve:input",
        } <= keys

    def test_todays_code_decodes_every_message_the_previous_version_wrote(self) -> None:
        """Each payload decodes, as the type today's code declares for it, without loss of what it says."""
        decoded = samples.decoded()
        assert len(decoded) == len(samples.fixture("payloads.json"))
        for (key, value), fixture in zip(decoded, samples.fixture("payloads.json"), strict=True):
            written = samples.encode(value)
            # Every field the previous version wrote reads back the same (today may add defaults).
            assert _subset(fixture["json"], written), key


class TestTodaysMessagesInThePreviousVersion:
    def test_the_previous_version_decodes_every_message_todays_code_writes(
        self, prev: previous.Previous, tmp_path: Path
    ) -> None:
        """The previous version's own code, in its own interpreter, decodes today's encoding of every
        recorded message kind."""
        messages = [{"key": key, "json": samples.encode(value)} for key, value in samples.decoded()]
        sent, answered = tmp_path / "today.json", tmp_path / "answers.json"
        sent.write_text(json.dumps(messages), encoding="utf-8")
        record.run_surface(prev, "decode", str(sent), str(answered))
        answers = json.loads(answered.read_text(encoding="utf-8"))
        assert len(answers) == len(messages)
        refused = {a["key"]: a["errors"] for a in answers if not a["ok"]}
        assert not refused, f"{prev.tag} cannot decode: {refused}"

    def test_the_previous_version_still_refuses_a_new_field_set(
        self, prev: previous.Previous, tmp_path: Path
    ) -> None:
        """The check above can fail: a message with a field the previous version does not know, set,
        is refused by a strict previous version and read by a tolerant one."""
        key = "activity:prepare_release:result"
        prepared = samples.first(key)
        data = samples.encode(prepared)
        data["aFieldFromTheFuture"] = 1
        sent, answered = tmp_path / "today.json", tmp_path / "answers.json"
        sent.write_text(json.dumps([{"key": key, "json": data}]), encoding="utf-8")
        record.run_surface(prev, "decode", str(sent), str(answered))
        [answer] = json.loads(answered.read_text(encoding="utf-8"))
        if prev.strict_decoding:
            assert answer["errors"] == [{"type": "extra_forbidden", "loc": ["aFieldFromTheFuture"]}]
        else:
            assert answer["ok"], answer


def _subset(before: object, after: object) -> bool:
    """Whether everything in ``before`` is in ``after`` with the same value (dicts may gain keys)."""
    if isinstance(before, dict) and isinstance(after, dict):
        return all(k in after and _subset(v, after[k]) for k, v in before.items())
    if isinstance(before, list) and isinstance(after, list):
        return len(before) == len(after) and all(_subset(b, a) for b, a in zip(before, after, strict=True))
    return before == after


def _record(into: Path, tag: str, commit: str) -> Path:
    path = into / "previous_version.toml"
    path.write_text(f'version = "0.0.0"\ntag = "{tag}"\ncommit = "{commit}"\n', encoding="utf-8")
    return path
