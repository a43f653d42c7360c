"""Faults a user can cause, run as a user would (the `chowa` command in-process): each ends in one clear error that
names the file, line, key or option, and exit status 2; none leaves a finished run altered or reports success
with a wrong result. One table, a row per case of issue #13."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, GPTNeoXForSequenceClassification

from chowa.cli import main as cli_main
from chowa.config import load_config
from chowa.config.sft import SFTConfig
from chowa.formats import save_format
from chowa.tokenizer import load_tokenizer
from chowa.training.checkpoint import resume_from

PAIRS = [{"instruction": f"{a}たす{b}は?", "output": f"{a + b}です。"} for a in range(6) for b in range(6)]


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _run(capsys, *argv) -> tuple[int, str, str, str]:
    """Exit status, the error line that says what went wrong, and the standard and error output."""
    code = cli_main([str(a) for a in argv])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("chowa: error:")]
    assert "Traceback" not in captured.err
    return code, errors[0] if errors else "", captured.out, captured.err


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir, tokenizer_dir) -> dict[str, Path]:
    """A finished SFT run, its data, a reward-model folder and a few broken files, as a user's disk might hold."""
    root = tmp_path_factory.mktemp("faults")
    data = _jsonl(root / "sft.jsonl", PAIRS)
    sft = root / "sft"
    assert cli_main(["sft", f"out={sft}", f"model={tiny_model_dir}", "format=rinna", f"data.train=[{data}]",
                     "train.steps=4", "train.batch_size=4", "train.save_every=2", "train.eval_every=0",
                     "optim.warmup_steps=1"]) == 0
    reward = root / "reward"
    tokenizer = load_tokenizer(tokenizer_dir)
    config = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    GPTNeoXForSequenceClassification(config).save_pretrained(str(reward))
    tokenizer.save_pretrained(str(reward))
    save_format(reward, "rinna")
    truncated = root / "truncated"
    shutil.copytree(sft, truncated, ignore=shutil.ignore_patterns("checkpoints"))
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    packed = gzip.compress(data.read_bytes() * 20)
    (root / "cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    text = gzip.compress("".join(f"{n}番目の行、{n * n}。\n" for n in range(3000)).encode())
    (root / "cut.txt.gz").write_bytes(text[: len(text) // 2])
    (root / "a-file").write_text("not a folder")
    return {"root": root, "data": data, "sft": sft, "reward": reward, "truncated": truncated,
            "model": tiny_model_dir, "tokenizer": tokenizer_dir}


def _sft(world, *extra, model: Path | None = None) -> list:
    return ["sft", f"model={model or world['model']}", "format=rinna", f"data.train=[{world['data']}]",
            "train.steps=2", "train.batch_size=4", "train.eval_every=0", "optim.warmup_steps=1", *extra]


# (case, argv built from the fixture's paths, the text the one-line error must hold)
CASES = [
    ("LoRA into a finished full fine-tune",
     lambda w: _sft(w, f"out={w['sft']}", "train.steps=4", "train.save_every=2", "lora.enabled=true"),
     "holds a run made with another config"),
    ("a finished folder rerun with another lr and data",
     lambda w: _sft(w, f"out={w['sft']}", "train.steps=4", "train.save_every=2", "optim.lr=0.5",
                    f"data.train=[{w['root'] / 'other.jsonl'}]"),
     "optim.lr: 2e-05 → 0.5"),
    ("negative steps", lambda w: _sft(w, f"out={w['root'] / 'neg'}", "train.steps=-5"),
     "train.steps=-5 must be at least 1"),
    ("zero batch size", lambda w: _sft(w, f"out={w['root'] / 'b0'}", "train.batch_size=0"),
     "train.batch_size=0 must be at least 1"),
    ("negative learning rate", lambda w: _sft(w, f"out={w['root'] / 'lr'}", "optim.lr=-1"),
     "optim.lr=-1.0 must be above 0"),
    ("a tokenizer larger than the model",
     lambda w: _sft(w, f"out={w['root'] / 'big'}", f"tokenizer={w['root'] / 'bigtok'}"),
     "embedding rows, so ids from"),
    ("a tokenizer much smaller than the model",
     lambda w: _sft(w, f"out={w['root'] / 'small'}", model=w["root"] / "wide"),
     "it is not the tokenizer the model was trained with"),
    ("a prompt longer than the context",
     lambda w: ["generate", "--model", w["sft"], "--prompt", "猫" * 600, "--max-new-tokens", "8"],
     "fill the model's context of 512 positions and leave no room for a reply"),
    ("generate with a reward model", lambda w: ["generate", "--model", w["reward"], "--prompt", "hi"],
     "is a sequence classifier"),
    ("JGLUE on an empty data folder",
     lambda w: ["eval", "jglue", "--model", w["sft"], "--data-dir", w["root"], "--suite", "rinna-bilingual"],
     "no requested task has its files under"),
    ("held-out eval with JGLUE on an empty data folder",
     lambda w: ["eval", "heldout", "--model", f"sft={w['sft']}", "--jglue-data-dir", w["root"]],
     "no requested task has its files under"),
    ("top-p above 1", lambda w: ["generate", "--model", w["sft"], "--prompt", "hi", "--top-p", "1.5"],
     "top_p=1.5 must be at most 1"),
    ("max-new-tokens 0", lambda w: ["generate", "--model", w["sft"], "--prompt", "hi", "--max-new-tokens", "0"],
     "max_new_tokens=0 must be at least 1"),
    ("negative top-k", lambda w: ["generate", "--model", w["sft"], "--prompt", "hi", "--top-k", "-1"],
     "top_k=-1 must be at least 0"),
    ("batch size 0", lambda w: ["generate", "--model", w["sft"], "--input", w["data"], "--batch-size", "0"],
     "batch_size=0 must be at least 1"),
    ("SFT on a cut .gz", lambda w: _sft(w, f"out={w['root'] / 'gz'}", f"data.train=[{w['root'] / 'cut.jsonl.gz'}]"),
     "not a complete gzip file"),
    ("inspect a cut .gz", lambda w: ["data", "inspect", w["root"] / "cut.jsonl.gz"], "not a complete gzip file"),
    ("tokenizer on a cut .gz",
     lambda w: ["tokenizer", "train", "--input", w["root"] / "cut.txt.gz", "--out", w["root"] / "tgz"],
     "not a complete gzip file"),
    ("generate on cut weights", lambda w: ["generate", "--model", w["truncated"], "--prompt", "hi"],
     "cannot load"),
    ("SFT from cut weights", lambda w: _sft(w, f"out={w['root'] / 'cutsft'}", model=w["truncated"]), "cannot load"),
    ("an output folder that cannot be written",
     lambda w: ["generate", "--model", w["sft"], "--input", w["data"], "--out", w["root"] / "a-file" / "r.jsonl"],
     "--out: cannot write to"),
    ("a misspelt resume_changes key", lambda w: _sft(w, f"out={w['sft']}", "train.resume_changes=[train.stepz]"),
     "train.resume_changes names 'train.stepz', which is not a key of sft's config"),
    ("a stage output that cannot be written", lambda w: _sft(w, f"out={w['root'] / 'a-file' / 'run'}"),
     "out: cannot write to"),
]


@pytest.mark.parametrize(("case", "argv", "message"), CASES, ids=[c[0] for c in CASES])
def test_every_fault_is_one_clear_error(world, capsys, case, argv, message):
    if case == "a tokenizer larger than the model":  # the model's own tokenizer and 100 tokens more
        bigger = load_tokenizer(world["tokenizer"])
        bigger.add_tokens([f"<extra_{n}>" for n in range(100)])
        bigger.save_pretrained(str(world["root"] / "bigtok"))
    if case == "a tokenizer much smaller than the model":  # the 420-token tokenizer beside a 1,000-row model
        tokenizer = load_tokenizer(world["tokenizer"])
        GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64)).save_pretrained(str(world["root"] / "wide"))
        tokenizer.save_pretrained(str(world["root"] / "wide"))
    if "another lr and data" in case:
        _jsonl(world["root"] / "other.jsonl", PAIRS[:10])
    recorded = (world["sft"] / "config.yaml").read_text()
    code, error, _, _ = _run(capsys, *argv(world))
    assert code == 2 and message in error, error
    assert (world["sft"] / "config.yaml").read_text() == recorded  # a refused run leaves the finished one as it was


def test_a_refused_resume_names_the_keys_and_an_accepted_change_trains_on(world, capsys):
    base = _sft(world, f"out={world['sft']}", "train.save_every=2")
    code, error, _, _ = _run(capsys, *base, "train.steps=6")
    assert code == 2 and "train.steps: 4 → 6" in error and "train.resume_changes=[train.steps]" in error
    code, _, out, _ = _run(capsys, *base, "train.steps=4")  # the same config: the run is finished, nothing to do
    assert code == 0 and "the run is finished; nothing to train" in out
    watched = load_config(SFTConfig, overrides=[*base[1:], "train.steps=4", "runtime.report_to=[tensorboard]",
                                                "train.eval_every=1"])
    assert resume_from(watched, world["sft"], "sft") is not None  # tracking and evaluating more change no result
    rerun = world["root"] / "longer"
    shutil.copytree(world["sft"], rerun)
    code, _, out, _ = _run(capsys, *[a for a in base if not a.startswith("out=")], f"out={rerun}", "train.steps=6",
                        "train.resume_changes=[train.steps]")
    steps = [json.loads(line)["step"] for line in (rerun / "metrics.jsonl").read_text().splitlines()]
    assert code == 0 and steps == [1, 2, 3, 4, 5, 6] and "sft: finished, 6 steps" in out


def test_bad_data_does_not_touch_a_finished_run(world, capsys):
    bad = _jsonl(world["root"] / "bad.jsonl", [{"instruction": 3, "output": "x"}])
    recorded = (world["sft"] / "config.yaml").read_text()
    code, error, _, _ = _run(capsys, *_sft(world, f"out={world['sft']}", f"data.train=[{bad}]"))
    assert code == 2 and f"{bad}:1: instruction: expected a string" in error
    assert (world["sft"] / "config.yaml").read_text() == recorded


def test_temperature_zero_is_greedy(world, capsys):
    greedy = _run(capsys, "generate", "--model", world["sft"], "--prompt", "3たす4は?", "--greedy",
                  "--max-new-tokens", "6")
    zero = _run(capsys, "generate", "--model", world["sft"], "--prompt", "3たす4は?", "--temperature", "0",
                "--max-new-tokens", "6")
    sampled = _run(capsys, "generate", "--model", world["sft"], "--prompt", "3たす4は?", "--max-new-tokens", "6")
    assert greedy[0] == zero[0] == sampled[0] == 0 and greedy[2] == zero[2] != sampled[2]


def test_shift_jis_data_names_the_option_that_reads_it(world, capsys):
    sjis = world["root"] / "sjis.jsonl"
    sjis.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in PAIRS).encode("cp932"))
    code, error, _, _ = _run(capsys, *_sft(world, f"out={world['root'] / 'sjis'}", f"data.train=[{sjis}]"))
    assert code == 2 and f"{sjis}: not valid UTF-8" in error and "data.encoding=shift_jis" in error
    code, _, _, _ = _run(capsys, *_sft(world, f"out={world['root'] / 'sjis'}", f"data.train=[{sjis}]",
                                    "data.encoding=shift_jis"))
    assert code == 0


def test_an_oversized_record_is_named_skipped_and_never_printed(world, capsys):
    huge = world["root"] / "huge.jsonl"
    with huge.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(PAIRS[0], ensure_ascii=False) + "\n")
        handle.write(json.dumps({"instruction": "x" * (9 << 20), "output": "y"}) + "\n")
        handle.write(json.dumps(PAIRS[1], ensure_ascii=False) + "\n")
    code, _, out, _ = _run(capsys, "data", "inspect", huge)
    assert code == 0 and f"{huge}:2: a record of 9,437,2" in out and len(out) < 5000
    code, error, _, _ = _run(capsys, *_sft(world, f"out={world['root'] / 'huge'}", f"data.train=[{huge}]"))
    assert code == 2 and f"{huge}:2: a record of" in error and "over max_record_bytes=8,388,608" in error
    long = world["root"] / "long.jsonl"
    _jsonl(long, [{"instruction": "猫" * 2000, "output": "y"}, *PAIRS[:3]])
    code, _, out, _ = _run(capsys, "data", "inspect", long)
    assert code == 0 and "more characters)" in out and len(out) < 8000


def test_a_line_too_long_for_sentencepiece_is_named(world, capsys):
    text = world["root"] / "corpus.txt"
    text.write_text("吾輩は猫である。名前はまだ無い。\n" * 3 + "猫" * 10000 + "\n", encoding="utf-8")
    code, _, _, err = _run(capsys, "tokenizer", "train", "--input", "builtin:corpus/ja.txt", text,
                           "--vocab-size", "1200", "--out", world["root"] / "longtok", "max_sentence_length=20000")
    assert code == 0 and f"1 line longer than max_sentence_length=20000 bytes skipped, first {text}:4" in err
