"""Model presets: sizes match the published models, configs round-trip, `tiny` really trains on a CPU."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig

from chowa.errors import ChowaError
from chowa.models import (
    PRESETS,
    build_config,
    build_model,
    format_model_info,
    format_preset_list,
    get_preset,
    model_info,
)

# Sizes the presets must reproduce, within 3% (model cards; weblab-10b's "10b" is a rounded name, its checkpoint
# holds 10.7B, see the comment at the preset).
PUBLISHED_SIZES = {
    "rinna-ja-3.6b": 3.6e9,
    "rinna-bilingual-3.8b": 3.8e9,
    "weblab-10b": 10.7e9,
    "bloomz-7b1": 7_069_016_064,
    "llama-6.5b": 6.5e9,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_SIZES))
def test_parameter_count_matches_model_card(name):
    total = model_info(name)["params"]["total"]
    assert total == pytest.approx(PUBLISHED_SIZES[name], rel=0.03)


def test_bloom_count_is_exactly_the_card():
    assert model_info("bloomz-7b1")["params"]["total"] == 7_069_016_064


def test_rinna_trunks_share_everything_but_the_vocabulary():
    ja, bilingual = model_info("rinna-ja-3.6b"), model_info("rinna-bilingual-3.8b")
    assert ja["params"]["non_embedding"] == bilingual["params"]["non_embedding"]
    assert (ja["vocab"], bilingual["vocab"]) == (32000, 65536)
    assert (ja["layers"], ja["hidden"], ja["heads"], ja["ffn"]) == (36, 2816, 22, 11264)


def test_small_is_about_100m():
    assert model_info("small")["params"]["total"] == pytest.approx(100e6, rel=0.15)


def test_architecture_details_survive_into_the_config():
    weblab = build_config("weblab-10b")
    assert weblab.rope_parameters["partial_rotary_factor"] == 0.25 and weblab.use_parallel_residual
    rinna = build_config("rinna-ja-3.6b")
    # transformers defaults GPT-NeoX to 25% rotary: rinna's 100% must be explicit
    assert rinna.rope_parameters["partial_rotary_factor"] == 1.0 and not rinna.use_parallel_residual
    assert (rinna.bos_token_id, rinna.eos_token_id) == (2, 3)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_round_trips_through_save_pretrained(name, tmp_path):
    config = build_config(name)
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert type(reloaded) is type(config)
    assert _values(reloaded) == _values(config)
    assert _values(build_config(tmp_path)) == _values(config)  # a folder is a model spec too


def _values(config) -> dict:
    return {key: value for key, value in config.to_dict().items() if key != "_name_or_path"}


def test_tiny_builds_runs_and_learns_on_cpu():
    model = build_model("tiny", vocab_size=100, seed=0)
    ids = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert model(input_ids=ids).logits.shape == (2, 16, 100)
    assert losses[-1] < losses[0]


def test_same_seed_same_weights_and_dtype_option():
    first, second = build_model("tiny", vocab_size=64, seed=3), build_model("tiny", vocab_size=64, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters(), strict=True))
    assert not torch.equal(first.get_input_embeddings().weight, build_model("tiny", vocab_size=64, seed=4)
                           .get_input_embeddings().weight)
    assert build_model("tiny", vocab_size=64, dtype="bf16").dtype == torch.bfloat16


def test_small_head_is_tied_to_the_embedding():
    model = build_model("small", vocab_size=128, num_hidden_layers=1)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_vocab_and_special_ids_come_from_the_tokenizer():
    class Tokenizer:  # the attributes build_config reads from a Hugging Face tokenizer
        bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

        def __len__(self):
            return 321

    config = build_config("tiny", tokenizer=Tokenizer())
    assert (config.vocab_size, config.bos_token_id, config.eos_token_id, config.pad_token_id) == (321, 1, 2, 0)


def test_overrides_and_config_dicts():
    config = build_config({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2}, vocab_size=50,
                          num_attention_heads=4)
    assert (config.model_type, config.vocab_size, config.num_attention_heads) == ("llama", 50, 4)
    assert build_config("bloomz-7b1", num_hidden_layers=2).n_layer == 2  # attribute_map names work


def test_user_errors_name_the_culprit(tmp_path):
    with pytest.raises(ChowaError, match="unknown model preset 'gpt5'.*rinna-ja-3.6b"):
        build_config("gpt5")
    with pytest.raises(ChowaError, match="hiden_size"):
        build_config("tiny", hiden_size=64)
    with pytest.raises(ChowaError, match="rotary_pct"):  # would silently lose to the preset's rope_parameters
        build_config("weblab-10b", rotary_pct=1.0)
    with pytest.raises(ChowaError, match="no config.json"):
        build_config(tmp_path)
    with pytest.raises(ChowaError, match="model_type"):
        build_config({"hidden_size": 64})
    with pytest.raises(ChowaError, match="dtype"):
        build_model("tiny", dtype="float8")


def test_text_output_names_the_facts():
    text = format_model_info(model_info("rinna-ja-3.6b"))
    assert "GPTNeoXForCausalLM" in text and "3,607,245,312" in text and "rinna/japanese-gpt-neox-3.6b" in text
    assert "ALiBi" in format_model_info(model_info("bloomz-7b1"))
    listing = format_preset_list().splitlines()
    assert [line.split()[0] for line in listing] == list(PRESETS)
    assert get_preset("tiny").model_type == "gpt_neox"
