"""One way to read every stage's configuration: typed dataclasses filled from YAML, with `--field value` overrides.

    treecot generate recipe.yaml --generate.search.max_rollouts 8 --problems.limit 16
    treecot demo --eval.limit 4 --generate.0.problems.limit 8
    treecot ablate recipe.yaml --ablation.rows '[dpo, cdpo]'

The stage configs are dataclasses (`treecot.recipe.Recipe` and its sections for generate / build / distill,
`treecot.demo.DemoConfig`, `treecot.ablate.AblationConfig`; the training scripts use TRL's `TrlParser`, the
same idea from TRL). `from_dict` fills one from plain data (a YAML document), checking every key and type and
naming the first wrong one by its dotted path (`generate.search.max_dept: unknown field; known fields: …`).
`parse_overrides` turns the command line's `--dotted.path value` pairs into nested data, and `merge` lays
them over the YAML before `from_dict` reads it, so a command-line value is checked exactly like the file's.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["from_dict", "merge", "parse_overrides"]


def _short_key(key: Any) -> str:
    from treecot.recipe import short_key

    return short_key(key)


def _short_repr(value: Any) -> str:
    from treecot.recipe import short_repr

    return short_repr(value)


def _coerce(value: Any, tp: Any, where: str, error: type[Exception]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        for arg in args[:-1]:  # the first alternative that accepts the value; the last one reports
            try:
                return _coerce(value, arg, where, error)
            except error:
                continue
        return _coerce(value, args[-1], where, error)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where, error)
    if origin is dict:
        _, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise error(f"{where}: expected a mapping, got {type(value).__name__}")
        return {k: _coerce(v, vt, f"{where}.{_short_key(k)}", error) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise error(f"{where}: expected a list, got {type(value).__name__}")
        (it,) = typing.get_args(tp)
        return [_coerce(v, it, f"{where}[{i}]", error) for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not (
        isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    ):
        raise error(f"{where}: expected {tp.__name__}, got {_short_repr(value)}")
    return value


def from_dict(cls: type, data: Any, where: str = "", error: type[Exception] = ValueError, skip=("path",)):
    """An instance of dataclass `cls` from plain data, every key and value checked against its type hints.

    Args:
        cls: The dataclass to fill; nested dataclass, `list[...]`, `dict[str, ...]` and `X | None` fields are
            filled recursively.
        data: A mapping (None reads as an empty one).
        where: The dotted path of `data` in the whole document, starting every message (`""` at the top).
        error: The exception type raised for a wrong key or value (e.g. `RecipeError`).
        skip: Fields that plain data may not set (filled in by the caller, e.g. the file's `path`).

    Returns:
        The instance; a field missing from `data` keeps its default, and a field without a default that is
        missing is an error naming it.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{where or 'top level'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.name not in skip]
    known = {f.name for f in fields}
    kwargs = {}
    for key, value in data.items():
        loc = f"{where}.{_short_key(key)}" if where else _short_key(key)
        if key not in known:
            raise error(f"{loc}: unknown field; known fields: {', '.join(sorted(known))}")
        kwargs[key] = _coerce(value, hints[key], loc, error)
    for f in fields:
        if f.name not in kwargs and f.default is f.default_factory is dataclasses.MISSING:
            raise error(f"{where or 'top level'}: missing field {f.name!r}")
    return cls(**kwargs)


def parse_overrides(argv: Sequence[str], error: type[Exception] = ValueError) -> dict[str, Any]:
    """Nested data from command-line overrides: `["--a.b", "8", "--c=[x, y]"]` → `{"a": {"b": 8}, "c": ["x", "y"]}`.

    A value is read as YAML (`8` is an integer, `true` a boolean, `[x, y]` a list, `null` unsets); a path part
    that is a number indexes a list (`--generate.0.problems.limit 8`); `-` in a name reads as `_`.
    """
    from treecot.recipe import parse_yaml

    out: dict[str, Any] = {}
    items = list(argv)
    i = 0
    while i < len(items):
        flag = items[i]
        if not flag.startswith("--") or len(flag) == 2:
            raise error(
                f"{flag!r}: expected an override --field value (e.g. --generate.search.max_rollouts 8)"
            )
        name, eq, text = flag[2:].partition("=")
        if not eq:
            if i + 1 >= len(items):
                raise error(f"--{name}: needs a value")
            text = items[i + 1]
            i += 1
        i += 1
        path = [p.replace("-", "_") for p in name.split(".")]
        if any(not p for p in path):
            raise error(f"--{name}: not a field path (fields joined by dots, e.g. generate.search.max_depth)")
        value = parse_yaml(text, f"--{name}", error) if text.strip() else text
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise error(f"--{name}: {part} is given both as a value and as a section")
        node[path[-1]] = value
    return out


def merge(
    data: Any, overrides: Mapping[str, Any], where: str = "", error: type[Exception] = ValueError
) -> Any:
    """`data` (a YAML document) with `overrides` laid over it: mappings merge key by key, anything else is
    replaced; a key that is a number indexes an existing list. `data` itself is not changed."""
    out = copy.deepcopy(data) if data is not None else {}
    for key, value in overrides.items():
        loc = f"{where}.{key}" if where else str(key)
        if isinstance(out, list):
            if not (isinstance(key, str) and key.isdigit() and int(key) < len(out)):
                raise error(f"{loc}: not an index of the list at {where or 'top level'} ({len(out)} items)")
            index = int(key)
            current = out[index]
            out[index] = merge(current, value, loc, error) if isinstance(value, Mapping) else value
            continue
        if not isinstance(out, dict):
            raise error(f"{where or 'top level'}: is a value, not a section; cannot set {loc}")
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, (dict, list)):
            out[key] = merge(current, value, loc, error)
        else:
            out[key] = copy.deepcopy(value)
    return out
