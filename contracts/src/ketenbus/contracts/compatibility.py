"""Is a change to a published event schema safe for every producer and consumer in the chain?

Services are deployed one at a time, so a published version must stay readable in both
directions: old readers with new events (they ignore unknown fields) and new readers with
old events. Within a version the only allowed change is a new *optional* field. Anything
else (a removed, retyped or newly required field, a changed enumeration or constraint, a
removed event type) needs a new version: `...ReferralReceived.v2`.
"""

from __future__ import annotations

from typing import Any

_DOCUMENTATION = {"title", "description", "examples", "default"}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root.get("$defs", {})[name]
    return schema


def _essence(schema: Any, root: dict[str, Any]) -> Any:
    """The schema with references inlined and documentation dropped, for comparison."""
    if isinstance(schema, dict):
        schema = _resolve(schema, root)
        return {k: _essence(v, root) for k, v in schema.items() if k not in _DOCUMENTATION}
    if isinstance(schema, list):
        return [_essence(item, root) for item in schema]
    return schema


def _compare(
    old: dict[str, Any],
    new: dict[str, Any],
    old_root: dict[str, Any],
    new_root: dict[str, Any],
    path: str,
) -> list[str]:
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    if "properties" not in old or "properties" not in new:
        if _essence(old, old_root) != _essence(new, new_root):
            return [f"{path}: type or constraints changed"]
        return []
    problems = []
    old_props, new_props = old["properties"], new["properties"]
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    for name, old_schema in old_props.items():
        where = f"{path}.{name}" if path else name
        if name not in new_props:
            problems.append(f"{where}: removed")
            continue
        if name not in old_required and name in new_required:
            problems.append(f"{where}: became required")
        problems += _compare(old_schema, new_props[name], old_root, new_root, where)
    for name in new_props.keys() - old_props.keys():
        if name in new_required:
            where = f"{path}.{name}" if path else name
            problems.append(f"{where}: added as a required field")
    return problems


def breaking_changes(
    published: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]
) -> list[str]:
    """Every incompatible difference between the published and the current schemas."""
    problems = []
    for event_type, old in sorted(published.items()):
        new = current.get(event_type)
        if new is None:
            problems.append(f"{event_type}: published event type removed")
            continue
        problems += [f"{event_type}: {p}" for p in _compare(old, new, old, new, "")]
    return problems
