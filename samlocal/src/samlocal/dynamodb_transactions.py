"""DynamoDB transactions of the local AWS endpoint that cost what they touch, not what their tables hold.

moto's TransactWriteItems deep-copies every table a transaction names before applying it, so that it can put
the copy back when one of its conditions fails: each transaction costs time in proportion to the whole table.
A table that gains an item per transaction (a marker per counted chunk of a job) makes a job's transactions
slower and slower, quadratic over the job; a table of 100,000 items costs seconds per transaction.

Here each table a transaction names holds, while moto applies it, only the items the transaction names: moto
copies (and on a failed condition restores) those alone, and they are written back into the whole table
afterwards, changed, restored, created or deleted. moto's own code checks the conditions and applies each
operation, exactly as before. The endpoint runs DynamoDB requests one at a time, so no other request sees a
table while it holds only those items.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

_Key = tuple[Any, Any]  # (hash key, range key or None), as moto's DynamoType values


def install() -> None:
    """Replace moto's DynamoDBBackend.transact_write_items (once per process)."""
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415 - an optional dependency

    original = DynamoDBBackend.transact_write_items
    if getattr(original, "only_named_items", False):
        return

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        return _with_named_items_only(self, transact_items, original)

    transact_write_items.only_named_items = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _with_named_items_only(backend: Any, transact_items: list[dict[str, Any]], apply: Callable[..., None]) -> None:
    named = _named_keys(backend, transact_items)
    whole = {}
    for name, keys in named.items():
        table = backend.tables[name]
        whole[name] = table.items
        table.items = _subset(table.items, keys)
    try:
        apply(backend, transact_items)
    finally:
        for name, keys in named.items():
            table = backend.tables[name]  # moto's copy of it when the transaction was cancelled
            _write_back(table.items, whole[name], keys)
            table.items = whole[name]


def _named_keys(backend: Any, transact_items: list[dict[str, Any]]) -> dict[str, set[_Key]]:
    """The keys of each existing table the transaction's operations name. An operation without a readable key
    names none: moto refuses it (and the transaction) before anything is written."""
    from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: PLC0415

    named: dict[str, set[_Key]] = {}
    for entry in transact_items:
        for operation in entry.values():
            if not isinstance(operation, Mapping):
                continue
            table = backend.tables.get(operation.get("TableName"))
            attributes = operation.get("Key") or operation.get("Item")
            if table is None or not isinstance(attributes, Mapping):
                continue
            try:
                hash_key = DynamoType(attributes[table.hash_key_attr])
                range_key = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            named.setdefault(table.name, set()).add((hash_key, range_key))
    return named


def _subset(items: Mapping[Any, Any], keys: set[_Key]) -> defaultdict[Any, Any]:
    """moto's layout: {hash: item} for a table without a range key, {hash: {range: item}} with one."""
    subset: defaultdict[Any, Any] = defaultdict(dict)
    for hash_key, range_key in keys:
        if range_key is None:
            if hash_key in items:
                subset[hash_key] = items[hash_key]
        elif range_key in items.get(hash_key, {}):
            subset[hash_key][range_key] = items[hash_key][range_key]
    return subset


def _write_back(subset: Mapping[Any, Any], items: defaultdict[Any, Any], keys: set[_Key]) -> None:
    for hash_key, range_key in keys:
        if range_key is None:
            if hash_key in subset:
                items[hash_key] = subset[hash_key]
            else:
                items.pop(hash_key, None)
        elif range_key in subset.get(hash_key, {}):
            items[hash_key][range_key] = subset[hash_key][range_key]
        elif hash_key in items:
            items[hash_key].pop(range_key, None)
