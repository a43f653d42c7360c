"""The `chowa` command: one subcommand per entry of `chowa.commands.COMMANDS`, each a thin shell around its `run`.

Every command takes `--config FILE.yaml`, a `--flag` for each top-level key of its schema, and `key.sub=value`
overrides (later wins: schema defaults < YAML < flags < overrides). `--help` lists every key with its type,
default and meaning. Errors a user can cause print one paragraph, no traceback, and exit with status 2.

Run as:
    chowa --help
    chowa tokenizer train --input corpus.txt --vocab-size 8000 --out runs/tok
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
import warnings
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from chowa import __version__
from chowa.commands import COMMAND, COMMANDS, GROUPS, Command
from chowa.config import describe_fields, load_config, range_help
from chowa.errors import ChowaError, TrainingInterrupted

_DEST_PREFIX = "cfg__"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chowa",
        description="chowa (調和): tokenizer → pretrain → sft → reward → ppo → eval for Japanese–English chat "
                    "models. Each stage writes a Hugging Face folder with its resolved config.yaml and "
                    "metrics.jsonl.",
    )
    parser.add_argument("--version", action="version", version=f"chowa {__version__}")
    top = parser.add_subparsers(dest="command_name", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for command in COMMANDS:
        first, _, action = command.name.partition(" ")
        if not action or first in COMMAND:  # `reward score` sits beside `reward` (see `_joined`)
            subparsers, name = top, command.name
        else:
            if first not in groups:
                group = top.add_parser(first, help=GROUPS[first], description=GROUPS[first])
                groups[first] = group.add_subparsers(dest="action", metavar="ACTION", required=True)
            subparsers, name = groups[first], action
        sub = subparsers.add_parser(name, help=command.summary, description=command.description or command.summary,
                                    formatter_class=argparse.RawDescriptionHelpFormatter, prog=f"chowa {command.name}")
        add_config_arguments(sub, command.schema, command.default_config)
        sub.set_defaults(command=command)
    return parser


def add_config_arguments(parser: argparse.ArgumentParser, schema: type, default_config: str | None = None) -> None:
    """`--config`, one `--flag` per top-level key, positional `key=value` overrides, and a key table epilog."""
    shown = f"default: {default_config}" if default_config else "optional"
    parser.add_argument("--config", metavar="FILE.yaml", default=default_config,
                        help=f"YAML recipe with any of the keys below ({shown}).")
    parser.add_argument("--verbose", action="store_true", help="Also show the libraries' own load reports, warnings "
                                                               "and progress bars (transformers, datasets, torch).")
    hints = typing.get_type_hints(schema)
    groups: dict[str, argparse._ArgumentGroup] = {}
    positional = None
    for field in dataclasses.fields(schema):
        field_type = hints[field.name]
        if dataclasses.is_dataclass(field_type):
            continue  # nested sections are set with key.sub=value
        if field.metadata.get("positional"):
            positional = field
            continue
        group_name = field.metadata.get("group")
        if group_name and group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        target = groups[group_name] if group_name else parser
        target.add_argument(field.metadata.get("flag") or "--" + field.name.replace("_", "-"),
                            **_flag_options(field, field_type))
    if positional is not None:
        parser.add_argument("arguments", nargs="*", metavar=positional.metadata.get("metavar") or positional.name,
                            help=f"{_flag_help(positional)}; any key.sub=value among them sets a config key.")
    else:
        parser.add_argument("arguments", nargs="*", metavar="key.sub=value",
                            help="Set any config key, nested ones included (put these before list flags or after --).")
    parser.set_defaults(positional=positional.name if positional else None)
    rows = [row for row in describe_fields(schema) if "." in row[0] or row[1].startswith("dict")]
    if rows:
        width = max(len(key) for key, *_ in rows)
        lines = [f"  {key:<{width}}  {kind} = {default}\n  {'':<{width}}  {text}" for key, kind, default, text in rows]
        parser.epilog = "config keys set with key.sub=value (or in the YAML file):\n" + "\n".join(lines)


def _flag_options(field: dataclasses.Field, field_type) -> dict:
    options: dict = {"dest": _DEST_PREFIX + field.name, "default": None, "help": _flag_help(field)}
    if typing.get_origin(field_type) is dict:  # --columns text=body instruction=prompt
        options.update(nargs="+", metavar="KEY=VALUE")
    elif field_type is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(field_type) is list:
        options.update(action="append") if field.metadata.get("repeat") else options.update(nargs="+")
        options["metavar"] = field.metadata.get("metavar") or "VALUE"
    elif field.metadata.get("choices"):
        options["choices"] = field.metadata["choices"]
    else:
        options["metavar"] = field.metadata.get("metavar") or field.name.upper()
    return options


def _flag_help(field: dataclasses.Field) -> str:
    default = field.default if field.default is not dataclasses.MISSING else None
    shown = "required" if default == "???" else f"default: {default!r}"
    if field.default_factory is not dataclasses.MISSING:
        shown = f"default: {field.default_factory()!r}"
    limits = f"; {range_help(field.metadata)}" if range_help(field.metadata) else ""
    return f"{field.metadata.get('help', '')} ({shown}{limits})".replace("%", "%%")


def parse_config(args: argparse.Namespace, schema: type):
    """The validated config from an argparse namespace built by `add_config_arguments`."""
    flags = {k[len(_DEST_PREFIX):]: v for k, v in vars(args).items() if k.startswith(_DEST_PREFIX) and v is not None}
    hints = typing.get_type_hints(schema)
    for name, value in flags.items():
        if typing.get_origin(hints[name]) is dict:
            flags[name] = _mapping(value, name, nested=typing.get_args(hints[name]) != (str, str))
    overrides, values = _split_arguments(args.arguments, schema if args.positional else None)
    if args.positional and values:
        field = next(f for f in dataclasses.fields(schema) if f.name == args.positional)
        flags[field.name] = values if typing.get_origin(typing.get_type_hints(schema)[field.name]) is list else (
            _single(values, field))
    return load_config(schema, args.config, overrides, flags=flags)


def _mapping(items: list[str], name: str, nested: bool) -> dict:
    """`--NAME KEY=VALUE ...` as a mapping: of strings (`--columns text=body`), or nested for dotted keys of a
    config section (`--ppo train.steps=3`)."""
    bad = [item for item in items if "=" not in item or item.startswith("=")]
    if bad:
        raise ChowaError(f"--{name.replace('_', '-')}: {bad[0]!r} is not of the form KEY=VALUE")
    if not nested:
        return dict(item.split("=", 1) for item in items)
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(items))
    except yaml.YAMLError as exc:
        raise ChowaError(f"--{name.replace('_', '-')}: a value is not valid YAML: {str(exc).splitlines()[0]}") from None


def _split_arguments(arguments: list[str], schema: type | None) -> tuple[list[str], list[str]]:
    """(overrides, positional values): with a positional field, an argument is an override when it reads
    KEY=VALUE and KEY starts with one of the schema's keys; everything else is a positional value."""
    if schema is None:
        return list(arguments), []
    keys = {field.name for field in dataclasses.fields(schema)}
    overrides, values = [], []
    for argument in arguments:
        key, sep, _ = argument.partition("=")
        is_override = sep and key.split(".")[0] in keys
        (overrides if is_override else values).append(argument)
    return overrides, values


def _single(values: list[str], field: dataclasses.Field) -> str:
    if len(values) != 1:
        raise ChowaError(f"expected one {field.metadata.get('metavar') or field.name}, got {len(values)}: "
                         f"{' '.join(values)}")
    return values[0]


def quiet_libraries() -> None:
    """Keep transformers' and datasets' load reports, advisory warnings and progress bars off the terminal (chowa
    prints what matters; `--verbose` shows them). Environment variables, so they hold before the libraries load and
    in the processes `accelerate launch` starts; a user's own settings win."""
    for name, value in (("TRANSFORMERS_VERBOSITY", "error"), ("DATASETS_VERBOSITY", "error"),
                        ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore", module=r"(transformers|torch|accelerate|peft|datasets|huggingface_hub)\b")


def _joined(argv: list[str]) -> list[str]:
    """`reward score ...` -> `"reward score" ...`: a command named by two words whose first word is itself a
    command is one parser beside it (the first command's positional overrides would swallow the second word)."""
    if len(argv) >= 2 and argv[0] in COMMAND and f"{argv[0]} {argv[1]}" in COMMAND:
        return [f"{argv[0]} {argv[1]}", *argv[2:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = _joined(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    command: Command = args.command
    if not args.verbose:
        quiet_libraries()
    try:
        result = command.run(parse_config(args, command.schema))
    except TrainingInterrupted as exc:
        print(f"chowa: {exc}", file=sys.stderr)
        return 130
    except ChowaError as exc:
        print(f"chowa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("chowa: interrupted", file=sys.stderr)
        return 130
    if isinstance(result, Path):
        print(f"wrote {result}")
    return 0
