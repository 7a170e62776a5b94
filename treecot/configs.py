"""One way to read every stage's configuration: typed dataclasses filled from YAML, with `--field value` overrides.

    treecot generate recipe.yaml --generate.search.max_rollouts 8 --problems.limit 16
    treecot demo --eval.limit 4 --generate.0.problems.limit 8
    treecot ablate recipe.yaml --ablation.rows '[dpo, cdpo]'

The stage configs are dataclasses (`treecot.recipe.Recipe` and its sections for generate / build / distill,
`treecot.demo.DemoConfig`, `treecot.ablate.AblationConfig`, `treecot.evaluation.config.EvalConfig`; the training scripts use TRL's `TrlParser`, the
same idea from TRL). `from_dict` fills one from plain data (a YAML document), checking every key and type and
naming the first wrong one by its dotted path (`generate.search.max_dept: unknown field; known fields: …`);
`read_config` does it for a YAML file or a mapping, with overrides, naming the file in every message.
`parse_overrides` turns the command line's `--dotted.path value` pairs into nested data, and `merge` lays
them over the YAML before `from_dict` reads it, so a command-line value is checked exactly like the file's.

Bounded inputs: user YAML (recipes, patterns files, demo and ablation configs; `load_yaml`) is at most
`MAX_YAML_BYTES`, UTF-8 text, at most `MAX_YAML_DEPTH` levels deep and, written out with every alias (`*name`)
expanded, at most `MAX_YAML_NODES` values and `MAX_YAML_EXPANDED_CHARS` characters, so a few hundred bytes of
nested aliases cannot expand into gigabytes.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import os
import reprlib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

__all__ = [
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_EXPANDED_CHARS",
    "MAX_YAML_NODES",
    "RecipeError",
    "clip",
    "from_dict",
    "load_yaml",
    "merge",
    "parse_overrides",
    "parse_yaml",
    "short_key",
    "short_repr",
]


#: Largest YAML file treecot reads (recipes, patterns files): real ones are a few KiB.
MAX_YAML_BYTES = 1 << 20
#: Most values (mappings, lists, scalars) in a YAML document with every alias expanded.
MAX_YAML_NODES = 100_000
#: Most characters of a YAML document's scalars with every alias expanded (aliases may repeat a long text).
MAX_YAML_EXPANDED_CHARS = 4 * MAX_YAML_BYTES
#: Deepest nesting of mappings and lists in a YAML document (recipes are about 5 levels deep).
MAX_YAML_DEPTH = 64


class RecipeError(ValueError):
    """A field of a recipe or another config is missing, unknown or has a bad value; the message names it."""


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 2
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 4


def short_repr(value: Any) -> str:
    """`repr(value)` cut to a few dozen characters (messages quote user values; those may be huge)."""
    return _REPR.repr(value)


def short_key(key: Any) -> str:
    """A mapping key for a field path in a message (`generate.search.<key>`): unquoted, shortened."""
    return short_repr(key)[1:-1] if isinstance(key, str) else short_repr(key)


def clip(text: str, limit: int = 300) -> str:
    """`text` cut to `limit` characters (messages quote parser errors; those may be long)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- bounded YAML


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node, where: str, error: type[Exception]) -> None:
    """Refuse a composed YAML graph that, with every alias expanded, is too big, too deep or cyclic.

    An alias is the same node object as its anchor, so sizes are memoised per node: a 500-byte alias bomb
    is measured in microseconds instead of being expanded into gigabytes."""
    nodes: dict[int, int] = {}  # id(node) -> expanded values
    chars: dict[int, int] = {}  # id(node) -> expanded scalar characters
    depth: dict[int, int] = {}  # id(node) -> nesting depth below it
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        kids = _yaml_children(node)
        if finished:
            visiting.discard(key)
            n = 1 + sum(nodes[id(k)] for k in kids)
            c = (len(node.value) if isinstance(node, yaml.ScalarNode) else 0) + sum(
                chars[id(k)] for k in kids
            )
            d = 1 + max((depth[id(k)] for k in kids), default=0)
            if n > MAX_YAML_NODES or c > MAX_YAML_EXPANDED_CHARS:
                what = f"{n:,} values" if n > MAX_YAML_NODES else f"{c:,} characters"
                limit = (
                    f"{MAX_YAML_NODES:,} values (treecot.configs.MAX_YAML_NODES)"
                    if n > MAX_YAML_NODES
                    else f"{MAX_YAML_EXPANDED_CHARS:,} characters (treecot.configs.MAX_YAML_EXPANDED_CHARS)"
                )
                raise error(
                    f"{where}: with its aliases (*name) expanded the YAML holds at least {what}, more "
                    f"than the limit of {limit}; write the values out instead of nesting aliases"
                )
            if d > MAX_YAML_DEPTH:
                raise error(
                    f"{where}: the YAML is nested more than {MAX_YAML_DEPTH} levels deep "
                    "(treecot.configs.MAX_YAML_DEPTH)"
                )
            nodes[key], chars[key], depth[key] = n, c, d
            continue
        if key in nodes:
            continue
        if key in visiting:
            mark = node.start_mark
            raise error(
                f"{where}: line {mark.line + 1}: an alias refers to a value that contains it (a cycle)"
            )
        visiting.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in nodes)


def parse_yaml(text: str, where: str, error: type[Exception] = RecipeError) -> Any:
    """Parse one YAML document safely: no Python objects, and the size checks of `load_yaml`.

    For YAML text that does not come from a file (e.g. model-card front matter).

    Args:
        text (`str`):
            The YAML document.
        where (`str`):
            Starts every message (a file name: "recipe r.yaml").
        error (`type[Exception]`, *optional*, defaults to `RecipeError`):
            The exception raised, with a short message.
    """
    if len(text) > MAX_YAML_BYTES:
        raise error(
            f"{where}: {len(text):,} characters of YAML, more than the limit of {MAX_YAML_BYTES:,} "
            "(treecot.configs.MAX_YAML_BYTES)"
        )
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    stream = io.StringIO(text)
    stream.name = where  # positions in YAML errors read `in "<where>", line 3, column 7`
    loader = loader_cls(stream)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as e:
            raise error(f"{where}: not valid YAML: {clip(str(e))}") from None
        except RecursionError:
            raise error(f"{where}: the YAML is nested too deeply") from None
        if node is None:
            return None
        _check_expansion(node, where, error)
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as e:
            raise error(f"{where}: not valid YAML: {clip(str(e))}") from None
        except (ValueError, TypeError, RecursionError) as e:  # e.g. an integer of 5,000 digits
            raise error(f"{where}: a value cannot be read: {clip(str(e) or type(e).__name__)}") from None
    finally:
        loader.dispose()


def load_yaml(path: str | os.PathLike, what: str = "recipe", error: type[Exception] = RecipeError) -> Any:
    """Read a user's YAML file (recipe, patterns, demo config) with bounds; the data, or `error`.

    The file must be at most `MAX_YAML_BYTES`, UTF-8 text, one YAML document whose aliases expand to at
    most `MAX_YAML_NODES` values / `MAX_YAML_EXPANDED_CHARS` characters, at most `MAX_YAML_DEPTH` deep.

    Args:
        path (`str` or `os.PathLike`):
            The YAML file.
        what (`str`, *optional*, defaults to `"recipe"`):
            Every message starts with `what` and the file's path (`recipe r.yaml: not valid YAML: …`).
        error (`type[Exception]`, *optional*, defaults to `RecipeError`):
            The exception raised.
    """
    where = f"{what} {os.fspath(path)}"
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise error(f"{where}: does not exist") from None
    except OSError as e:
        raise error(f"{where}: cannot be read ({e.strerror or e})") from None
    if len(raw) > MAX_YAML_BYTES:
        raise error(
            f"{where}: larger than {MAX_YAML_BYTES:,} bytes (treecot.configs.MAX_YAML_BYTES); "
            f"a {what} is a small YAML text file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(
            f"{where}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
            f"a {what} is a YAML text file"
        ) from None
    if "\x00" in text:
        raise error(f"{where}: holds a NUL byte at offset {text.index(chr(0))}; a {what} is a YAML text file")
    return parse_yaml(text, where, error)


# --------------------------------------------------------------------------- dataclasses from data


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
        return {k: _coerce(v, vt, f"{where}.{short_key(k)}", error) for k, v in value.items()}
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
        raise error(f"{where}: expected {tp.__name__}, got {short_repr(value)}")
    return value


def from_dict(cls: type, data: Any, where: str = "", error: type[Exception] = ValueError, skip=("path",)):
    """An instance of dataclass `cls` from plain data, every key and value checked against its type hints.

    Args:
        cls (`type`):
            The dataclass to fill; nested dataclass, `list[...]`, `dict[str, ...]` and `X | None` fields are
            filled recursively.
        data (`Any`):
            A mapping (None reads as an empty one).
        where (`str`, *optional*, defaults to `""`):
            The dotted path of `data` in the whole document, starting every message (`""` at the top).
        error (`type[Exception]`, *optional*, defaults to `ValueError`):
            The exception type raised for a wrong key or value (e.g. `RecipeError`).
        skip (`tuple[str, ...]`, *optional*, defaults to `("path",)`):
            Fields that plain data may not set (filled in by the caller, e.g. the file's `path`).

    Returns:
        `cls`: the instance; a field missing from `data` keeps its default, and a field without a default that is
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
        loc = f"{where}.{short_key(key)}" if where else short_key(key)
        if key not in known:
            raise error(f"{loc}: unknown field; known fields: {', '.join(sorted(known))}")
        kwargs[key] = _coerce(value, hints[key], loc, error)
    for f in fields:
        if f.name not in kwargs and f.default is f.default_factory is dataclasses.MISSING:
            raise error(f"{where or 'top level'}: missing field {f.name!r}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:  # the class's own checks (`__post_init__`), located
        if isinstance(e, error):
            raise
        raise error(f"{where or 'top level'}: {clip(str(e))}") from None
    vars(obj)[_FIELDS_SET] = frozenset(kwargs)
    return obj


_FIELDS_SET = "_treecot_fields_set"


def fields_set(obj: Any) -> frozenset[str]:
    """The fields of a dataclass instance that were set, not left at their defaults.

    A field counts as set when the data `from_dict` read gave it (even to its default value, as a YAML file
    that spells a default out), or when it now differs from its default (set in code after loading).

    Args:
        obj (`Any`):
            A dataclass instance, made by `from_dict` or directly.

    Returns:
        `frozenset[str]`: the names of the fields that were set.
    """
    given = vars(obj).get(_FIELDS_SET, frozenset())
    changed = set()
    for f in dataclasses.fields(obj):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            changed.add(f.name)
            continue
        if getattr(obj, f.name) != default:
            changed.add(f.name)
    return frozenset(given | changed)


def parse_overrides(argv: Sequence[str], error: type[Exception] = ValueError) -> dict[str, Any]:
    """Nested data from command-line overrides: `["--a.b", "8", "--c=[x, y]"]` → `{"a": {"b": 8}, "c": ["x", "y"]}`.

    A value is read as YAML (`8` is an integer, `true` a boolean, `[x, y]` a list, `null` unsets); a path part
    that is a number indexes a list (`--generate.0.problems.limit 8`); `-` in a name reads as `_`.

    Args:
        argv (`Sequence[str]`):
            The overrides: `--field value` or `--field=value`.
        error (`type[Exception]`, *optional*, defaults to `ValueError`):
            The exception raised for a malformed override.
    """
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
        if isinstance(node.get(path[-1]), dict):
            raise error(f"--{name}: {path[-1]} is given both as a section and as a value")
        node[path[-1]] = value
    return out


def merge(
    data: Any, overrides: Mapping[str, Any], where: str = "", error: type[Exception] = ValueError
) -> Any:
    """`data` with `overrides` laid over it: mappings merge key by key, anything else is replaced; a key
    that is a number indexes an existing list. `data` itself is not changed.

    Args:
        data (`Any`):
            A YAML document.
        overrides (`Mapping[str, Any]`):
            Nested fields (e.g. from `parse_overrides`).
        where (`str`, *optional*, defaults to `""`):
            The dotted path of `data` in the whole document, starting every message.
        error (`type[Exception]`, *optional*, defaults to `ValueError`):
            The exception raised for an override that does not fit `data`.
    """
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


def read_config(
    source: str | os.PathLike | Mapping[str, Any],
    cls: type,
    what: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    error: type[Exception] = ValueError,
    hint: str = "",
) -> tuple[Any, str]:
    """Read a config (a YAML file or a mapping) into dataclass `cls`, with `overrides` laid over it.

    Every field is checked by `from_dict`, and an error names the file (or `what`) and the field.

    Args:
        source (`str`, `os.PathLike` or `Mapping[str, Any]`):
            The YAML path (read by `load_yaml`: bounded) or the data.
        cls (`type`):
            The dataclass to read into; a field `path`, when it has one, is set to the file's path (None for a
            mapping).
        what (`str`):
            What the config is, for messages ("demo config").
        overrides (`Mapping[str, Any]`, *optional*):
            Nested fields, e.g. from `parse_overrides`; a None value sets a field to null.
        error (`type[Exception]`, *optional*, defaults to `ValueError`):
            The exception raised.
        hint (`str`, *optional*, defaults to `""`):
            Appended to the message when the file does not exist.

    Returns:
        `tuple[Any, str]`: `(config, where)`, `where` being the file's path (or `what` for a mapping).

    Raises:
        error: the file does not exist or is not a mapping, or a field is unknown or ill-typed.
    """
    if isinstance(source, Mapping):
        data, path = copy.deepcopy(dict(source)), None
    else:
        path = str(source)
        if not os.path.isfile(path):
            raise error(f"{what} {path!r} does not exist{hint}")
        data = load_yaml(path, what, error=error) or {}
        if not isinstance(data, dict):
            raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    where = path or what
    try:
        data = merge(data, overrides or {}, error=error)
        cfg = from_dict(cls, data, "", error)
    except error as e:
        raise error(f"{where}: {e}") from None
    if "path" in {f.name for f in dataclasses.fields(cls)}:
        cfg.path = path
    return cfg, where
