"""Strict files, tolerant messages: the one rule every model of ringmaster follows.

Every model forbids fields it does not know, so a typo in a plan, a fleet or our own code is an
error. But the same models travel between workers and clients of two adjacent versions during an
upgrade (the plan and schedule ride inside the prepared release, a status query's answer reaches an
older CLI, a cluster workflow's input is decoded by whichever worker picks up its task), and a field
one version adds must not stop the other from decoding it. So decoding a *payload* is tolerant:
validated with :data:`DECODING` as pydantic's context, every :class:`Message` drops the fields it does
not know, at every level, before pydantic would refuse them. Only the decoding of payloads passes
that context: ``ringmaster.converter`` (the Temporal data converter of every client and worker), the
snapshots stored in clusters and the records read back from histories. Loading a user's file never
does, so files stay strict.

The other half of the rule is for whoever adds a field: it gets a default, so what an older version
wrote still decodes. And while the version before still refuses unknown fields (0.1.0 did), a new
field is declared with :func:`added`: left out of the payload while it holds its default, so that
version decodes every message that does not use the new feature. ``docs/design.md`` ("Compatibility
between adjacent versions") says what else crosses versions, and ``tests/compat`` checks both halves.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

PAYLOAD = "ringmaster.payload"
"""The context key under which models decode tolerantly."""

DECODING: dict[str, Any] = {PAYLOAD: True}
"""The validation context for payloads: unknown fields are dropped instead of refused."""

ModelT = TypeVar("ModelT", bound=BaseModel)


def decoding(context: dict[str, Any] | None) -> bool:
    """Whether a validation with this context decodes a payload (and so tolerates unknown fields)."""
    return bool(context and context.get(PAYLOAD))


def decode(model: type[ModelT], data: Any) -> ModelT:
    """``model`` from a payload's decoded JSON (a dict), tolerating fields a newer version added."""
    return model.model_validate(data, context=DECODING)


def decode_json(model: type[ModelT], raw: str | bytes) -> ModelT:
    """``model`` from a payload's JSON text, tolerating fields a newer version added."""
    return model.model_validate_json(raw, context=DECODING)


@cache
def known_keys(model: type[BaseModel]) -> frozenset[str]:
    """Every key ``model`` reads a field from: attribute names, aliases and alias choices."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        if field.alias:
            keys.add(field.alias)
        choices = field.validation_alias
        if isinstance(choices, str):
            keys.add(choices)
        elif isinstance(choices, AliasChoices):
            keys.update(c for c in choices.choices if isinstance(c, str))
    return frozenset(keys)


class Message(BaseModel):
    """A model that refuses unknown fields, except when decoded from a payload (:data:`DECODING`).

    Subclasses may relax ``extra`` (``"ignore"`` for documents of other systems, such as Unleash's
    strategies) but never need to: the tolerance of payloads comes from here.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_unknown_when_decoding(cls, data: Any, info: ValidationInfo) -> Any:
        # Runs before pydantic checks extras, at every level (the context reaches nested models).
        if isinstance(data, dict) and decoding(info.context):
            known = known_keys(cls)
            if not known.issuperset(data):
                return {key: value for key, value in data.items() if key in known}
        return data


def added(*, default: Any = None, default_factory: Callable[[], Any] | None = None) -> Any:
    """A field added since the previous version, written to payloads only when it is not its default.

    A version that refuses unknown fields (0.1.0) then decodes every message that leaves the new
    field at its default; one that uses it needs a version that knows the field, which the release
    gets once every worker runs it. The default must never change afterwards: a reader fills it in
    for a field left out, so a changed default would change what an older message means.
    """
    if default_factory is not None:
        empty = default_factory()
        return Field(default_factory=default_factory, exclude_if=lambda value: value == empty)
    return Field(default=default, exclude_if=lambda value: value == default)
