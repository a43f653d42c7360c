"""PPO math as small pure functions: rollout rewards, GAE, whitening, clipped losses, statistics, KL control.

Follows CarperAI/trlx (the PPO behind rinna's and keyfan's seed models) with our fixes as defaults; the trlx
formula stays available where ours differs (`trlx_compat=True`: trlx's controller statistic and unmasked
approx-KL; `whiten="trlx"`). Shapes: B samples, T response positions, V vocabulary. `mask` is the response mask
(1 on sampled tokens, EOS included; 0 on padding), in the dtype of the values it masks.

Run as (from Python):
    rewards = rollout_rewards(logprobs, ref_logprobs, mask, scores, kl_coef=0.05)
    advantages, returns = gae_advantages_and_returns(rewards, values, mask, gamma=1.0, lam=0.95)
    advantages = whiten(advantages, mask)
    out = ppo_loss(new_logprobs, logprobs, new_values, values, advantages, returns, mask)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F

from chowa.errors import ChowaError
from chowa.reward.readout import last_token_index

KLEstimator = Literal["k1", "k3"]
KLForm = Literal["k1", "k3", "trlx"]  # the estimators, and trlx's controller statistic
WhitenMode = Literal["masked", "trlx", "none"]
ScaleMode = Literal["running", "ref", "none"]


def _allreduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over processes when torch.distributed is running; the identity on one process."""
    if dist.is_available() and dist.is_initialized():
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 -> fp32 (a softmax over a large vocabulary loses too much in half precision); others kept."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`Σ m·x / Σ m` over every element (local to this process). x, mask: same shape -> scalar."""
    return (x * mask).sum() / mask.sum()


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Bessel-corrected variance of the masked elements. x, mask: same shape -> scalar."""
    mean = masked_mean(x, mask)
    return ((x - mean) ** 2 * mask).sum() / (mask.sum() - 1)


# --- log-probabilities, KL and rollout rewards ---------------------------------------------------------------------


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probability of each label. logits: (B, T, V), labels: (B, T) -> (B, T).

    Divide by the sampling temperature so the log-probs are those of the distribution the tokens came from
    (TRL does this; trlx does not).
    """
    logits = _upcast(logits)
    logprobs = F.log_softmax(logits / temperature if temperature != 1.0 else logits, dim=-1)
    return logprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


# Without autograd, log-probs and entropies are taken this many logits at a time: the fp32 softmax over the
# vocabulary and its temporaries, the largest transient tensors of a rollout's scoring, never exist whole.
SCORING_CHUNK_ELEMENTS = 2**20


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                   with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of the labels and (if asked) the entropy at temperature `temperature`.

    logits: (B, T, V), labels: (B, T) -> (B, T), (B, T) or None. Under autograd in one piece (what the backward
    pass keeps is the same either way); without it a few positions at a time.
    """
    if torch.is_grad_enabled():
        logprobs = logprobs_from_logits(logits, labels, temperature)
        scaled = logits / temperature if temperature != 1.0 else logits
        return logprobs, entropy_from_logits(scaled) if with_entropy else None
    flat, flat_labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    rows = max(1, SCORING_CHUNK_ELEMENTS // logits.shape[-1])
    logprobs, entropy = [], []
    for part, part_labels in zip(flat.split(rows), flat_labels.split(rows), strict=True):
        logprobs.append(logprobs_from_logits(part, part_labels, temperature))
        if with_entropy:
            entropy.append(entropy_from_logits(part / temperature if temperature != 1.0 else part))
    shape = labels.shape
    return torch.cat(logprobs).view(shape), torch.cat(entropy).view(shape) if with_entropy else None


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: KLForm = "k1") -> torch.Tensor:
    """Per-token KL estimate from `l = lp − ref`, for tokens sampled from the policy. (B, T), (B, T) -> (B, T).

    k1 = l: unbiased, can be negative (trlx's penalty). k3 = exp(−l) − 1 + l: Schulman's estimator of KL(π‖ref),
    unbiased and non-negative (http://joschu.net/blog/kl-approx.html; TRL and OpenRLHF). `trlx` = exp(l) − 1 − l:
    trlx's controller statistic, which has the ratio the other way round, so it is biased upward and heavy-tailed
    where π ≫ ref; only `trlx_compat` uses it.
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    if estimator == "trlx":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"kl_estimator must be 'k1' or 'k3' (or 'trlx' for trlx's statistic), not {estimator!r}")


def kl_statistic(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor,
                 estimator: KLForm = "k1") -> torch.Tensor:
    """Mean over samples of `Σ_t kl_t·m_t`, one chunk's KL for the controller. (B, T) x 3 -> scalar.

    Ours: the penalty's own estimator over response tokens. trlx: the `trlx` form over prompt and response
    positions (pass the log-probs of every predicted token and their mask).
    """
    return (kl_penalty(logprobs, ref_logprobs, estimator) * mask).sum(-1).mean()


def trlx_kl_statistic(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, sequence_mask: torch.Tensor) -> torch.Tensor:
    """trlx's controller statistic for one chunk: mean over samples of `Σ exp(l) − 1 − l` over every predicted
    prompt and response token whose input token is real too.

    trlx masks by the input position alone, which also counts the term past the end of every response shorter than
    its chunk's longest (an EOS predicting padding): that artefact is left out (spec §2.6), so this equals trlx's
    statistic for chunks of equal-length responses. logprobs, ref_logprobs: (B, L − 1), of tokens 1..L−1 of the
    sequence; sequence_mask: (B, L) -> scalar.
    """
    pairs = sequence_mask[:, :-1] * sequence_mask[:, 1:]
    return kl_statistic(logprobs, ref_logprobs, pairs.to(logprobs.dtype), "trlx")


def controller_kl(chunk_kls: torch.Tensor, chunk_sizes: torch.Tensor, trlx_compat: bool = False) -> torch.Tensor:
    """The KL the controller reads after a rollout, from each chunk's statistic. (N,), (N,) -> scalar.

    Ours: the mean over samples (chunks weighted by their sizes). trlx keeps `sqrt(mean_kl)` per chunk, averages
    those and squares the average (`policy/sqrt_kl`), so a chunk with a large KL weighs less than in a plain mean.
    """
    if trlx_compat:
        return chunk_kls.clamp(min=0).sqrt().mean() ** 2
    return (chunk_kls * chunk_sizes).sum() / chunk_sizes.sum()


def clip_scores(scores: torch.Tensor, cliprange_reward: float | None) -> torch.Tensor:
    """Clamp scores to ±cliprange_reward; 0 or None disables (trlx). (B,) or (B, T) -> same."""
    if not cliprange_reward:
        return scores
    return scores.clamp(-cliprange_reward, cliprange_reward)


def missing_eos_penalty(scores: torch.Tensor, has_eos: torch.Tensor, penalty: float | None) -> torch.Tensor:
    """Subtract `penalty` from the score of each sample that produced no EOS (TRL). (B,), (B,) bool -> (B,)."""
    if not penalty:
        return scores
    return scores - penalty * (~has_eos).to(scores.dtype)


def rollout_rewards(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    scores: torch.Tensor,
    kl_coef: float,
    kl_estimator: KLEstimator = "k1",
    score_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token rewards `r_t = −β·kl_t·m_t`, plus the score. Returns (B, T).

    logprobs, ref_logprobs, mask: (B, T). scores: (B,) adds s at `score_index` (B,) — by default the last
    response token (EOS if emitted, else the last sampled token) — or (B, T) dense scores added per token.
    """
    rewards = -kl_coef * kl_penalty(logprobs, ref_logprobs, kl_estimator) * mask
    if scores.dim() == 2:
        return rewards + scores * mask
    if score_index is None:
        score_index = last_token_index(mask).clamp(min=0)  # an empty response scores at its first position
    return rewards.scatter_add(1, score_index.unsqueeze(1), scores.to(rewards.dtype).unsqueeze(1))


# --- reward scaling ------------------------------------------------------------------------------------------------


class RunningMoments:
    """Running mean and std of per-sample score sums, merged chunk by chunk (trlx `RunningMoments`).

    Starts at mean 0, var 1 with a negligible count (1e-24), so the first chunk sets the statistics;
    the std it reports is Bessel-corrected. Statistics are global across processes when distributed.
    """

    def __init__(self):
        self.mean = 0.0
        self.var = 1.0
        self.std = 1.0
        self.count = 1e-24

    def update(self, scores: torch.Tensor, score_mask: torch.Tensor | None = None) -> tuple[float, float]:
        """Merge a chunk. scores: (B,) or (B, T) dense with score_mask (B, T). Returns the chunk's (mean, std)."""
        if scores.dim() == 2:
            scores = (scores * (score_mask if score_mask is not None else 1)).sum(-1)
        scores = scores.double()
        # on the scores' device: NCCL reduces only GPU tensors
        count = _allreduce_sum(torch.tensor(float(scores.numel()), dtype=torch.float64, device=scores.device)).item()
        mean = _allreduce_sum(scores.sum()).item() / count
        var = _allreduce_sum(((scores - mean) ** 2).sum()).item() / count  # population variance of the chunk

        delta = mean - self.mean
        total = self.count + count
        # The old sum of squares is corrected for the shift of the mean before the new one is added.
        sum_sq = self.var * self.count + delta**2 * self.count * count / total + var * count
        self.mean += delta * count / total
        self.var = sum_sq / total
        self.std = math.sqrt(self.var * total / (total - 1))
        self.count = total
        return mean, math.sqrt(var * count / (count - 1)) if count > 1 else 0.0


class ScoreScaler:
    """Divides scores by a scale, never centring them (trlx `scale_reward`).

    `running`: the running std of per-sample score sums, updated with this chunk first; `ref`: the std of
    the first chunk's per-sample sums (over every process) unless `ref_std` is given; `none`: unscaled. A std needs
    two samples: a first chunk of one sample is refused (trlx would divide by a NaN).
    """

    def __init__(self, mode: ScaleMode = "none", ref_std: float | None = None):
        if mode not in ("running", "ref", "none"):
            raise ValueError(f"scale_reward must be 'running', 'ref' or 'none', not {mode!r}")
        self.mode = mode
        self.ref_std = ref_std
        self.moments = RunningMoments()

    def check_first_chunk(self, samples: int) -> None:
        """Refuse a first chunk (over every process) too small for a std, before anything runs."""
        if self.mode != "none" and samples < 2:
            raise ChowaError(f"reward.scale {self.mode} needs a std of the scores, and the first rollout chunk holds "
                             "one sample: raise method.chunk_size (or run more processes), or set reward.scale none")

    def __call__(self, scores: torch.Tensor, score_mask: torch.Tensor | None = None) -> torch.Tensor:
        """scores: (B,) or dense (B, T) with score_mask -> same shape, scaled. Call once per rollout chunk."""
        if self.mode == "none":
            return scores
        if self.mode == "ref" and self.ref_std is not None:
            return scores / self.ref_std
        sums = scores if scores.dim() == 1 else (scores * (score_mask if score_mask is not None else 1)).sum(-1)
        if self.moments.count < 1:
            self.check_first_chunk(int(_allreduce_sum(torch.tensor(float(sums.numel()), device=sums.device)).item()))
        if self.mode == "ref":
            self.ref_std = RunningMoments().update(sums)[1]
            return scores / self.ref_std
        self.moments.update(sums)
        return scores / self.moments.std


# --- advantages ----------------------------------------------------------------------------------------------------


def gae_advantages_and_returns(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2015, https://arxiv.org/abs/1506.02438).

    rewards, values, mask: (B, T) -> advantages (B, T), returns = advantages + values (B, T), both unwhitened and
    0 at padding. Rewards and values are zeroed at padding first, so a short response bootstraps with 0 after its
    own last token whatever the value head said there. This is also trlx's result: trlx recomputes advantages from
    a store padded with 0.0, and its raw `V_{t+1}` bootstrap over that padding is the same recursion.
    """
    rewards, values = rewards * mask, values * mask
    next_values = F.pad(values[:, 1:], (0, 1))
    deltas = rewards + gamma * next_values - values
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_advantage = deltas[:, t] + gamma * lam * next_advantage
        advantages[:, t] = next_advantage
    return advantages * mask, (advantages + values) * mask


def whiten(
    advantages: torch.Tensor, mask: torch.Tensor, mode: WhitenMode = "masked", distributed: bool | None = None
) -> torch.Tensor:
    """Normalise advantages to zero mean, unit variance. advantages, mask: (B, T) -> (B, T).

    `masked` (ours): statistics over response tokens of every process, Bessel-corrected, padding set to 0;
    with fewer than 2 tokens only the mean is removed. `trlx`: statistics over every element, padding included
    — population variance across processes when `distributed` (default: torch.distributed is running), else
    `torch.var_mean` (Bessel). `none`: unchanged.
    """
    if mode == "none":
        return advantages
    if mode == "trlx":
        if distributed is None:
            distributed = dist.is_available() and dist.is_initialized()
        if distributed:
            count = _allreduce_sum(torch.tensor(float(advantages.numel()), device=advantages.device))
            mean = _allreduce_sum(advantages.sum()) / count
            var = _allreduce_sum(((advantages - mean) ** 2).sum()) / count
        else:
            var, mean = torch.var_mean(advantages)
        return (advantages - mean) * torch.rsqrt(var + 1e-8)
    if mode != "masked":
        raise ValueError(f"whiten must be 'masked', 'trlx' or 'none', not {mode!r}")
    count = _allreduce_sum(mask.sum())
    mean = _allreduce_sum((advantages * mask).sum()) / count
    centred = (advantages - mean) * mask
    if count < 2:
        return centred
    var = _allreduce_sum((centred**2).sum()) / (count - 1)
    return centred * torch.rsqrt(var + 1e-8)


# --- losses --------------------------------------------------------------------------------------------------------


def policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
    cliprange: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate objective (Schulman et al. 2017, https://arxiv.org/abs/1707.06347).

    (B, T) x 4 -> (loss, clipfrac): scalars; clipfrac is the share of tokens where the clipped term won.
    """
    ratio = torch.exp((logprobs - old_logprobs) * mask)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).to(mask.dtype), mask)
    return loss, clipfrac


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
    cliprange_value: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss `0.5·mmean(max((V − R)², (V_clip − R)²))`. (B, T) x 4 -> (loss, clipfrac) scalars."""
    values_clipped = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    unclipped = (values - returns) ** 2
    clipped = (values_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).to(mask.dtype), mask)
    return loss, clipfrac


def approx_kl(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor, trlx_compat: bool = False
) -> torch.Tensor:
    """k3 estimate of KL(old ‖ new), `mean((ρ − 1) − log ρ)`, over response tokens (trlx: every element).

    (B, T) x 3 -> scalar.
    """
    log_ratio = (logprobs - old_logprobs) * mask
    per_token = torch.expm1(log_ratio) - log_ratio
    return per_token.mean() if trlx_compat else masked_mean(per_token, mask)


@dataclass
class PPOLoss:
    """The total loss to back-propagate and the scalars to log (all 0-dim tensors)."""

    loss: torch.Tensor
    pg_loss: torch.Tensor
    vf_loss: torch.Tensor
    pg_clipfrac: torch.Tensor
    vf_clipfrac: torch.Tensor
    approx_kl: torch.Tensor


def ppo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float = 0.2,
    cliprange_value: float = 0.2,
    vf_coef: float = 1.0,
    trlx_compat: bool = False,
) -> PPOLoss:
    """`pg + vf_coef·vf` for one minibatch, no entropy bonus (as trlx). All inputs (B, T); `advantages` whitened."""
    pg, pg_clipfrac = policy_loss(logprobs, old_logprobs, advantages, mask, cliprange)
    vf, vf_clipfrac = value_loss(values, old_values, returns, mask, cliprange_value)
    with torch.no_grad():
        kl = approx_kl(logprobs, old_logprobs, mask, trlx_compat)
    return PPOLoss(pg + vf_coef * vf, pg.detach(), vf.detach(), pg_clipfrac, vf_clipfrac, kl)


# --- statistics ----------------------------------------------------------------------------------------------------


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax at each position, `logsumexp(z) − Σ p·z`. (B, T, V) -> (B, T)."""
    logits = _upcast(logits)
    return torch.logsumexp(logits, dim=-1) - (F.softmax(logits, dim=-1) * logits).sum(-1)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`1 − Var(R − V) / Var(R)` over response tokens: 1 is a perfect critic, ≤ 0 no better than a constant.

    (B, T) x 3 -> scalar.
    """
    return 1.0 - masked_var(returns - values, mask) / masked_var(returns, mask)


# --- KL coefficient control ----------------------------------------------------------------------------------------


class FixedKLController:
    """A KL coefficient β that never changes."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """Proportional control of β towards a target KL (Ziegler et al. 2019, https://arxiv.org/abs/1909.08593).

    `e = clip(KL/target − 1, −0.2, 0.2)`, `β ← β·(1 + e·n_steps/horizon)`; trlx calls it after every PPO epoch
    with the latest rollout's KL statistic and `n_steps` = batch size.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


def make_kl_controller(
    init_kl_coef: float, target: float | None = None, horizon: int = 10000
) -> FixedKLController | AdaptiveKLController:
    """Adaptive iff a target KL is given (trlx)."""
    if target is None:
        return FixedKLController(init_kl_coef)
    return AdaptiveKLController(init_kl_coef, target, horizon)
