"""The command table as users meet it: rules live in the schemas (the same from Python, the CLI and the pipeline),
defaults live once, renamed keys point to their new names, and the command line reaches every key."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from chowa.cli import build_parser, parse_config
from chowa.commands import COMMAND, PIPELINE
from chowa.config import load_config
from chowa.config.eval import CompareConfig, HeldoutEvalConfig, JGLUEConfig
from chowa.config.generate import GenerateConfig
from chowa.config.pipeline import PipelineConfig
from chowa.config.ppo import PPOConfig
from chowa.errors import ChowaError
from chowa.pipeline import resolve_stage_configs

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny" / "pipeline.yaml"


def _parse(argv: list[str]):
    """The config the CLI would run `argv` with (no work done)."""
    from chowa.cli import _joined

    args = build_parser().parse_args(_joined(argv))
    return args.command, parse_config(args, args.command.schema)


def test_renamed_keys_name_their_new_name():
    with pytest.raises(ChowaError, match=r"unknown key 'ppo.layout'.*renamed: did you mean 'method.layout'"):
        load_config(PPOConfig, overrides=["out=x", "model=y", "data.prompts=[p]", "ppo.layout=hydra"])
    with pytest.raises(ChowaError, match=r"unknown key 'ppo'.*renamed: did you mean 'method'"):
        load_config(PPOConfig, overrides=["out=x", "model=y", "data.prompts=[p]"], flags={"ppo": {"ppo_epochs": 2}})
    with pytest.raises(ChowaError, match=r"pipeline section 'ppo'.*unknown key 'ppo'.*did you mean 'method'"):
        resolve_stage_configs(load_config(PipelineConfig, TINY, ["ppo.ppo.num_rollouts=8"]), PIPELINE)
    with pytest.raises(ChowaError, match=r"'models.sft'.*renamed: did you mean 'model"):
        load_config(HeldoutEvalConfig, overrides=["models.sft=runs/sft"])


def test_defaults_live_once_for_the_cli_the_pipeline_and_python():
    recipe = load_config(PipelineConfig, TINY)
    for section in (recipe.eval, recipe.compare):  # the recipe sets these; look at the defaults underneath
        section.pop("max_new_tokens"), section.pop("batch_size", None)
    stages = resolve_stage_configs(recipe, PIPELINE)
    _, cli_heldout = _parse(["eval", "heldout", "--model", "sft=runs/sft"])
    assert stages["eval"].max_new_tokens == cli_heldout.max_new_tokens == HeldoutEvalConfig.max_new_tokens == 32
    assert cli_heldout.replies().greedy and not cli_heldout.replies().temperature
    _, cli_compare = _parse(["compare", "--a", "x", "--b", "y", "--judge", "human", "--out", "o"])
    assert stages["compare"].max_new_tokens is None and cli_compare.max_new_tokens is None  # the format's default
    assert stages["compare"].batch_size == cli_compare.batch_size == CompareConfig.batch_size
    assert stages["eval"].model_folders() == {"pretrained": "runs/demo/pretrain", "sft": "runs/demo/sft",
                                              "ppo": "runs/demo/ppo"}


@pytest.mark.parametrize(("schema", "overrides", "message"), [
    (GenerateConfig, ["model=m"], "exactly one of --prompt TEXT and --input"),
    (GenerateConfig, ["model=m", "prompt=hi", "input=p.jsonl"], "exactly one of --prompt"),
    (JGLUEConfig, ["model=m", "data_dir=d"], "exactly one of --tasks LIST and --suite"),
    (JGLUEConfig, ["model=m", "data_dir=d", "suite=nope"], "suite='nope' is not one of"),
    (HeldoutEvalConfig, ["model=[sft]"], "expected NAME=DIR"),
    (HeldoutEvalConfig, ["model=[a=x,a=y]"], "the name 'a' is given twice"),
    (HeldoutEvalConfig, ["model=[a=x]", "sampled=true", "greedy=true"], "contradict"),
    (HeldoutEvalConfig, ["model=[a=x]", "top_p=0.9"], "for sampled replies only; add --sampled"),
])
def test_rules_are_the_schemas_own(schema, overrides, message):
    with pytest.raises(ChowaError, match=message.replace("(", r"\(")):
        load_config(schema, overrides=overrides)


def test_the_command_line_reaches_every_kind_of_key(tmp_path):
    command, cfg = _parse(["reward", "score", "--model", "rm", "--input", "in.jsonl", "--columns", "prompt=question"])
    assert command is COMMAND["reward score"] and cfg.columns == {"prompt": "question"}
    command, cfg = _parse(["reward", "model=m", "out=o", "data.train=[t.jsonl]", "data.columns.prompt=q"])
    assert command is COMMAND["reward"] and cfg.data.columns == {"prompt": "q"}
    command, cfg = _parse(["compare", "tally", "filled.csv", "--key", "k.json"])
    assert command is COMMAND["compare tally"] and (cfg.sheet, cfg.key) == ("filled.csv", "k.json")
    _, cfg = _parse(["data", "inspect", "a.jsonl", "b.parquet", "columns.instruction=prompt", "--kind", "preference"])
    assert cfg.files == ["a.jsonl", "b.parquet"] and cfg.columns == {"instruction": "prompt"}
    _, cfg = _parse(["generate", "--model", "m", "--prompt", "x", "--stop", "A", "--stop", "B", "--greedy"])
    assert cfg.stop == ["A", "B"] and cfg.sampling().resolve(__import__("chowa.formats").formats.get_format(
        "rinna"))["do_sample"] is False
    _, cfg = _parse(["pipeline", "--config", str(TINY), "--from", "sft", "--ppo", "train.steps=3",
                     "method.layout=shared"])
    assert cfg.from_stage == "sft" and cfg.ppo["train"] == {"steps": 3, "eval_every": 10, "save_every": 10}
    assert cfg.ppo["method"]["layout"] == "shared" and cfg.ppo["method"]["num_rollouts"] == 64  # on top of the recipe
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval"])  # an ACTION is required
    assert isinstance(build_parser(), argparse.ArgumentParser)


def test_cli_errors_name_the_flag(capsys):
    from chowa.cli import main

    assert main(["compare", "--a", "x"]) == 2
    assert "required value missing for 'b', 'judge', 'out'; set it with --b VALUE" in capsys.readouterr().err
    assert main(["data", "inspect"]) == 2
    assert "give it on the command line (FILE)" in capsys.readouterr().err
    assert main(["generate", "--model", "m", "--columns", "oops"]) == 2
    assert "--columns: 'oops' is not of the form KEY=VALUE" in capsys.readouterr().err
    assert main(["generate", "--model", "m", "--prompt", "x", "columns.a.b=c"]) == 2
    assert "bad value for key 'columns.a.b'" in capsys.readouterr().err
    with pytest.raises(ChowaError, match="columns.a must be a string"):  # as a YAML file would nest it
        load_config(GenerateConfig, overrides=["model=m", "prompt=x"], flags={"columns": {"a": {"b": "c"}}})
    assert main(["pipeline", "--config", str(TINY), "--ppo", "train.steps=[3"]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["pretrain", "out=o", "tokenizer=t", "data.train=[x]", "data.columns.prompt=q"]) == 2
    assert "data.columns.prompt: text is read from one column" in capsys.readouterr().err
    assert main(["generate", "--model", "no/such/folder", "--prompt", "x"]) == 2
    assert "model: no such folder: no/such/folder" in capsys.readouterr().err
