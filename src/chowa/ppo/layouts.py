"""Where PPO's policy, value and reference live, for any Hugging Face decoder-only causal LM.

Layouts (`PPOModel(policy, layout=..., num_layers_unfrozen=k)`):
- `separate`: a full frozen copy of the policy as reference; a separate trunk (a copy of the policy's, or a given
  model such as the reward model) with a scalar value head.
- `shared`: a full frozen reference; the value head sits on the policy trunk's last hidden state.
- `hydra` (trlx): bottom L−k blocks and the embeddings frozen and shared; the reference is a frozen copy of the top
  k blocks + final norm + LM head fed the trunk's hidden state at the input of block L−k, so one trunk pass serves
  policy, value and reference. k ≤ 0 falls back to a full frozen reference (never a hydra branch: trlx's k ≤ 0 bug).
- `reference-branch` (keyfan/bloomz-rlhf): as hydra, but the value is a trainable copy of the top k blocks + norm,
  fed from the same frozen bottom, with the value head on top; no trainable weight is shared by the three tops.

Blocks, final norm and LM head are found generically (`base_model.layers | h | blocks`, `norm | final_layer_norm |
ln_f`, `get_output_embeddings()`), and branch blocks are called with the arguments the trunk gave the original block,
so causal masks, rotary embeddings and BLOOM's alibi come from the model's own code.

Run as (from Python):
    ppo_model = PPOModel(AutoModelForCausalLM.from_pretrained("runs/sft"), layout="hydra", num_layers_unfrozen=2)
    scores = ppo_model(input_ids, attention_mask, first=prompt_width)  # log-probs, values, ref log-probs (B, T)
    out = ppo_model.outputs(input_ids, attention_mask)  # out.logits (B, T, V), out.values (B, T), out.ref_logits
    ppo_model.save_pretrained("runs/ppo/final")  # a plain causal-LM folder
"""

from __future__ import annotations

import copy
import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from chowa.config.ppo import LAYOUTS
from chowa.errors import ChowaError
from chowa.folders import finish_folder
from chowa.kvcache import accepts
from chowa.padding import position_ids_from_mask
from chowa.ppo import losses
from chowa.ppo.heads import BlockInput, TopBlocks, ValueHead, capture_block_input, capture_output

_BLOCK_LIST_NAMES = ("layers", "h", "blocks", "block")
_FINAL_NORM_NAMES = ("norm", "final_layer_norm", "ln_f", "final_layernorm", "final_norm")


def _decoder(model: PreTrainedModel) -> nn.Module:
    """The module holding the block list: the base model, or its `decoder` / `language_model`."""
    base = model.base_model
    for candidate in (base, getattr(base, "decoder", None), getattr(base, "language_model", None)):
        if candidate is not None and any(isinstance(getattr(candidate, n, None), nn.ModuleList)
                                         for n in _BLOCK_LIST_NAMES):
            return candidate
    raise ChowaError(f"cannot find the decoder blocks of {type(model).__name__}: expected a ModuleList named one of "
                     f"{_BLOCK_LIST_NAMES} on its base model; use layout 'separate' or 'shared' with "
                     "num_layers_unfrozen: -1")


def find_blocks(model: PreTrainedModel) -> nn.ModuleList:
    """The decoder block list (GPT-NeoX, Llama: `.layers`; BLOOM, GPT-2: `.h`)."""
    decoder = _decoder(model)
    return next(getattr(decoder, n) for n in _BLOCK_LIST_NAMES if isinstance(getattr(decoder, n, None), nn.ModuleList))


def find_final_norm(model: PreTrainedModel) -> nn.Module:
    """The norm after the last block (Llama: `norm`, GPT-NeoX: `final_layer_norm`, BLOOM, GPT-2: `ln_f`)."""
    decoder = _decoder(model)
    for name in _FINAL_NORM_NAMES:
        if isinstance(getattr(decoder, name, None), nn.Module):
            return getattr(decoder, name)
    raise ChowaError(f"cannot find the final norm of {type(model).__name__}: expected one of {_FINAL_NORM_NAMES}")


def _final_norm_or_none(model: PreTrainedModel) -> nn.Module | None:
    try:
        return find_final_norm(model)
    except ChowaError:
        return None


def freeze_for_ppo(model: PreTrainedModel, num_layers_unfrozen: int) -> None:
    """k > 0: train only the top k blocks, the final norm and an untied LM head; k = 0: train nothing; k = −1: all.

    A tied LM head stays frozen with the input embeddings: if it trained, the "frozen" bottom would drift with it
    (trlx issue #517).
    """
    model.requires_grad_(num_layers_unfrozen < 0)
    if num_layers_unfrozen <= 0:
        return
    find_blocks(model)[-num_layers_unfrozen:].requires_grad_(True)
    find_final_norm(model).requires_grad_(True)
    lm_head = model.get_output_embeddings()
    if lm_head.weight is not model.get_input_embeddings().weight:
        lm_head.requires_grad_(True)


def disable_dropout(model: nn.Module) -> None:
    """Set every dropout probability to 0: a hydra reference is exact only without dropout, and PPO's ratio must be
    1 on the first step. Covers `nn.Dropout` modules and float attributes such as BLOOM's `hidden_dropout`.
    """
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        for name, value in list(vars(module).items()):
            if "dropout" in name and isinstance(value, float):
                setattr(module, name, 0.0)


@dataclass
class TokenScores:
    """Per scored token, all (B, N): policy log-probs, values, reference log-probs and the policy's entropy (the
    last two None unless asked for)."""

    logprobs: torch.Tensor
    values: torch.Tensor
    ref_logprobs: torch.Tensor | None
    entropy: torch.Tensor | None


@dataclass
class PPOModelOutput:
    """logits: (B, T, V) policy; values: (B, T) fp32; ref_logits: (B, T, V) frozen reference, or None."""

    logits: torch.Tensor
    values: torch.Tensor
    ref_logits: torch.Tensor | None


class PPOModel(nn.Module):
    """A policy, its value estimate and its frozen reference, in one of `LAYOUTS`; see the module docstring."""

    def __init__(self, policy: PreTrainedModel, layout: str = "hydra", num_layers_unfrozen: int = 2,
                 value_model: PreTrainedModel | None = None):
        super().__init__()
        if layout not in LAYOUTS:
            raise ChowaError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        num_blocks = len(find_blocks(policy))
        if not -1 <= num_layers_unfrozen <= num_blocks:
            raise ChowaError(f"num_layers_unfrozen must be -1..{num_blocks} for this model, not {num_layers_unfrozen}")
        if layout == "reference-branch" and num_layers_unfrozen <= 0:
            raise ChowaError("layout 'reference-branch' needs num_layers_unfrozen >= 1 (the value branch's depth)")
        disable_dropout(policy)
        self.layout, self.num_layers_unfrozen, self.policy = layout, num_layers_unfrozen, policy
        self.hydra = layout in ("hydra", "reference-branch") and num_layers_unfrozen > 0
        # Copies are taken before anything trains, so the reference is the initial policy.
        if self.hydra:
            self.reference = TopBlocks(self._top_blocks(), find_final_norm(policy), policy.get_output_embeddings(),
                                       trainable=False)
            self._check_reference_branch()
        else:
            self.reference = copy.deepcopy(policy).requires_grad_(False).eval()
        self.value_branch = (TopBlocks(self._top_blocks(), find_final_norm(policy), None, trainable=True)
                             if layout == "reference-branch" else None)
        self.value_trunk = None
        if layout == "separate":
            source = value_model if value_model is not None else policy
            self.value_trunk = copy.deepcopy(source.base_model).requires_grad_(True)
            disable_dropout(self.value_trunk)
        # FSDP's auto-wrap shards each block of this name in its own unit: the policy's and every copy's.
        self._no_split_modules = sorted({name for model in (policy, value_model) if model is not None
                                         for name in getattr(model, "_no_split_modules", None) or []})
        value_config = (self.value_trunk if self.value_trunk is not None else policy).config
        self.value_head = ValueHead(value_config.get_text_config().hidden_size)
        freeze_for_ppo(policy, num_layers_unfrozen)

    def _top_blocks(self) -> list[nn.Module]:
        return list(find_blocks(self.policy)[-self.num_layers_unfrozen:])

    def train(self, mode: bool = True) -> PPOModel:
        super().train(mode)
        self.reference.eval()
        return self

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters: {"policy": [...], "value": [...]} (value: head, branch or separate trunk)."""
        value_modules = [m for m in (self.value_head, self.value_branch, self.value_trunk) if m is not None]
        return {"policy": [p for p in self.policy.parameters() if p.requires_grad],
                "value": [p for m in value_modules for p in m.parameters() if p.requires_grad]}

    def outputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, with_reference: bool = True,
                logits_to_keep: int = 0) -> PPOModelOutput:
        """input_ids, attention_mask: (B, T), left or right padded -> logits, values and (optionally) ref_logits.

        `logits_to_keep` > 0: all three at the last this-many positions only. Position ids follow the mask (as in
        `generate`); the reference runs without autograd.
        """
        inputs, captured, logits, values = self._policy_and_values(input_ids, attention_mask, with_reference,
                                                                   logits_to_keep)
        ref_logits = self._reference_logits(inputs, captured, logits_to_keep) if with_reference else None
        return PPOModelOutput(logits, values, ref_logits)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, first: int, temperature: float = 1.0,
                with_reference: bool = True, with_entropy: bool = False) -> TokenScores:
        """Scores of the tokens `input_ids[:, first:]` (first ≥ 1), each read at the position before it: all
        (B, T − first).

        What PPO trains on (so it is `forward`, and runs through accelerate's wrappers). Logits, the largest
        tensors of a PPO step, are computed only at those positions and live only until their log-probs are
        taken; the policy's are gone before the reference's exist.
        """
        keep = input_ids.shape[1] - first + 1
        labels = input_ids[:, first:]
        inputs, captured, logits, values = self._policy_and_values(input_ids, attention_mask, with_reference, keep)
        logprobs, entropy = losses.token_logprobs(logits[:, :-1], labels, temperature, with_entropy)
        del logits
        ref_logprobs = None
        if with_reference:
            ref_logits = self._reference_logits(inputs, captured, keep)[:, :-1]
            ref_logprobs, _ = losses.token_logprobs(ref_logits, labels, temperature)
        return TokenScores(logprobs, values[:, :-1], ref_logprobs, entropy)

    def _policy_and_values(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, with_reference: bool,
                           logits_to_keep: int) -> tuple[dict, BlockInput, torch.Tensor, torch.Tensor]:
        """One trunk pass: (the inputs, the captured branch input, policy logits, values), at the kept positions."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
        if accepts(self.policy, "position_ids"):
            inputs["position_ids"] = position_ids_from_mask(attention_mask)
        if logits_to_keep and accepts(self.policy, "logits_to_keep"):
            inputs["logits_to_keep"] = logits_to_keep
        branch_input = self.hydra and (with_reference or self.value_branch is not None)
        block = find_blocks(self.policy)[-self.num_layers_unfrozen] if branch_input else None
        # Only the last hidden state is read (by a value head on the policy), so it is captured at the final norm
        # instead of asking the model for every layer's; a decoder whose norm is not found gives all of them.
        value_on_policy = self.layout in ("shared", "hydra")
        norm = _final_norm_or_none(self.policy) if value_on_policy else None
        with (capture_block_input(block) if branch_input else nullcontext(BlockInput()) as captured,
              capture_output(norm) if norm is not None else nullcontext([]) as last_hidden):
            output = self.policy(**inputs, output_hidden_states=value_on_policy and norm is None)
        logits = output.logits[:, -logits_to_keep:]
        if value_on_policy and norm is None:
            last_hidden = [output.hidden_states[-1]]
        del output
        hidden = self._value_hidden_states(inputs, last_hidden, captured, logits_to_keep)
        return inputs, captured, logits, self.value_head(hidden)

    def _reference_logits(self, inputs: dict, captured: BlockInput, logits_to_keep: int) -> torch.Tensor:
        with torch.no_grad():
            if self.hydra:
                return self.reference(captured, logits_to_keep)
            return self.reference(**inputs).logits[:, -logits_to_keep:]

    def _value_hidden_states(self, inputs: dict, last_hidden: list[torch.Tensor], captured: BlockInput,
                             logits_to_keep: int) -> torch.Tensor:
        """(B, K, D): the input of the value head in this layout, at the kept positions."""
        if self.value_branch is not None:
            return self.value_branch(captured, logits_to_keep)
        if self.value_trunk is not None:
            trunk_inputs = {k: v for k, v in inputs.items()
                            if k != "logits_to_keep" and (k != "position_ids" or accepts(self.value_trunk, k))}
            return self.value_trunk(**trunk_inputs).last_hidden_state[:, -logits_to_keep:]
        return last_hidden[0][:, -logits_to_keep:]

    def save_pretrained(self, out_dir: str | os.PathLike) -> None:
        """Write the policy as a plain causal-LM folder (`AutoModelForCausalLM.from_pretrained` reloads it)."""
        self.policy.save_pretrained(out_dir)
        finish_folder(out_dir)

    @torch.no_grad()
    def _check_reference_branch(self) -> None:
        """Fail at build time, not as a silently wrong KL, if the branch does not reproduce the model's logits
        (e.g. an architecture that scales or soft-caps logits after the LM head)."""
        was_training = self.policy.training
        self.policy.eval()
        num_tokens = min(8, self.policy.config.get_text_config().vocab_size)
        probe = torch.arange(num_tokens, device=self.policy.device).unsqueeze(0)
        with capture_block_input(find_blocks(self.policy)[-self.num_layers_unfrozen]) as captured:
            logits = self.policy(input_ids=probe, attention_mask=torch.ones_like(probe), use_cache=False).logits
        self.policy.train(was_training)
        if not torch.allclose(self.reference(captured).float(), logits.float(), rtol=1e-3, atol=1e-3):
            raise ChowaError(f"the hydra reference branch does not reproduce {type(self.policy).__name__}'s logits; "
                             "use layout 'shared' or 'separate'")
