"""Choosing a row's next token (or byte group) when every row of a batch has its own settings and random stream.

A row's settings follow Hugging Face `generate`: the repetition penalty (CTRL) over the row's own ids, then
temperature, top-k, top-p and the model's own filters (min-p, typical, epsilon, eta); the draw takes one uniform
number from the row's own seeded stream and inverts the CDF of the filtered distribution. The same draw serves
`chowa.generate`'s `_RowSampler` (inside HF `generate`, for PPO's rollouts) and the continuous-batching engine, so a
sampled reply is the same whichever runs it and whatever rows share its batch.

Run as (from Python):
    settings = DecodeSettings.of({"do_sample": True, "temperature": 0.7}, model)
    token = choose_token(logits_row, seen_ids, settings, RowStream(seed=3, device="cpu"))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from transformers import GenerationConfig
from transformers.generation.logits_process import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    LogitsProcessor,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from chowa.errors import ChowaError

# transformers' defaults for a setting neither the request nor the model's generation_config gives
_HF_DEFAULTS = {"temperature": 1.0, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.0, "min_p": None,
                "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0}


@dataclass(frozen=True)
class DecodeSettings:
    """How one row picks its next token: greedy (argmax) or a draw from the filtered distribution."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float | None = None
    typical_p: float = 1.0
    epsilon_cutoff: float = 0.0
    eta_cutoff: float = 0.0
    repetition_penalty: float = 1.0
    valid_groups: bool = False
    """Byte-group models: only groups the codec allows (spec §6.4)."""

    @classmethod
    def of(cls, options: dict, model: torch.nn.Module) -> DecodeSettings:
        """The settings `generate` would use for `options` (`Sampling.resolve`'s): what is set, else the model's
        generation_config, else transformers' default (top-k 50 when sampling, as `chowa generate` has it)."""
        config = getattr(model, "generation_config", None)

        def setting(key: str):
            value = options.get(key)
            value = getattr(config, key, None) if value is None else value
            return _HF_DEFAULTS[key] if value is None else value

        penalty, valid = setting("repetition_penalty"), bool(options.get("valid_groups"))
        if not options.get("do_sample"):
            return cls(repetition_penalty=penalty, valid_groups=valid)
        if getattr(config, "top_h", None) is not None:
            raise ChowaError("the model's generation config sets top_h, which chowa's per-prompt sampling does not "
                             "apply; remove it from generation_config.json")
        return cls(True, *(setting(key) for key in ("temperature", "top_k", "top_p", "min_p", "typical_p",
                                                    "epsilon_cutoff", "eta_cutoff")), penalty, valid)

    def warpers(self, device: torch.device | str) -> list[LogitsProcessor]:
        """The sampling filters, in `generate`'s order (none when greedy)."""
        if not self.do_sample:
            return []
        warpers = [TemperatureLogitsWarper(self.temperature)] if self.temperature != 1.0 else []
        warpers += [TopKLogitsWarper(self.top_k)] if self.top_k else []
        warpers += [TopPLogitsWarper(self.top_p)] if self.top_p < 1.0 else []
        warpers += [MinPLogitsWarper(self.min_p)] if self.min_p is not None else []
        warpers += [TypicalLogitsWarper(self.typical_p)] if self.typical_p < 1.0 else []
        warpers += [EpsilonLogitsWarper(self.epsilon_cutoff)] if 0.0 < self.epsilon_cutoff < 1.0 else []
        warpers += [EtaLogitsWarper(self.eta_cutoff, device=device)] if 0.0 < self.eta_cutoff < 1.0 else []
        return warpers


# Settings a model's generation_config may carry that `generate` would apply and the engine does not.
_NOT_APPLIED = ("no_repeat_ngram_size", "bad_words_ids", "suppress_tokens", "begin_suppress_tokens", "sequence_bias",
                "forced_bos_token_id", "forced_eos_token_id", "min_length", "min_new_tokens", "num_beams",
                "diversity_penalty", "encoder_repetition_penalty", "exponential_decay_length_penalty",
                "renormalize_logits", "guidance_scale", "penalty_alpha")


def check_generation_config(model: torch.nn.Module) -> None:
    """ChowaError naming the settings of the model's generation_config that chowa's generation would not apply
    (a reply would silently differ from `generate`'s)."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return
    default = GenerationConfig()
    found = [key for key in _NOT_APPLIED if getattr(config, key, None) != getattr(default, key, None)]
    if found:
        raise ChowaError(f"the model's generation_config sets {', '.join(found)}, which chowa's generation does not "
                         "apply; remove them from generation_config.json (or set them to their defaults)")


def stop_token_ids(model: torch.nn.Module, tokenizer) -> frozenset[int]:
    """The ids that end a reply: the tokenizer's EOS and every `eos_token_id` of the model's generation_config."""
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None)
    extra = [] if extra is None else [extra] if isinstance(extra, int) else list(extra)
    return frozenset([tokenizer.eos_token_id, *extra]) - {None}


class RowStream:
    """A row's random numbers: its k-th draw uses the k-th uniform of a generator seeded with `seed` (drawn 64 at
    a time, so the stream is the same however many steps run between two draws)."""

    CHUNK = 64

    def __init__(self, seed: int, device: torch.device | str):
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.device, self.uniforms, self.step = device, None, 0

    def next_uniform(self) -> torch.Tensor:
        """The next uniform number in [0, 1), a 0-dim tensor on the stream's device."""
        if self.step % self.CHUNK == 0:
            self.uniforms = torch.rand(self.CHUNK, generator=self.generator, device=self.device)
        uniform = self.uniforms[self.step % self.CHUNK]
        self.step += 1
        return uniform


def inverse_cdf(scores: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """The token whose CDF interval holds `uniform` under softmax(scores). scores: (B, V); uniform: (B,) -> (B,)."""
    cdf = torch.softmax(scores.float(), dim=-1).cumsum(dim=-1)
    chosen = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True)
    return chosen.clamp_(max=scores.shape[1] - 1).squeeze(1)


def choose_token(logits: torch.Tensor, seen: torch.Tensor, settings: DecodeSettings, stream: RowStream | None,
                 banned: list[int] | None = None) -> int:
    """The next token of one row. logits: (V,) raw scores; seen: (T,) the row's prompt and reply ids so far (the
    repetition penalty's input); `banned` ids get −inf first (EOS before `min_tokens`). A row whose filtered
    distribution holds no finite probability (NaN logits, a temperature that overflows) is a ChowaError."""
    scores = logits.float()[None]
    if banned:
        scores[:, banned] = float("-inf")
    if settings.repetition_penalty != 1.0:
        scores = RepetitionPenaltyLogitsProcessor(settings.repetition_penalty)(seen[None], scores)
    if not settings.do_sample:
        _check_finite(scores, settings)
        return int(scores.argmax(-1))
    for warper in settings.warpers(scores.device):
        scores = warper(seen[None], scores)
    _check_finite(scores, settings)
    return int(inverse_cdf(scores, stream.next_uniform()[None]))


def _check_finite(scores: torch.Tensor, settings: DecodeSettings) -> None:
    if torch.isnan(scores).any() or not torch.isfinite(scores.max()):
        raise ChowaError(f"decoding produced no usable distribution (NaN or infinite scores; temperature "
                         f"{settings.temperature:g}): the request cannot be continued")


def token_logprobs(logits: torch.Tensor, token: int, top: int) -> tuple[float, list[tuple[int, float]]]:
    """The model's log-probability of `token` and its `top` most likely tokens, from raw logits (V,): what the
    model says before any penalty or filter, as vLLM reports by default."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    best = logprobs.topk(top) if top else None
    pairs = list(zip(best.indices.tolist(), best.values.tolist(), strict=True)) if best is not None else []
    return _finite(float(logprobs[token])), [(index, _finite(value)) for index, value in pairs]


def group_logprob(scores: torch.Tensor, group: list[int]) -> float:
    """A byte group's log-probability under the four heads (the product of its slots). scores: (4, 256) raw."""
    logprobs = torch.log_softmax(scores.float(), dim=-1)
    return _finite(float(logprobs[torch.arange(len(group)), torch.tensor(group)].sum()))


def _finite(value: float) -> float:
    """JSON has no −inf: a token the model gives probability 0 reports −9999.0, as vLLM does."""
    return value if math.isfinite(value) else -9999.0
