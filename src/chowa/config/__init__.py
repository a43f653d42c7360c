"""Command configs: dataclass schemas, loaded from YAML + `--flags` + `key.sub=value` overrides through OmegaConf.

Every command declares a dataclass whose fields carry their help text (`option(default, "help")`); the schemas
live in this package's modules, one per stage (`chowa.config.sft`, `chowa.config.ppo`, ...), which import
neither torch nor transformers, so `chowa --help` starts at once. `load_config` merges the schema's defaults,
an optional YAML file, and command-line values, and fails before any work with a `ChowaError` naming the key at
fault (unknown key, with "did you mean" and renamed keys; wrong type; missing required value; value not among
the allowed choices; a rule of the schema's own `__post_init__`). `save_config` writes the resolved config
atomically as `config.yaml` in an output folder.

Run as (from Python):
    cfg = load_config(TokenizerTrainConfig, "configs/tiny/tokenizer.yaml", ["vocab_size=4000"])
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from chowa.errors import ChowaError
from chowa.files import atomic_write_text

T = TypeVar("T")
REQUIRED = MISSING  # a field whose default is REQUIRED must be set by the YAML file or an override
DATA_SOURCES = ("files or globs (.json, .jsonl, .gz, .parquet, .arrow), datasets save_to_disk folders or "
                "hf:NAME[:CONFIG][@SPLIT]")
COLUMNS_HELP = ("Column mapping ROLE -> NAME: read the data's column NAME as the field ROLE chowa expects, e.g. "
                "columns.instruction=prompt columns.output=response (see chowa.data.records).")


def option(default: Any = REQUIRED, help: str = "", choices: tuple[str, ...] | None = None, *,
           minimum: float | None = None, maximum: float | None = None, above: float | None = None,
           metavar: str | None = None, repeat: bool = False, positional: bool = False,
           group: str | None = None, flag: str | None = None) -> Any:
    """A dataclass field with its help text (shown by `--help`) and, optionally, the allowed values: `choices`, or a
    range for a number (`minimum` and `maximum` inclusive, `above` exclusive), checked by `load_config`.

    The keyword-only arguments shape the command-line flag only: `metavar` names its value, `repeat` makes a list
    flag take one value per use (`--stop A --stop B`), `positional` makes the field the command's positional
    arguments, `group` lists the flag under that heading in `--help`, `flag` replaces the `--field-name` spelling.
    A field whose default is "" (unset) accepts "" besides its `choices`.
    """
    metadata = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum, "above": above,
                "metavar": metavar, "repeat": repeat, "positional": positional, "group": group, "flag": flag}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: dataclasses.replace(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def load_config(
    schema: type[T],
    path: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
    flags_source: str = "command-line option",
) -> T:
    """Merge schema defaults < YAML file < `flags` (command-line options, or what `flags_source` says they are) <
    `key=value` overrides, validate, and return a `schema` instance."""
    where = "command-line override"
    try:
        cfg = OmegaConf.structured(schema)
        if path is not None:
            where = str(path)
            cfg = OmegaConf.merge(cfg, _read_yaml(Path(path)))
        if flags:
            where = flags_source
            cfg = OmegaConf.merge(cfg, flags)
        if overrides:
            where = "command-line override"
            _check_override_syntax(overrides)
            cfg.merge_with_dotlist(list(overrides))
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise ChowaError(f"config: required value missing for {', '.join(repr(k) for k in missing)}; "
                             f"{_how_to_set(schema, missing[0])}")
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise ChowaError(_describe_omegaconf_error(exc, where, schema, overrides or [])) from None
    except yaml.YAMLError as exc:  # a value OmegaConf parses as YAML, e.g. key=[unclosed
        raise ChowaError(f"config: a value (from {where}) is not valid YAML: {str(exc).splitlines()[0]}") from None
    _check_values(obj)
    return obj


def text_column(columns: dict[str, str], key: str = "columns") -> str:
    """The column a text reader (pretraining, tokenizer) reads: `columns.text`, else `text`; a text reader has no
    other role to map, so any other key is an error naming it."""
    other = sorted(set(columns) - {"text"})
    if other:
        raise ChowaError(f"config: {key}.{other[0]}: text is read from one column; map it as {key}.text=NAME")
    return columns.get("text", "text")


def _how_to_set(schema: type, key: str) -> str:
    field = next((f for f in dataclasses.fields(schema) if f.name == key), None)
    if field is None:
        return f"set it in the YAML file or on the command line as {key}=VALUE"
    if field.metadata.get("positional"):
        return f"give it on the command line ({field.metadata.get('metavar') or key})"
    flag = field.metadata.get("flag") or "--" + key.replace("_", "-")
    return f"set it with {flag} VALUE, in the YAML file or as {key}=VALUE"


def named_folders(specs: list[str], flag: str, taken: dict[str, str] | None = None,
                  names_required: bool = False) -> dict[str, str]:
    """Name -> folder of `[NAME=]DIR` specs, in the order given (NAME defaults to the folder's name unless
    `names_required`), each name once and none of `taken`'s; `flag` ("serve: --model") names the option in errors."""
    named: dict[str, str] = {}
    form = "NAME=DIR" if names_required else "[NAME=]DIR"
    for spec in specs:
        name, sep, folder = str(spec).partition("=")
        if not sep and not names_required:
            name, folder = Path(spec).name or str(spec), str(spec)
        if (names_required and not sep) or not name or not folder:
            raise ChowaError(f"{flag} {spec!r}: expected {form}, e.g. sft=runs/demo/sft")
        if name in named or name in (taken or {}):
            raise ChowaError(f"{flag} {spec!r}: the name {name!r} is given twice; name them NAME=DIR")
        named[name] = folder
    return named


def load_callable(spec: str, option_name: str) -> Callable:
    """The function a config value names as `module:function` (a rule reward, a judge); errors name the option."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ChowaError(f"{option_name} {spec!r} must be of the form module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ChowaError(f"{option_name} {spec!r}: cannot import module {module_name!r} ({exc})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ChowaError(f"{option_name} {spec!r}: module {module_name!r} has no function {function_name!r}")
    return function


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML text."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_config(cfg: Any, out_dir: str | os.PathLike, name: str = "config.yaml") -> Path:
    """Write the resolved config to `out_dir/name` atomically and return its path."""
    path = Path(out_dir) / name
    atomic_write_text(path, to_yaml(cfg))
    return path


def describe_fields(schema: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, help) for every leaf field of `schema`, nested dataclasses flattened."""
    rows = []
    for field in dataclasses.fields(schema):
        key = f"{prefix}{field.name}"
        field_type = _field_type(schema, field)
        if dataclasses.is_dataclass(field_type):
            rows.extend(describe_fields(field_type, prefix=f"{key}."))
            continue
        default = _default_of(field)
        help_text = field.metadata.get("help", "")
        choices = field.metadata.get("choices")
        if choices:
            help_text = f"{help_text} One of: {', '.join(choices)}."
        if range_help(field.metadata):
            help_text = f"{help_text} Range: {range_help(field.metadata)}."
        rows.append((key, _type_name(field_type), default, help_text))
    return rows


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ChowaError(f"config: file not found: {path}")
    try:
        loaded = OmegaConf.load(path)
    except Exception as exc:  # yaml.YAMLError carries the line; OmegaConf wraps others
        raise ChowaError(f"config: {path} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict) and not OmegaConf.is_dict(loaded):
        raise ChowaError(f"config: {path} must hold a mapping of keys to values at the top level")
    return loaded


def _check_override_syntax(overrides: list[str]) -> None:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ChowaError(f"config: override {item!r} is not of the form key.sub=value")


def _check_values(obj: Any, prefix: str = "") -> None:
    """Choices, and string values of string mappings (OmegaConf lets `columns.a.b=c` nest a mapping there)."""
    hints = typing.get_type_hints(type(obj))
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if dataclasses.is_dataclass(value):
            _check_values(value, prefix=f"{prefix}{field.name}.")
            continue
        choices = field.metadata.get("choices")
        if choices and value not in choices and not (value == "" and field.default == ""):
            raise ChowaError(f"config: {prefix}{field.name}={value!r} is not one of: {', '.join(choices)}")
        out_of_range = _out_of_range(value, field.metadata)
        if out_of_range:
            raise ChowaError(f"config: {prefix}{field.name}={value!r} must be {out_of_range}")
        if typing.get_args(hints[field.name]) == (str, str):
            bad = next((k for k, v in value.items() if not isinstance(v, str)), None)
            if bad is not None:
                raise ChowaError(f"config: {prefix}{field.name}.{bad} must be a string, got {value[bad]!r}")


def range_help(metadata: dict) -> str:
    """A field's range as text ("at least 1", "above 0, at most 1"), or ""."""
    parts = [f"{word} {metadata[key]}" for key, word in (("minimum", "at least"), ("above", "above"),
                                                         ("maximum", "at most")) if metadata.get(key) is not None]
    return ", ".join(parts)


def _out_of_range(value: Any, metadata: dict) -> str | None:
    """What a number breaks of its field's range ("at least 1"), or None."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    low, high, above = metadata.get("minimum"), metadata.get("maximum"), metadata.get("above")
    if low is not None and value < low:
        return f"at least {low}"
    if high is not None and value > high:
        return f"at most {high}"
    if above is not None and value <= above:
        return f"above {above}"
    return None


def renamed_key(schema: type, key: str) -> str | None:
    """The key's new name when a schema on its path renamed one of its parts (`RENAMED = {"old": "new"}`)."""
    parts, done = key.split("."), []
    for index, part in enumerate(parts):
        new = getattr(schema, "RENAMED", {}).get(part)
        if new is not None:
            return ".".join([*done, new, *parts[index + 1:]])
        field_type = typing.get_type_hints(schema).get(part) if dataclasses.is_dataclass(schema) else None
        if not dataclasses.is_dataclass(field_type):
            return None
        schema, done = field_type, [*done, part]
    return None


def _describe_omegaconf_error(exc: OmegaConfBaseException, where: str, schema: type, overrides: list[str]) -> str:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    if where == "command-line override":  # OmegaConf names the first unknown part; show the key as written
        written = [item.partition("=")[0] for item in overrides]
        key = next((w for w in written if key and w.startswith(f"{key}.")), key)
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    kind = type(exc).__name__
    if kind in ("ConfigKeyError", "ConfigAttributeError"):
        new = renamed_key(schema, str(key))
        if new is not None:
            return f"config: unknown key {key!r} (from {where}). It was renamed: did you mean {new!r}?"
        hint = message[message.index("Did you mean"):] if "Did you mean" in message else "See --help for the keys."
        return f"config: unknown key {key!r} (from {where}). {hint}"
    if kind in ("ValidationError", "ConfigTypeError"):
        return f"config: bad value for key {key!r} (from {where}): {message}"
    return f"config: problem with key {key!r} (from {where}): {message}"


def _field_type(schema: type, field: dataclasses.Field) -> Any:
    return typing.get_type_hints(schema).get(field.name, field.type)


def _type_name(field_type: Any) -> str:
    name = getattr(field_type, "__name__", None)
    return name if name and not str(field_type).startswith(("list", "dict", "typing")) else str(field_type)


def _default_of(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return "(required)" if field.default == MISSING else repr(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return repr(field.default_factory())
    return "(required)"
