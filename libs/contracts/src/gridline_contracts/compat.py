"""Backward-compatibility check between two JSON schemas of the same (type, version).

A change is compatible when every message valid under the old schema is still read the same way by
a reader with the new schema: no field removed or retyped, no new required field, no enum value
dropped. Anything else needs a new VERSION.
"""

from __future__ import annotations

from typing import Any


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(root["$defs"][ref.split("/")[-1]], root)
    return schema


def _types(schema: dict[str, Any], root: dict[str, Any]) -> set[str]:
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        return set().union(*(_types(s, root) for s in schema["anyOf"]))
    if "enum" in schema:
        return {f"enum:{v}" for v in schema["enum"]}
    if "const" in schema:
        return {f"enum:{schema['const']}"}
    t = schema.get("type", "object" if "properties" in schema else "any")
    fmt = schema.get("format")
    return {f"{t}:{fmt}" if fmt else str(t)}


def incompatibilities(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    return _diff(old, new, old, new, path)


def _diff(
    old: dict[str, Any], new: dict[str, Any], oroot: dict[str, Any], nroot: dict[str, Any], path: str
) -> list[str]:
    problems: list[str] = []
    old, new = _resolve(old, oroot), _resolve(new, nroot)
    old_props: dict[str, Any] = old.get("properties", {})
    new_props: dict[str, Any] = new.get("properties", {})
    for name, osub in old_props.items():
        where = f"{path}.{name}" if path else name
        if name not in new_props:
            problems.append(f"{where}: removed")
            continue
        nsub = new_props[name]
        missing = _types(osub, oroot) - _types(nsub, nroot)
        if missing and "any" not in _types(nsub, nroot):
            problems.append(f"{where}: no longer accepts {sorted(missing)}")
        problems += _diff(osub, nsub, oroot, nroot, where)
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        problems.append(f"{path + '.' if path else ''}{name}: newly required")
    if "items" in old and "items" in new:
        problems += _diff(old["items"], new["items"], oroot, nroot, f"{path}[]")
    return problems
