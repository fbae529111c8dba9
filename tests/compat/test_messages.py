"""Every message tolerates what a newer version adds; every file and our own code stay strict.

The models checked are found, not listed: every pydantic model reachable from the signature of a
workflow (run, signals, queries, updates) or activity of ``workflows/`` and ``activities/``, plus the
heartbeat details (``surface.py``). A model added to a signature tomorrow is checked tomorrow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from policies import loading, messages
from tests.compat import samples, surface
from tests.support import fleets

UNKNOWN = "aFieldFromTheFuture"
MODELS = surface.models(samples.types().values())


def _errors(model: type[BaseModel], data: Any, context: dict[str, Any] | None) -> list[str] | None:
    """The error types of validating ``data`` as ``model``; None when it validates."""
    try:
        model.model_validate(data, context=context)
    except ValidationError as err:
        return [e["type"] for e in err.errors()]
    return None


class TestTheSurface:
    def test_every_kind_of_message_is_found(self) -> None:
        """Inputs and results of workflows and activities, signals, updates, queries and heartbeats."""
        keys = samples.types()
        assert {key.split(":")[0] for key in keys} == {
            "workflow",
            "activity",
            "signal",
            "update",
            "query",
            "heartbeat",
        }
        assert {
            "workflow:ReleaseWorkflow:input",
            "workflow:ClusterRolloutWorkflow:input",
            "activity:prepare_release:result",
            "signal:ReleaseWorkflow:cluster_progress",
            "update:ReleaseWorkflow:approve:input",
            "query:ReleaseWorkflow:status:result",
            "heartbeat:analyze",
        } <= set(keys)

    def test_the_models_inside_the_messages_are_reached(self) -> None:
        """The walk goes through fields, unions, lists and dicts: the plan inside a prepared release."""
        names = {name.split(":")[1] for name in MODELS}
        assert {"ReleasePlan", "Schedule", "Strategy", "ClusterSnapshot", "FlagServer", "Check"} <= names

    @pytest.mark.parametrize("name", sorted(MODELS))
    def test_every_model_is_a_message(self, name: str) -> None:
        """Strict when built, tolerant when decoded: the rule comes from one base class."""
        assert issubclass(MODELS[name], messages.Message), f"{name} does not derive from messages.Message"


class TestAnUnknownFieldIsDropped:
    @pytest.mark.parametrize("name", sorted(MODELS))
    def test_decoding_a_payload_drops_a_field_this_version_does_not_know(self, name: str) -> None:
        """A real instance (from the previous version's payloads) plus a field from a newer version
        decodes as the instance; without the payload context the same data is refused."""
        model = MODELS[name]
        sample = samples.instances().get(model)
        if sample is None:
            # Nothing of this model in the recorded paths: data of just the unknown field. Built,
            # it is refused as extra (so validation reaches the fields: no validator stops it
            # before); decoded, the same validation runs without that refusal.
            if model.model_config.get("extra") == "forbid":
                assert "extra_forbidden" in (_errors(model, {UNKNOWN: 1}, None) or [])
            assert "extra_forbidden" not in (_errors(model, {UNKNOWN: 1}, messages.DECODING) or [])
            return
        data = {**sample.model_dump(mode="json", by_alias=True), UNKNOWN: {"nested": [1, 2]}}
        assert messages.decode(model, data) == sample
        if model.model_config.get("extra") == "forbid":
            assert _errors(model, data, None) == ["extra_forbidden"]

    def test_through_the_data_converter_at_every_level(self) -> None:
        """The converter of every client and worker decodes a prepared release whose plan, rings and
        schedule each carry a field this version does not know."""
        key = "activity:prepare_release:result"
        prepared = samples.first(key)
        data = samples.encode(prepared)
        data[UNKNOWN] = 1
        data["plan"][UNKNOWN] = 1
        data["plan"]["rings"][0][UNKNOWN] = 1
        data["schedule"][UNKNOWN] = 1
        assert samples.decode(key, data) == prepared


class TestEveryDecoderIsTolerant:
    def test_nothing_decodes_payloads_with_the_sdks_strict_converter(self) -> None:
        """Clients, workers, the sandbox, scripts and tests all use ``ringmaster.converter``: a client
        built with the SDK's converter would refuse what a newer worker writes."""
        here = Path(__file__).resolve()
        folders = ("policies", "activities", "workflows", "ringmaster", "sandbox", "scripts", "tests")
        users = [
            str(path.relative_to(here.parents[2]))
            for folder in folders
            for path in (here.parents[2] / folder).rglob("*.py")
            if path != here and "pydantic_data_converter" in path.read_text(encoding="utf-8")
        ]
        assert sorted(users) == ["ringmaster/converter.py", "tests/compat/surface.py"]


class TestFilesStayStrict:
    def test_a_plan_file_with_an_unknown_field_is_refused_by_name(self) -> None:
        """The model a payload decodes tolerantly is refused with the field's name in a user's file."""
        plan = fleets.EXAMPLE_PLAN.read_text(encoding="utf-8")
        text = plan.replace("\nrings:", f"\n{UNKNOWN}: 1\nrings:", 1)
        with pytest.raises(loading.ConfigError) as caught:
            loading.parse_plan(text, "plan.yaml")
        assert any(UNKNOWN in p.message for p in caught.value.problems), caught.value.problems

    def test_our_own_code_building_a_message_with_a_typo_is_refused(self) -> None:
        """Outside a payload, a misspelt field is an error, not silently dropped."""
        model = MODELS["activities.models:ReleaseRef"]
        with pytest.raises(ValidationError, match=r"rnig\s+Extra inputs are not permitted"):
            model.model_validate({"service": "api", "version": "v2", "image": "i", "rnig": "beta"})


class TestFieldsAddedSinceThePreviousVersion:
    def test_every_new_field_has_a_default(self) -> None:
        """A message the previous version wrote lacks the field: it must decode all the same."""
        required = [
            f"{name}.{field}"
            for name, model, before in _matched()
            for field, info in model.model_fields.items()
            if field not in before["fields"] and info.is_required()
        ]
        assert not required, f"new fields without a default: {required}"

    def test_no_field_the_previous_version_requires_is_gone(self) -> None:
        """The previous version must still find every field it cannot do without."""
        gone = [
            f"{name}.{field}"
            for name, model, before in _matched()
            for field, info in before["fields"].items()
            if info["required"] and field not in model.model_fields
        ]
        assert not gone, f"fields the previous version requires, gone: {gone}"

    def test_no_literal_gains_a_value_the_previous_version_does_not_know(self) -> None:
        """A phase, a state or a stage the previous version does not know is refused by it whatever
        its tolerance of fields: each new value is listed, with why it never reaches that version,
        in ``previous_version.toml`` (``[new_values]``)."""
        added = {
            f"{name}.{field}": [v for v in surface.literals(info.annotation) if v not in known]
            for name, model, before in _matched()
            for field, info in model.model_fields.items()
            if field in before["fields"]
            for known in [before["fields"][field]["literals"]]
        }
        added = {field: values for field, values in added.items() if values}
        assert added == samples.previous.record().get("new_values", {})

    def test_new_fields_are_left_out_at_their_default_while_the_previous_version_is_strict(self) -> None:
        """A strict previous version (0.1.0) decodes a message that does not use a new field only if
        the field is not written: every new field is declared with ``messages.added``."""
        if not samples.previous.record().get("strict_decoding"):
            pytest.skip("the previous version decodes unknown fields tolerantly")
        written = [
            f"{name}.{field}"
            for name, model, before in _matched()
            for field, info in model.model_fields.items()
            if field not in before["fields"] and info.exclude_if is None
        ]
        assert not written, f"new fields written even at their default: {written}"


def _matched() -> list[tuple[str, type[BaseModel], dict[str, Any]]]:
    """Today's models beside the previous version's view of them (by module and name, or by name
    alone when the class moved module)."""
    before = samples.fixture("schema.json")
    by_qualname: dict[str, list[str]] = {}
    for name in before:
        by_qualname.setdefault(name.split(":")[1], []).append(name)
    matched = []
    for name, model in MODELS.items():
        if name in before:
            matched.append((name, model, before[name]))
            continue
        moved = by_qualname.get(name.split(":")[1], [])
        if len(moved) == 1 and moved[0] not in MODELS:
            matched.append((name, model, before[moved[0]]))
    assert len(matched) > 50, "the previous version's schema matches hardly any model: is it stale?"
    return matched
