"""The shape of the code, checked from the code: one command table, fast start-up, no import loop, no runtime import
of the data generator, short functions, ruff clean."""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from chowa.commands import COMMAND, COMMANDS, PIPELINE
from chowa.config.pipeline import STAGE_NAMES, PipelineConfig

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "chowa"
HEAVY = ("torch", "transformers", "accelerate", "datasets")


def _modules() -> dict[str, ast.Module]:
    """Every module of the package by dotted name, parsed."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def _imports(tree: ast.Module, known: set[str]) -> set[str]:
    """The package modules a module imports anywhere (function-level imports too; TYPE_CHECKING blocks aside)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} & known
            found |= {f"{node.module}.{alias.name}" for alias in node.names} & known
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return result


def test_no_import_loop_between_modules():
    modules = _modules()
    graph = {name: _imports(tree, set(modules)) - {name} for name, tree in modules.items()}
    assert _cycles(graph) == []


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])  # chowa.eval.jglue.runner -> chowa.eval


def test_no_import_loop_between_packages():
    """Nor between packages (chowa.report and chowa.eval once imported each other). The command schemas
    (chowa.config.*) are left out: they read the choices of the packages whose commands they describe (chat
    formats, data formats, JGLUE suites), and those packages read their schema back."""
    modules = _modules()
    schema = {name for name in modules if name.startswith("chowa.config.")}
    graph: dict[str, set[str]] = {_package(name): set() for name in modules}
    for name, tree in modules.items():
        if name not in schema:
            graph[_package(name)] |= {_package(m) for m in _imports(tree, set(modules)) - schema} - {_package(name)}
    assert _cycles(graph) == []


def test_the_runtime_never_imports_the_data_generator_or_wires_by_module_path():
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                targets = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(t == "tools" or t.startswith("tools.") for t in targets), name
            if isinstance(node, ast.Attribute) and node.attr == "import_module":
                # the one dynamic import: a user's own `module:function` (a rule reward, a judge)
                assert name == "chowa.config", f"{name} imports by a module-path string"


def test_no_function_is_longer_than_80_lines():
    long = [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
            for name, tree in _modules().items() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80]
    assert long == []


def test_every_command_and_stage_is_a_schema_and_a_run_function():
    names = [command.name for command in COMMANDS]
    assert len(names) == len(set(names))
    for command in COMMANDS:
        assert dataclasses.is_dataclass(command.schema) and callable(command.run), command.name
        assert command.schema.__module__.startswith("chowa.config."), command.name
    sections = [f.name for f in dataclasses.fields(PipelineConfig) if typing.get_origin(f.type) is dict
                or str(f.type).startswith("dict")]
    assert [stage.name for stage in PIPELINE] == list(STAGE_NAMES) == sections  # one section per stage, in order
    assert all(stage.schema is COMMAND[name].schema for stage, name in zip(PIPELINE, [
        "tokenizer train", "pretrain", "sft", "reward", "ppo", "eval heldout", "compare"], strict=True))


def test_help_and_version_import_no_torch():
    """`chowa --help`, `--version` and every `chowa COMMAND --help` build their parser from the torch-free schemas."""
    argvs = [["--help"], ["--version"], *([*c.name.split(), "--help"] for c in COMMANDS)]
    script = f"""
import json, sys
from chowa.cli import main
for argv in {json.dumps(argvs)}:
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code == 0, (argv, exc.code)
print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_every_top_level_key_has_a_flag_and_help(capsys):
    from chowa.cli import main as cli_main

    for command in COMMANDS:
        with pytest.raises(SystemExit):
            cli_main([*command.name.split(), "--help"])
        text = capsys.readouterr().out
        hints = typing.get_type_hints(command.schema)
        for field in dataclasses.fields(command.schema):
            assert field.metadata.get("help"), f"{command.name}: {field.name} has no help"
            if dataclasses.is_dataclass(hints[field.name]):
                assert f"{field.name}." in text, f"{command.name}: nested keys of {field.name} are not listed"
            elif not field.metadata.get("positional"):
                flag = field.metadata.get("flag") or "--" + field.name.replace("_", "-")
                assert flag in text, f"{command.name}: no {flag}"


def test_ruff_is_clean():
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "src", "tests", "tools", "benchmarks"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
