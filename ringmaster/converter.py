"""ringmaster's Temporal data converter: pydantic's, decoding every payload tolerantly.

Temporal's pydantic converter validates a payload as the type its receiver declares, with no
context, so a model that forbids unknown fields refuses a payload written by a newer version. This
one validates with ``policies.messages.DECODING``: each :class:`policies.messages.Message` then drops
the fields it does not know, so workers and clients of adjacent versions decode each other's
workflow and activity inputs and results, signals, updates, queries and heartbeat details. Encoding is
unchanged (pydantic's JSON, every field written), so histories read the same as before.

Every client and worker must use :data:`data_converter` (``ringmaster.temporal.connect`` does); a
client built with the SDK's ``pydantic_data_converter`` still works but is strict.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

from policies import messages


class TolerantJSONPayloadConverter(PydanticJSONPlainPayloadConverter):
    """``json/plain`` payloads, validated with the payload context (unknown fields dropped)."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        """The payload's JSON validated as ``type_hint`` (anything when None), tolerantly."""
        hint: Any = type_hint if type_hint is not None else Any
        try:
            adapter: TypeAdapter[Any] = self._type_adapter(hint)
        except TypeError:  # an unhashable hint: not cached, as the SDK's converter does
            adapter = TypeAdapter(hint)
        return adapter.validate_json(payload.data, context=messages.DECODING)


class TolerantPayloadConverter(CompositePayloadConverter):
    """The SDK's default payload converters, with :class:`TolerantJSONPayloadConverter` for JSON."""

    def __init__(self) -> None:
        tolerant = TolerantJSONPayloadConverter()
        super().__init__(
            *(
                tolerant if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


data_converter = DataConverter(payload_converter_class=TolerantPayloadConverter)
"""The data converter of every ringmaster client and worker."""
