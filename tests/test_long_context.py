"""Long context: RoPE scaling configs, position interpolation, document-bounded packing, gradient checkpointing,
`chowa pretrain context.extend_to=...` and `chowa eval long` (loss by position, passkey retrieval)."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, BloomConfig

from chowa.cli import main as cli
from chowa.config.training import RuntimeConfig
from chowa.data.shards import PackedStream, document_windows
from chowa.errors import ChowaError
from chowa.eval.long import PASSKEY_PROMPTS, bucket_edges, passkey_trials, score_passkeys
from chowa.folders import context_length, finish_folder
from chowa.models.build import build_model
from chowa.models.context import extend_context
from chowa.models.presets import build_config
from chowa.ppo.layouts import PPOModel, find_blocks
from chowa.runtime import configure_model
from chowa.tokenizer import load_tokenizer

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
         "max_position_embeddings": 64}


def _config(kind: str):
    if kind == "gpt_neox":
        return build_config("tiny", vocab_size=100, **SMALL)
    return build_config({"model_type": "llama", "vocab_size": 100, "num_key_value_heads": 2, **SMALL})


def _rotary(model):
    return model.base_model.rotary_emb


@pytest.mark.parametrize("kind", ["gpt_neox", "llama"])
@pytest.mark.parametrize("method", ["linear", "dynamic", "yarn"])
def test_scaled_config_round_trips_through_save_and_load(tmp_path, kind, method):
    extended = extend_context(_config(kind), 256, method)
    model = build_model(extended, seed=0)
    model.save_pretrained(tmp_path)
    finish_folder(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["rope_parameters"]["rope_type"] == method and saved["rope_parameters"]["factor"] == 4.0
    assert saved["rope_scaling"]["type"] == method  # what transformers 4.x reads
    if method == "yarn":
        assert saved["rope_parameters"]["original_max_position_embeddings"] == 64
    assert saved["max_position_embeddings"] == (64 if method == "dynamic" else 256)
    assert context_length(saved) == 256
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)  # plain transformers, no chowa code
    # (4.x's `type` comes back beside `rope_type`: 5.x reads the legacy dict too)
    assert {k: v for k, v in reloaded.config.rope_parameters.items() if k != "type"} == model.config.rope_parameters
    ids = torch.randint(0, 100, (1, 200))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)


@pytest.mark.parametrize("kind", ["gpt_neox", "llama"])
def test_linear_interpolation_reads_position_4p_as_the_original_read_p(kind):
    plain = build_model(_config(kind), seed=0)
    scaled = build_model(extend_context(_config(kind), 256, "linear"), seed=0)
    x = torch.zeros(1, 1, 16)
    for p in (0, 1, 5, 63):
        cos_a, sin_a = _rotary(scaled)(x, torch.tensor([[4 * p]]))
        cos_b, sin_b = _rotary(plain)(x, torch.tensor([[p]]))
        assert torch.allclose(cos_a, cos_b, atol=1e-6) and torch.allclose(sin_a, sin_b, atol=1e-6)
    cos_a, _ = _rotary(scaled)(x, torch.tensor([[2]]))  # between the original positions: interpolated
    cos_b, _ = _rotary(plain)(x, torch.tensor([[2]]))
    assert not torch.allclose(cos_a, cos_b)


def test_extending_twice_scales_from_the_first_length_and_alibi_is_refused():
    once = extend_context(_config("gpt_neox"), 128, "linear")
    twice = extend_context(once, 256, "yarn")
    assert twice.rope_parameters["factor"] == 4.0 and twice.rope_parameters["original_max_position_embeddings"] == 64
    with pytest.raises(ChowaError, match="not longer than the model's trained context"):
        extend_context(once, 64, "linear")
    bloom = BloomConfig(n_layer=1, hidden_size=32, n_head=2, vocab_size=100)
    with pytest.raises(ChowaError, match="ALiBi"):
        extend_context(bloom, 8192, "linear")


def test_the_8k_preset_is_the_bilingual_model_with_linear_interpolation():
    base, long = build_config("rinna-bilingual-3.8b"), build_config("rinna-bilingual-3.8b-8k")
    assert long.max_position_embeddings == 8192 and long.rope_parameters["rope_type"] == "linear"
    assert long.rope_parameters["factor"] == 4.0
    assert {k: v for k, v in long.to_dict().items() if k not in ("max_position_embeddings", "rope_parameters")} == \
        {k: v for k, v in base.to_dict().items() if k not in ("max_position_embeddings", "rope_parameters")}


def test_windows_within_documents_never_cross_an_eos():
    eos = 0
    docs = [list(range(1, 12)), list(range(20, 24)), list(range(30, 52))]  # 11, 4 and 22 tokens, each + EOS
    tokens = np.array([t for d in docs for t in d + [eos]])
    starts = document_windows(tokens, 5, eos)
    assert starts.tolist() == [0, 5, 17, 22, 27, 32]  # 2 + 0 + 4 windows
    stream = PackedStream(tokens, 5, shuffle=False, within_documents_of=eos)
    for i in range(stream.num_windows):
        window = stream.window(i)
        assert len(window) == 6 and eos not in window[:-1].tolist()  # an EOS may only be the last target
    with pytest.raises(ChowaError, match="no document is as long as one window"):
        PackedStream(tokens, 30, within_documents_of=eos)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = build_model(_config("gpt_neox"), seed=0)
        configure_model(model, RuntimeConfig(gradient_checkpointing=checkpointing))
        model.train()
        ids = torch.randint(0, 100, (2, 32), generator=torch.Generator().manual_seed(0))
        model(ids, labels=ids).loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules()) == checkpointing
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_passkey_prompts_hold_the_key_at_its_depth_and_are_scored_by_teacher_forcing(tokenizer_dir):
    tokenizer = load_tokenizer(tokenizer_dir)
    trials = passkey_trials(tokenizer, 900, [0.0, 0.5, 1.0], 2, "en", random.Random(0))
    assert len(trials) == 6 and len({t.key for t in trials}) == 6
    filler = tokenizer.decode(tokenizer.encode(PASSKEY_PROMPTS["en"]["filler"], add_special_tokens=False))
    for trial in trials:
        assert 900 - len(tokenizer.encode(filler, add_special_tokens=False)) < len(trial.prompt) + len(
            trial.answer) <= 900
        text = tokenizer.decode(trial.prompt)
        assert text.endswith("What is the pass key? The pass key is")
        assert tokenizer.decode(trial.answer).strip() == trial.key
        before, _, after = text.partition(f"The pass key is {trial.key}. Remember it. {trial.key} is the pass key.")
        sentences = before.count(filler), after.count(filler)
        assert sentences[0] + sentences[1] >= 4
        expected = {0.0: (0, sum(sentences)), 1.0: (sum(sentences), 0)}.get(trial.depth)
        assert sentences == expected if expected else abs(sentences[0] - sentences[1]) <= 1

    class Oracle(torch.nn.Module):
        """Predicts each row's true next token (or, `wrong`, the token after it in the vocabulary)."""

        def __init__(self, wrong=False):
            super().__init__()
            self.wrong, self.weight = wrong, torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids):
            logits = torch.zeros(*input_ids.shape, len(tokenizer))
            following = (input_ids[:, 1:] + int(self.wrong)) % len(tokenizer)
            logits[:, :-1].scatter_(2, following[..., None], 20.0)
            return SimpleNamespace(logits=logits)

    right = score_passkeys(Oracle(), trials, batch_size=4, pad_id=0, progress=False)
    assert all(ok for ok, _ in right) and all(lp > -1e-3 for _, lp in right)
    wrong = score_passkeys(Oracle(wrong=True), trials, batch_size=4, pad_id=0, progress=False)
    assert not any(ok for ok, _ in wrong) and all(lp < -10 for _, lp in wrong)


def test_bucket_edges():
    assert bucket_edges(8192) == [512, 1024, 2048, 4096, 8192]
    assert bucket_edges(1024) == [128, 256, 512, 1024]
    assert bucket_edges(1024, [256, 2048]) == [256, 1024]


@pytest.mark.slow
def test_pretrain_extends_and_eval_long_reads_it(tmp_path, tokenizer_dir, project_corpus, capsys):
    """A 64-position model, extended x8 by YaRN and trained a few steps at 256; its folder loads in plain
    transformers with the scaled RoPE; `chowa eval long` writes its tables and plots for both models."""
    base, long = tmp_path / "base", tmp_path / "long"
    common = [f"tokenizer={tokenizer_dir}", "train.batch_size=2", "train.eval_every=0", "train.save_every=0",
              "optim.warmup_steps=0", "data.val_fraction=0.05"]
    corpus = [f"data.train=[{','.join(str(p) for p in project_corpus)}]"]
    assert cli(["pretrain", f"out={base}", *common, *corpus, "train.steps=3", "data.seq_len=64",
                "model_config.max_position_embeddings=64", "model_config.hidden_size=32",
                "model_config.num_hidden_layers=2", "model_config.num_attention_heads=2",
                "model_config.intermediate_size=64"]) == 0
    assert cli(["pretrain", f"out={long}", *common, *corpus, f"model={base}", "train.steps=2", "data.seq_len=256",
                "context.extend_to=512", "context.method=yarn", "runtime.gradient_checkpointing=true"]) == 0
    config = json.loads((long / "config.json").read_text())
    assert config["max_position_embeddings"] == 512 and config["rope_parameters"]["rope_type"] == "yarn"
    plain = AutoModelForCausalLM.from_pretrained(long)
    assert plain.config.rope_parameters["original_max_position_embeddings"] == 64
    out = tmp_path / "eval"
    assert cli(["eval", "long", "--model", f"base={base}", "--model", f"long={long}", "--input",
                str(project_corpus[0]), "--length", "512", "--windows", "2", "--passkey-lengths", "450",
                "--passkey-depths", "0", "1", "--passkey-trials", "1", "--out", str(out)]) == 0
    results = json.loads((out / "long.json").read_text())
    assert [m["name"] for m in results["models"]] == ["base", "long"]
    assert list(results["models"][1]["loss_by_bucket"]) == ["0–64", "64–128", "128–256", "256–512"]
    assert len(results["models"][0]["passkey"]) == 2
    assert (out / "loss_by_position.png").stat().st_size > 0 and (out / "passkey.png").stat().st_size > 0
    assert cli(["eval", "long", "--model", str(long), "--input", str(project_corpus[0]), "--length", "100000"]) == 2
    assert "fewer than one window" in capsys.readouterr().err


def test_ppo_layouts_copy_a_configured_policy_and_keep_the_frozen_bottom_out_of_backward():
    """runtime settings reach the policy before the hydra copies its reference blocks (which must read the masks
    the trunk builds for its kernel), and checkpointing does not make the frozen bottom require grad."""
    policy = build_model(_config("gpt_neox"), seed=0)
    configure_model(policy, RuntimeConfig(gradient_checkpointing=True, attention="eager"))
    model = PPOModel(policy, "hydra", num_layers_unfrozen=1)
    model.train()
    assert all(block.attention.config._attn_implementation == "eager" for block in model.reference.blocks)
    ids = torch.randint(1, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # left padding, which the copied blocks must see through the trunk's mask
    bottom = []
    hook = find_blocks(policy)[0].register_forward_hook(
        lambda module, args, output: bottom.append(output[0] if isinstance(output, tuple) else output))
    out = model.outputs(ids, mask)
    hook.remove()
    assert torch.allclose(out.logits[mask.bool()], out.ref_logits[mask.bool()], atol=1e-5)  # reference = policy
    assert not bottom[0].requires_grad
    out.logits.sum().backward()
    assert find_blocks(policy)[0].attention.query_key_value.weight.grad is None
