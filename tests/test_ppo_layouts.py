"""PPO layouts on tiny GPT-NeoX, Llama and BLOOM models: hydra reference exactness, what trains, saving."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    BloomConfig,
    BloomForCausalLM,
    CohereConfig,
    CohereForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
)

from chowa.errors import ChowaError
from chowa.padding import position_ids_from_mask
from chowa.ppo.layouts import PPOModel, find_blocks
from chowa.ppo.losses import entropy_from_logits, logprobs_from_logits

VOCAB, PAD = 64, 0
ARCHS = ("gpt_neox", "llama", "bloom")


def tiny_model(arch: str, seed: int = 0) -> PreTrainedModel:
    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, hidden_size=32, pad_token_id=PAD)
    if arch == "gpt_neox":
        config = GPTNeoXConfig(num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                               max_position_embeddings=64, **common)
        return GPTNeoXForCausalLM(config).eval()
    if arch == "llama":
        config = LlamaConfig(num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                             max_position_embeddings=64, **common)
        return LlamaForCausalLM(config).eval()
    return BloomForCausalLM(BloomConfig(n_layer=4, n_head=4, **common)).eval()  # ties embeddings and LM head


def batch(padding: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows, the second 4 tokens long and padded on the left or the right. (2, 6) ids and mask."""
    if padding == "right":
        ids, mask = [[5, 9, 13, 17, 21, 25], [7, 11, 19, 23, PAD, PAD]], [[1] * 6, [1, 1, 1, 1, 0, 0]]
    else:
        ids, mask = [[5, 9, 13, 17, 21, 25], [PAD, PAD, 7, 11, 19, 23]], [[1] * 6, [0, 0, 1, 1, 1, 1]]
    return torch.tensor(ids), torch.tensor(mask)


def next_token_logprobs(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-prob of each real next token given a real context: (2, 6, V) -> (n,) over valid pairs."""
    valid = (mask[:, :-1] * mask[:, 1:]).bool()
    return logprobs_from_logits(logits[:, :-1], ids[:, 1:])[valid]


def train_step(ppo_model: PPOModel, ids: torch.Tensor, mask: torch.Tensor, group: str | None = None) -> None:
    groups = ppo_model.parameter_groups()
    params = groups[group] if group else groups["policy"] + groups["value"]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    out = ppo_model.outputs(ids, mask, with_reference=False)
    (-next_token_logprobs(out.logits, ids, mask).mean() + out.values.pow(2).mean()).backward()
    optimizer.step()
    optimizer.zero_grad()


@pytest.mark.parametrize("padding", ["left", "right"])
@pytest.mark.parametrize("arch", ARCHS)
def test_hydra_reference_equals_full_frozen_reference_before_and_after_training(arch, padding):
    ids, mask = batch(padding)
    hydra = PPOModel(tiny_model(arch), layout="hydra", num_layers_unfrozen=2)
    separate = PPOModel(tiny_model(arch), layout="separate", num_layers_unfrozen=2)
    initial = copy.deepcopy(hydra.policy)
    bottom = {k: v.clone() for k, v in hydra.policy.state_dict().items() if not _in_top(k, hydra, 2)}

    out = hydra.outputs(ids, mask)
    ref = next_token_logprobs(out.ref_logits, ids, mask)
    torch.testing.assert_close(ref, next_token_logprobs(separate.outputs(ids, mask).ref_logits, ids, mask),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(ref, next_token_logprobs(out.logits, ids, mask), atol=1e-5, rtol=0)

    train_step(hydra, ids, mask)
    after = hydra.outputs(ids, mask)
    torch.testing.assert_close(next_token_logprobs(after.ref_logits, ids, mask), ref, atol=1e-5, rtol=0)
    initial_logits = initial(ids, attention_mask=mask, **_positions(initial, mask)).logits
    torch.testing.assert_close(next_token_logprobs(initial_logits, ids, mask), ref, atol=1e-5, rtol=0)
    assert not torch.allclose(next_token_logprobs(after.logits, ids, mask), ref, atol=1e-3)
    state = hydra.policy.state_dict()
    assert all(torch.equal(state[k], v) for k, v in bottom.items())


@pytest.mark.parametrize("arch", ARCHS)
def test_hydra_gradients_reach_only_the_top_blocks_and_value_head(arch):
    ids, mask = batch("right")
    ppo_model = PPOModel(tiny_model(arch), layout="hydra", num_layers_unfrozen=2)
    out = ppo_model.outputs(ids, mask)
    (out.logits.mean() + out.values.mean()).backward()
    blocks = find_blocks(ppo_model.policy)
    assert all(p.grad is None for block in blocks[:2] for p in block.parameters())
    assert ppo_model.policy.get_input_embeddings().weight.grad is None
    assert all(p.grad is not None for block in blocks[2:] for p in block.parameters())
    assert all(p.grad is not None for p in ppo_model.value_head.parameters())
    assert all(p.grad is None for p in ppo_model.reference.parameters())


@pytest.mark.parametrize("padding", ["left", "right"])
@pytest.mark.parametrize("arch", ARCHS)
def test_reference_branch_value_trains_and_reference_never_changes(arch, padding):
    ids, mask = batch(padding)
    ppo_model = PPOModel(tiny_model(arch), layout="reference-branch", num_layers_unfrozen=2)
    before = ppo_model.outputs(ids, mask)
    torch.testing.assert_close(next_token_logprobs(before.ref_logits, ids, mask),
                               next_token_logprobs(before.logits, ids, mask), atol=1e-5, rtol=0)
    train_step(ppo_model, ids, mask, group="value")
    after = ppo_model.outputs(ids, mask)
    assert not torch.allclose(after.values, before.values, atol=1e-4)
    assert torch.equal(after.ref_logits, before.ref_logits)
    assert torch.equal(after.logits, before.logits)  # only the value branch was stepped
    # The value branch is a copy: no parameter is shared with the policy's top blocks.
    policy_params = {id(p) for p in ppo_model.policy.parameters()}
    assert not any(id(p) in policy_params for p in ppo_model.value_branch.parameters())


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_layout_gives_a_value_per_position_from_the_policy_trunk(arch):
    ids, mask = batch("left")
    ppo_model = PPOModel(tiny_model(arch), layout="shared", num_layers_unfrozen=-1)
    out = ppo_model.outputs(ids, mask)
    assert out.values.shape == ids.shape and out.values.dtype == torch.float32
    assert out.values.unique().numel() > 1
    out.values.sum().backward()
    assert next(find_blocks(ppo_model.policy)[-1].parameters()).grad is not None
    assert isinstance(ppo_model.reference, PreTrainedModel)


@pytest.mark.parametrize("arch", ARCHS)
def test_separate_layout_value_trunk_is_its_own(arch):
    ids, mask = batch("right")
    ppo_model = PPOModel(tiny_model(arch), layout="separate", num_layers_unfrozen=-1)
    out = ppo_model.outputs(ids, mask)
    assert out.values.shape == ids.shape
    out.values.sum().backward()
    assert all(p.grad is None for p in ppo_model.policy.parameters())
    assert all(p.grad is not None for p in ppo_model.parameter_groups()["value"])


@pytest.mark.parametrize("k", [0, -1])
def test_hydra_with_k_at_most_0_builds_an_explicit_full_reference(k):
    ids, mask = batch("left")
    ppo_model = PPOModel(tiny_model("llama"), layout="hydra", num_layers_unfrozen=k)
    assert isinstance(ppo_model.reference, PreTrainedModel) and not ppo_model.hydra
    trainable = [p.requires_grad for p in ppo_model.policy.parameters()]
    assert all(trainable) if k == -1 else not any(trainable)
    out = ppo_model.outputs(ids, mask)
    torch.testing.assert_close(out.ref_logits, out.logits)
    if k == -1:
        train_step(ppo_model, ids, mask)
        assert not torch.allclose(ppo_model.outputs(ids, mask).logits, out.ref_logits, atol=1e-3)
        torch.testing.assert_close(ppo_model.outputs(ids, mask).ref_logits, out.ref_logits)


@pytest.mark.parametrize("layout, bottom_calls", [("hydra", 1), ("reference-branch", 1), ("shared", 2)])
def test_hydra_layouts_serve_policy_reference_and_value_from_one_trunk_pass(layout, bottom_calls):
    ids, mask = batch("left")
    ppo_model = PPOModel(tiny_model("llama"), layout=layout, num_layers_unfrozen=2)
    calls = []
    trunks = [m for m in (ppo_model.policy, ppo_model.reference) if isinstance(m, PreTrainedModel)]
    for trunk in trunks:  # the bottom block of every full model the layout holds
        find_blocks(trunk)[0].register_forward_hook(lambda *_: calls.append(1))
    ppo_model.outputs(ids, mask)
    assert len(calls) == bottom_calls


@pytest.mark.parametrize("layout", ["separate", "shared", "hydra", "reference-branch"])
@pytest.mark.parametrize("arch", ARCHS)
def test_scoring_the_response_tail_equals_reading_it_from_the_full_logits(arch, layout):
    # prompts: the first 3 columns (left-padded), responses: the last 3. forward() keeps logits only there.
    ids = torch.tensor([[5, 9, 13, 17, 21, 25], [PAD, 7, 11, 19, 23, PAD]])
    mask = torch.tensor([[1] * 6, [0, 1, 1, 1, 1, 0]])
    ppo_model = PPOModel(tiny_model(arch), layout=layout, num_layers_unfrozen=2)
    with torch.no_grad():
        full = ppo_model.outputs(ids, mask)
        scores = ppo_model(ids, mask, first=3, temperature=0.7, with_entropy=True)
    labels, logits = ids[:, 3:], full.logits[:, 2:5]
    torch.testing.assert_close(scores.logprobs, logprobs_from_logits(logits, labels, 0.7), atol=1e-5, rtol=0)
    torch.testing.assert_close(scores.ref_logprobs, logprobs_from_logits(full.ref_logits[:, 2:5], labels, 0.7),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(scores.values, full.values[:, 2:5], atol=1e-5, rtol=0)
    torch.testing.assert_close(scores.entropy, entropy_from_logits(logits / 0.7), atol=1e-5, rtol=0)
    assert ppo_model(ids, mask, first=3, with_reference=False).ref_logprobs is None
    if layout in ("shared", "hydra"):  # the value head reads the model's last hidden state, caught at the norm
        with torch.no_grad():
            hidden = ppo_model.policy(ids, attention_mask=mask, position_ids=position_ids_from_mask(mask),
                                      output_hidden_states=True).hidden_states[-1]
        torch.testing.assert_close(full.values, ppo_model.value_head(hidden), atol=1e-6, rtol=0)


def test_shared_layout_reads_the_last_hidden_state_of_a_decoder_whose_final_norm_is_not_found(monkeypatch):
    ids, mask = batch("left")
    expected = PPOModel(tiny_model("llama"), layout="shared", num_layers_unfrozen=-1).outputs(ids, mask).values
    monkeypatch.setattr("chowa.ppo.layouts._FINAL_NORM_NAMES", ())
    torch.testing.assert_close(PPOModel(tiny_model("llama"), layout="shared", num_layers_unfrozen=-1)
                               .outputs(ids, mask).values, expected)


@pytest.mark.parametrize("arch", ARCHS)
def test_hydra_under_activation_checkpointing(arch):
    ids, mask = batch("left")
    ppo_model = PPOModel(tiny_model(arch), layout="hydra", num_layers_unfrozen=2)
    ppo_model.policy.activation_checkpointing_enable()
    ppo_model.train()
    out = ppo_model.outputs(ids, mask)
    (out.logits.mean() + out.values.mean()).backward()
    assert all(p.grad is not None for p in ppo_model.parameter_groups()["policy"])
    torch.testing.assert_close(next_token_logprobs(out.ref_logits, ids, mask),
                               next_token_logprobs(out.logits.detach(), ids, mask), atol=1e-5, rtol=0)


def test_hydra_refuses_an_architecture_whose_logits_the_branch_cannot_reproduce():
    # Cohere multiplies the LM head's output by `logit_scale`, which a generic branch does not know about.
    torch.manual_seed(0)
    config = CohereConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                          num_key_value_heads=2, intermediate_size=64, pad_token_id=PAD, bos_token_id=1,
                          eos_token_id=2, logit_scale=0.5)
    with pytest.raises(ChowaError, match="does not reproduce CohereForCausalLM"):
        PPOModel(CohereForCausalLM(config), layout="hydra", num_layers_unfrozen=2)


def test_bad_layout_settings_raise_a_clear_error():
    with pytest.raises(ChowaError, match="layout must be one of"):
        PPOModel(tiny_model("llama"), layout="triple")
    with pytest.raises(ChowaError, match="reference-branch"):
        PPOModel(tiny_model("llama"), layout="reference-branch", num_layers_unfrozen=0)
    with pytest.raises(ChowaError, match="num_layers_unfrozen"):
        PPOModel(tiny_model("llama"), num_layers_unfrozen=5)


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_policy_reloads_as_a_plain_causal_lm(arch, tmp_path):
    ids, mask = batch("left")
    ppo_model = PPOModel(tiny_model(arch), layout="hydra", num_layers_unfrozen=2)
    train_step(ppo_model, ids, mask)
    ppo_model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = ppo_model.outputs(ids, mask, with_reference=False).logits
        actual = reloaded(ids, attention_mask=mask, **_positions(reloaded, mask)).logits
    assert torch.equal(actual, expected)


def _in_top(key: str, ppo_model: PPOModel, k: int) -> bool:
    """Whether a policy state-dict key belongs to what hydra trains: top k blocks, final norm, untied head."""
    num_blocks = len(find_blocks(ppo_model.policy))
    trainable = {n for n, p in ppo_model.policy.named_parameters() if p.requires_grad}
    return key in trainable or any(f".{i}." in key for i in range(num_blocks - k, num_blocks))


def _positions(model: PreTrainedModel, mask: torch.Tensor) -> dict:
    return {"position_ids": position_ids_from_mask(mask)} if not isinstance(model, BloomForCausalLM) else {}
