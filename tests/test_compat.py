"""Folders chowa saves are the same model under transformers 4.34 and the last 4.x as under chowa (transformers 5).

Each old release runs in a throwaway virtual environment built once and kept in the project's venv
(`.venv/compat/`, `tools/side_env.py`): the old transformers, tokenizers and huggingface_hub are installed there
without dependencies, and a .pth file lends it this venv's torch and the rest. A probe script run there loads the
folder with plain AutoTokenizer / AutoModelForCausalLM and prints token ids, logits and the rendered chat prompt as
JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from chowa.config import load_config
from chowa.config.pretrain import PretrainConfig
from chowa.config.sft import SFTConfig
from chowa.folders import finish_folder
from chowa.formats import render_prompt
from chowa.models.build import build_model
from chowa.pretrain import main as pretrain
from chowa.sft import main as sft
from chowa.tokenizer import load_tokenizer
from tools.side_env import side_python

pytestmark = pytest.mark.slow

# 4.34: the first 4.x whose tokenizers reads Unigram byte fallback (the lm-evaluation-harness era); 4.57: the last.
RELEASES = {
    "4.34": ["transformers==4.34.1", "tokenizers==0.14.1", "huggingface_hub==0.17.3"],
    "4.57": ["transformers==4.57.6", "tokenizers==0.22.1", "huggingface_hub==0.36.0"],
    "4.56": ["transformers==4.56.1", "tokenizers==0.22.1", "huggingface_hub==0.36.0"],  # the byGPT-JP card's
}
TEXTS = ["  吾輩は  猫である   ", "ユーザー: 3たす4は?\nシステム: ", "Tokyo has 23 wards.\tTabs  and  spaces 😀"]
MESSAGES = [{"role": "user", "content": "3たす4は?"}, {"role": "assistant", "content": "7です。"},
            {"role": "user", "content": "では5たす5は?"}]
PROBE = """
import json, sys, torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, texts, messages = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder).eval()
ids = [tokenizer(text, add_special_tokens=False).input_ids for text in texts]
with torch.no_grad():
    logits = [model(torch.tensor([row])).logits[0].tolist() for row in ids]
chat = (tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if getattr(tokenizer, "chat_template", None) else None)
print(json.dumps({"version": transformers.__version__, "ids": ids, "logits": logits, "chat": chat}))
"""


def old_python(release: str) -> Path:
    """The interpreter of the throwaway environment for `release`, built on first use."""
    try:
        return side_python(f"compat/{release}", RELEASES[release])
    except RuntimeError as error:
        pytest.fail(f"could not build the transformers {release} environment: {error}")


def probe(release: str, folder: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([str(old_python(release)), "-c", PROBE, str(folder), json.dumps(TEXTS),
                             json.dumps(MESSAGES)], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def chowa_view(folder: Path) -> dict:
    """What chowa (transformers 5) reads from the folder: ids, logits and the chat prompt."""
    from chowa.models.load import load_causal_lm

    tokenizer, model = load_tokenizer(folder), load_causal_lm(folder).eval()
    ids = [tokenizer(text, add_special_tokens=False).input_ids for text in TEXTS]
    with torch.no_grad():
        logits = [model(torch.tensor([row])).logits[0] for row in ids]
    chat = render_prompt(MESSAGES, json.loads((folder / "chat_format.json").read_text())["format"]) \
        if (folder / "chat_format.json").is_file() else None
    return {"ids": ids, "logits": logits, "chat": chat}


@pytest.fixture(scope="module")
def sft_folder(tmp_path_factory, tokenizer_dir, project_corpus) -> Path:
    """A GPT-NeoX written by `chowa pretrain` then `chowa sft` (rinna format): full rotary, which 4.x's default
    rotary_pct 0.25 would silently change."""
    root = tmp_path_factory.mktemp("compat")
    pretrain(load_config(PretrainConfig, overrides=[
        f"out={root / 'pretrain'}", f"tokenizer={tokenizer_dir}", f"data.train=[{project_corpus[0]}]",
        "data.seq_len=32", "model_config.hidden_size=32", "model_config.num_hidden_layers=2",
        "model_config.num_attention_heads=2", "model_config.intermediate_size=64", "train.steps=3",
        "train.batch_size=2", "train.eval_every=0", "train.save_every=0", "optim.warmup_steps=1"]))
    data = root / "sft.jsonl"
    records = [{"instruction": f"{a}たす{b}は?", "output": f"{a + b}です。"} for a in range(4) for b in range(4)]
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return sft(load_config(SFTConfig, overrides=[
        f"out={root / 'sft'}", f"model={root / 'pretrain'}", "format=rinna", f"data.train=[{data}]",
        "train.steps=2", "train.batch_size=4", "train.eval_every=0", "train.save_every=0", "optim.warmup_steps=1"]))


@pytest.fixture(scope="module")
def extended_folder(sft_folder, tokenizer_dir, project_corpus) -> Path:
    """That model read at 4x its positions by linear interpolation (rinna's 8K recipe), trained one step on: its
    `rope_scaling` must reach every 4.x release (GPT-NeoX has had linear scaling since 4.31)."""
    return pretrain(load_config(PretrainConfig, overrides=[
        f"out={sft_folder.parent / 'extended'}", f"model={sft_folder}", f"tokenizer={tokenizer_dir}",
        f"data.train=[{project_corpus[0]}]", "data.seq_len=64", "context.extend_to=2048", "context.method=linear",
        "train.steps=1", "train.batch_size=2", "train.eval_every=0", "train.save_every=0", "optim.warmup_steps=0"]))


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory, tokenizer_dir) -> Path:
    """A tiny Llama with a RoPE base that is not 4.x's default, saved the way chowa saves every folder."""
    out = tmp_path_factory.mktemp("compat-llama")
    tokenizer = load_tokenizer(tokenizer_dir)
    model = build_model("llama-6.5b", tokenizer=tokenizer, seed=0, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, num_key_value_heads=2, intermediate_size=64,
                        rope_parameters={"rope_type": "default", "rope_theta": 50000.0})
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    finish_folder(out)
    return out


@pytest.mark.parametrize("release", list(RELEASES))
@pytest.mark.parametrize("which", ["sft_folder", "llama_folder", "extended_folder"])
def test_old_transformers_read_the_same_model(release, which, request):
    folder = request.getfixturevalue(which)
    theirs, ours = probe(release, folder), chowa_view(folder)
    assert theirs["version"].startswith(release)
    assert theirs["ids"] == ours["ids"]
    for their_logits, our_logits in zip(theirs["logits"], ours["logits"], strict=True):
        assert torch.allclose(torch.tensor(their_logits), our_logits, atol=1e-4), (
            (torch.tensor(their_logits) - our_logits).abs().max())
    assert theirs["chat"] == ours["chat"]


def test_a_byte_group_folder_runs_the_cards_usage_on_the_cards_transformers_4_56(tmp_path):
    """tohoku-nlp's card was tested on transformers 4.56.1: its usage gives the same ids, logits and bytes there."""
    from chowa.bytegroup.model import ByteGroupTokenizer, save_folder
    from test_bytegroup import _plain_transformers, tiny_model

    folder = save_folder(tiny_model(seed=3), ByteGroupTokenizer(), tmp_path / "bytes")
    texts = ["吾輩は猫である。", "名前は"]
    old = _plain_transformers(folder, texts, tmp_path, python=str(old_python("4.56")))
    new = _plain_transformers(folder, texts, tmp_path)
    assert old["ids"] == new["ids"] and old["out"] == new["out"] == old["explicit"]
    assert old["generate"] == "partial"  # 4.56 also put custom_generate/generate.py in place of generate
    torch.testing.assert_close(torch.tensor(old["logits"]), torch.tensor(new["logits"]), atol=1e-6, rtol=0)
