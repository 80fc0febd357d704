"""YAML recipes loaded into typed dataclasses, with ``--set key.sub=value`` overrides.

Each command owns a dataclass (nested dataclasses allowed). ``load_config(cls, path, overrides)``
reads the YAML, applies the overrides, and checks every key and type, so a typo in a recipe is an
error naming the key rather than a silently ignored setting.
"""

import dataclasses
import types
import typing
from pathlib import Path

import yaml

from tether.core.errors import TetherError


def load_config(cls, path=None, overrides: list[str] | None = None):
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise TetherError(f"config file not found: {path}")
        try:
            with open(path, encoding="utf-8") as f:
                raw = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            raise TetherError(f"{where}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
        except UnicodeDecodeError:
            raise TetherError(f"{path}: not UTF-8 text") from None
        if not isinstance(raw, dict):
            raise TetherError(f"{path}: a config must be a YAML mapping")
    apply_overrides(raw, overrides)
    return from_dict(cls, raw, where=str(path) if path else "config")


class SetValue(str):
    """The text of a ``--set`` value, with its YAML reading (or the YAML error) kept for the field's type.

    A string field takes the text as typed when YAML reads it as something else or not at all, so
    ``--set data.image_pattern={image_id}.png`` needs no quoting; other fields take the YAML value."""

    def __new__(cls, text: str, item: str):
        value = super().__new__(cls, text)
        value.item = item
        try:
            value.parsed, value.error = yaml.safe_load(text), None
        except yaml.YAMLError as e:
            value.parsed, value.error = None, str(getattr(e, "problem", None) or e)
        return value

    def for_field(self, accepts_str: bool, accepts_none: bool):
        if accepts_str and (self.error or not isinstance(self.parsed, str | type(None))):
            return str(self)
        if self.parsed is None and not accepts_none and accepts_str:
            return str(self)  # an empty value for a string field
        if self.error:
            raise TetherError(f"--set {self.item}: invalid YAML value ({self.error})")
        return self.parsed


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """``--set key.sub=value`` items (``SetValue``: read as YAML, or as text by a string field) written
    into ``raw``, which is returned."""
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TetherError(f"--set expects key=value, got '{item}'")
        _set_dotted(raw, key.strip(), SetValue(value, item))
    return raw


def _set_dotted(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for name in parents:
        node = node.setdefault(name, {})
        if not isinstance(node, dict):
            raise TetherError(f"--set {dotted}: '{name}' is not a section")
    node[leaf] = value


def from_dict(cls, data: dict, where: str = "config"):
    if not isinstance(data, dict):
        raise TetherError(f"{where}: expected a mapping for {cls.__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TetherError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(known)}")
    values = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**values)


def _coerce(hint, value, where: str):
    origin = typing.get_origin(hint)
    if isinstance(value, SetValue):
        options = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
        value = value.for_field(str in options, type(None) in options)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, where)
            except TetherError as e:
                errors.append(str(e))
        raise TetherError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise TetherError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (typing.Any,)
        items = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise TetherError(f"{where}: expected a mapping, got {value!r}")
        return _plain(dict(value))
    if hint is typing.Any:
        return _plain(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # PyYAML reads "3e-3" (no dot) as a string
            return float(value)
        except ValueError:
            raise TetherError(f"{where}: expected float, got {value!r}") from None
    if hint is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(hint, type) and not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise TetherError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    return value


def _plain(value):
    """``value`` with the ``SetValue`` texts inside it (``--set train.extra.key=...``) read as YAML."""
    if isinstance(value, SetValue):
        return value.for_field(False, True)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)
