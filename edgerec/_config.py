"""Typed configuration: mappings (YAML, CLI flags) into frozen dataclasses.

An unknown key fails with a suggestion; values are coerced to the field's type (Enums, tuples,
bools from strings) and a value that does not fit names the key and the expected type. Never eval.

Every YAML edgerec reads (configs, recipes, pipelines, inventories, ``--set`` values) goes through
``parse_yaml``: PyYAML's safe loader (no Python tags), UTF-8 only, at most ``limits.MAX_YAML_BYTES``, and
refused before construction when aliases would expand it past ``limits.MAX_YAML_NODES`` nodes ("billion
laughs": a few kB that expand to gigabytes).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from . import limits
from .errors import ConfigError, suggest

__all__ = ["from_mapping", "to_mapping", "load_yaml", "parse_yaml", "merge"]

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_yaml(text: str | bytes, *, where: str = "YAML") -> Any:
    """One YAML document, safely (see the module doc); every failure is a ``ConfigError`` naming ``where``."""
    import yaml

    if len(text) > limits.MAX_YAML_BYTES:
        raise ConfigError(f"{where} is {len(text) / 2**20:.1f} MB; YAML files edgerec reads are at most "
                          f"{limits.MAX_YAML_BYTES / 2**20:g} MB", hint="is this the right file?")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                              hint="save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {' '.join(str(exc).split())}",
                          hint="only plain YAML is read: no !!python tags") from None
    except RecursionError:
        raise ConfigError(f"{where} nests too deeply to read", hint="is this the right file?") from None
    finally:
        loader.dispose()


def _check_expansion(root, where: str) -> None:
    """Count the nodes ``root`` has with every alias expanded (aliases share node objects), without expanding."""
    import yaml

    size: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in size and size[key] >= 0:
            continue
        if isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            kids = list(node.value)
        else:
            kids = []
        if not children_done:
            if size.get(key) == -1:
                raise ConfigError(f"{where}: an alias refers to a node that contains it", hint="remove the recursive alias")
            size[key] = -1  # in progress
            stack.append((node, True))
            stack.extend((k, False) for k in kids if size.get(id(k), -2) < 0)
            continue
        total = 1 + sum(size[id(k)] for k in kids)
        if total > limits.MAX_YAML_NODES:
            raise ConfigError(f"{where}: aliases expand this document to more than {limits.MAX_YAML_NODES} values "
                              "(limits.MAX_YAML_NODES)", hint="write the values out, or use fewer nested aliases")
        size[key] = total


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping document is a ``ConfigError``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", hint="check the path given to --config")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    data = parse_yaml(raw, where=str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values, not {type(data).__name__}")
    return data


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` wins, recursively for nested mappings; ``None`` in override keeps base."""
    out = dict(base)
    for key, value in override.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def from_mapping(cls: type[T], data: Mapping[str, Any], *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys raise ``ConfigError`` with a suggestion.

    >>> @dataclasses.dataclass(frozen=True)
    ... class C:
    ...     epochs: int = 3
    >>> from_mapping(C, {"epochs": "5"}).epochs
    5
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise ConfigError(f"unknown key '{key}' in {where}{suggest(name, fields)}")
        kwargs[name] = _coerce(value, hints[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def to_mapping(obj: Any) -> Any:
    """Dataclasses, Enums, Paths and tuples into plain YAML/JSON-ready values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_mapping(v) for k, v in obj.items()}
    return obj


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if errors else ConfigError(f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: invalid value {value!r}{suggest(str(value), map(str, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_mapping(tp, value, where=where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        valid = {str(m.value): m for m in tp}
        if str(value) in valid:
            return valid[str(value)]
        raise ConfigError(f"{where}: invalid value {value!r}{suggest(str(value), valid)}")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [_coerce(v, args[0], where) for v in value]
        elif origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            items = [_coerce(v, a, where) for v, a in zip(value, args)]
        else:
            items = [_coerce(v, args[0], where) for v in value] if args else list(value)
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in _TRUE:
            return True
        if str(value).lower() in _FALSE:
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(value, float) and value != int(value):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return out
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return str(value)
    if tp is Path:
        return Path(value)
    return value
