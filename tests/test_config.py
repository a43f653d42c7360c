"""Config schemas: YAML + flags + overrides, errors that name the key, resolved config saved."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import yaml

from chowa.cli import main as cli_main
from chowa.config import REQUIRED, load_config, option, save_config
from chowa.errors import ChowaError
from chowa.runtime import RuntimeConfig


@dataclass
class Optim:
    lr: float = option(1e-3, "Peak learning rate.")
    schedule: str = option("cosine", "LR schedule.", choices=("cosine", "constant"))


@dataclass
class Stage:
    data: str = option(REQUIRED, "Input file.")
    steps: int = option(10, "Optimizer steps.")
    tags: list[str] = option([], "Free-form tags.")
    optim: Optim = option(Optim(), "Optimizer.")
    runtime: RuntimeConfig = option(RuntimeConfig(), "Where and how to run.")


def test_yaml_flags_and_overrides_merge_in_order(tmp_path):
    recipe = tmp_path / "stage.yaml"
    recipe.write_text("data: a.txt\nsteps: 5\noptim:\n  lr: 0.01\n")
    cfg = load_config(Stage, recipe, ["optim.lr=0.5", "runtime.seed=7"], flags={"steps": "6"})
    assert (cfg.data, cfg.steps, cfg.optim.lr, cfg.runtime.seed) == ("a.txt", 6, 0.5, 7)
    assert isinstance(cfg.optim, Optim)


@pytest.mark.parametrize(("overrides", "message"), [
    (["data=a", "optim.lrr=1"], "unknown key 'optim.lrr'"),
    (["data=a", "steps=many"], "bad value for key 'steps'"),
    ([], "required value missing for 'data'"),
    (["data=a", "optim.schedule=linear"], "optim.schedule='linear' is not one of: cosine, constant"),
    (["data"], "'data' is not of the form key.sub=value"),
])
def test_bad_config_names_the_key(overrides, message):
    with pytest.raises(ChowaError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(Stage, None, overrides)


def test_unknown_key_in_yaml_names_file(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("data: a\nstpes: 3\n")
    with pytest.raises(ChowaError, match=rf"unknown key 'stpes' \(from {recipe}\)"):
        load_config(Stage, recipe)


def test_missing_and_malformed_yaml(tmp_path):
    with pytest.raises(ChowaError, match="file not found"):
        load_config(Stage, tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(ChowaError, match="not valid YAML"):
        load_config(Stage, broken)


def test_saved_config_reloads_identically(tmp_path):
    cfg = load_config(Stage, None, ["data=x.txt", "tags=[a,b]", "optim.lr=0.25"])
    path = save_config(cfg, tmp_path / "out")
    assert yaml.safe_load(path.read_text())["optim"]["lr"] == 0.25
    assert dataclasses.asdict(load_config(Stage, path)) == dataclasses.asdict(cfg)


def test_cli_bad_key_is_one_paragraph_without_traceback(tmp_path, capsys):
    code = cli_main(["tokenizer", "train", "--input", "x.txt", "--out", str(tmp_path), "vocab_sise=5"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown key 'vocab_sise'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_help_explains_every_option(capsys):
    from chowa.tokenizer.train import TokenizerTrainConfig

    with pytest.raises(SystemExit):
        cli_main(["tokenizer", "train", "--help"])
    text = capsys.readouterr().out
    for field in dataclasses.fields(TokenizerTrainConfig):
        assert "--" + field.name.replace("_", "-") in text
        assert field.metadata["help"].split()[0] in text
    for argv in (["--help"], ["tokenizer", "--help"], ["tokenizer", "stats", "--help"]):
        with pytest.raises(SystemExit):
            cli_main(argv)
        assert "usage: chowa" in capsys.readouterr().out
