"""ringmaster's search attributes on the Temporal namespace: registered at start, or only checked.

A release workflow that upserts an unregistered key fails its workflow tasks until the key exists,
so the worker makes sure of them before it polls. On a self-hosted Temporal (and the dev server) it
registers what is missing. On Temporal Cloud namespaces' search attributes are created with Cloud's
own tooling (``tcld``, the web UI or Terraform), and a worker's API key may not add them: with
``RINGMASTER_REGISTER_SEARCH_ATTRIBUTES=false``, or when the server refuses the registration, the
worker only checks and stops naming each missing key, its type and the command that creates it.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import GetSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows import search

_REFUSED = (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED)
"""How a server answers a caller who may not administer search attributes (Temporal Cloud's
operator service answers one or the other, depending on the call)."""

_TYPE_NAMES = {
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST: "KeywordList",
}


class SearchAttributesMissing(Exception):
    """The namespace lacks some of ringmaster's search attributes and this worker will not add them."""

    def __init__(self, namespace: str, missing: dict[str, IndexedValueType.ValueType], why: str) -> None:
        self.namespace = namespace
        self.missing = sorted(missing)
        listed = ", ".join(
            f"{name} ({_TYPE_NAMES.get(missing[name], missing[name])})" for name in self.missing
        )
        flags = " ".join(
            f"--search-attribute '{name}={_TYPE_NAMES.get(missing[name], missing[name])}'"
            for name in self.missing
        )
        super().__init__(
            f"Temporal namespace {namespace!r} lacks ringmaster's search attributes {listed} ({why}); "
            f"create them, e.g. on Temporal Cloud `tcld namespace search-attributes add "
            f"--namespace {namespace} {flags}` (self-hosted: `temporal operator search-attribute create`), "
            f"then start the worker again"
        )


async def _existing(client: Client) -> set[str]:
    """The namespace's custom search attribute names (the operator service where allowed)."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        return set(listed.custom_attributes)
    except RPCError as err:
        if err.status not in _REFUSED:
            raise
    # The frontend's own list (system and custom keys alike) needs no operator permission.
    answer = await client.workflow_service.get_search_attributes(GetSearchAttributesRequest())
    return set(answer.keys)


async def missing_search_attributes(client: Client) -> dict[str, IndexedValueType.ValueType]:
    """ringmaster's keys the namespace does not have, each with the type it must be registered as."""
    existing = await _existing(client)
    # Each key with its own type: RingmasterClusters is a keyword list, and registered as a keyword a
    # release's list of clusters would not be searchable by one of them.
    return {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in search.ALL
        if key.name not in existing
    }


async def ensure_search_attributes(client: Client, *, register: bool = True) -> None:
    """Make sure every key exists: register the missing ones, or (``register`` False) only check.

    Raises :class:`SearchAttributesMissing` naming the missing keys when ``register`` is False or the
    server refuses to register them.
    """
    missing = await missing_search_attributes(client)
    if not missing:
        return
    if not register:
        raise SearchAttributesMissing(
            client.namespace, missing, "RINGMASTER_REGISTER_SEARCH_ATTRIBUTES=false"
        )
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(search_attributes=missing, namespace=client.namespace)
        )
    except RPCError as err:
        if err.status not in _REFUSED:
            raise
        raise SearchAttributesMissing(
            client.namespace, missing, f"the server refused to register them: {err.message}"
        ) from None
