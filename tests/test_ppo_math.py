"""PPO and reward-model math against numbers computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from chowa.errors import ChowaError
from chowa.ppo.losses import (
    AdaptiveKLController,
    FixedKLController,
    RunningMoments,
    ScoreScaler,
    approx_kl,
    clip_scores,
    controller_kl,
    entropy_from_logits,
    explained_variance,
    gae_advantages_and_returns,
    kl_penalty,
    kl_statistic,
    logprobs_from_logits,
    make_kl_controller,
    missing_eos_penalty,
    policy_loss,
    ppo_loss,
    rollout_rewards,
    trlx_kl_statistic,
    value_loss,
    whiten,
)
from chowa.reward import bradley_terry_loss, first_eos_index, last_token_index, read_scores

TOL = dict(atol=1e-6, rtol=0)


def t(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float64)


def close(actual, expected) -> None:
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float64), t(expected), **TOL)


# §12.1: lp = [-1, -2, -0.5], ref = [-1.2, -1.5, -0.5] -> l = lp - ref = [0.2, -0.5, 0.0]
LP, REF = t([[-1.0, -2.0, -0.5]]), t([[-1.2, -1.5, -0.5]])


def test_rollout_rewards_k1_penalty_and_score_on_last_token():
    # r = -0.1 * l = [-0.02, 0.05, -0.0]; the score 2.0 lands on the last response token: [-0.02, 0.05, 2.0]
    rewards = rollout_rewards(LP, REF, t([[1, 1, 1]]), t([2.0]), kl_coef=0.1)
    close(rewards, [[-0.02, 0.05, 2.0]])


def test_rollout_rewards_short_response_puts_score_on_its_own_last_token():
    # mask [1, 1, 0]: the pad position gets neither penalty nor score; r = [-0.02, 0.05 + 2.0, 0]
    rewards = rollout_rewards(LP, REF, t([[1, 1, 0]]), t([2.0]), kl_coef=0.1)
    close(rewards, [[-0.02, 2.05, 0.0]])
    # An explicit score index (stored with the rollout) wins over the mask: index 0 -> [-0.02 + 2.0, 0.05, 0]
    rewards = rollout_rewards(LP, REF, t([[1, 1, 0]]), t([2.0]), kl_coef=0.1, score_index=torch.tensor([0]))
    close(rewards, [[1.98, 0.05, 0.0]])


def test_k3_is_schulmans_estimator_and_trlx_keeps_its_own_form():
    # §12.1, l = [0.2, -0.5, 0]. k3 = exp(-l) - 1 + l: exp(-0.2) - 0.8 = 0.8187308 - 0.8 = 0.0187308;
    # exp(0.5) - 1.5 = 1.6487213 - 1.5 = 0.1487213; 0 at l = 0. trlx's exp(l) - 1 - l: 0.0214028, 0.1065307, 0.
    close(kl_penalty(LP, REF, "k3"), [[0.0187308, 0.1487213, 0.0]])
    close(kl_penalty(LP, REF, "trlx"), [[0.0214028, 0.1065307, 0.0]])
    # β = 0.1 and dense scores [1, 0, 3] masked by [1, 1, 0]: r = [1 - 0.00187308, -0.01487213, 0]
    rewards = rollout_rewards(LP, REF, t([[1, 1, 0]]), t([[1.0, 0.0, 3.0]]), kl_coef=0.1, kl_estimator="k3")
    close(rewards, [[0.99812692, -0.01487213, 0.0]])
    with pytest.raises(ValueError, match="k2"):
        kl_penalty(LP, REF, "k2")


def test_k3_averaged_over_the_policy_is_the_exact_kl():
    # Over a whole 1,000-token vocabulary E_π[k3] = Σ π (ref/π - 1 + log π/ref) = 1 - 1 + KL(π ‖ ref) exactly;
    # trlx's exp(l) - 1 - l averages to Σ π²/ref - 1 - KL = χ²(π ‖ ref) - KL, far above the KL where π ≫ ref
    # (here KL 1.48, trlx's 13.8).
    torch.manual_seed(0)
    logp = torch.log_softmax(1.2 * torch.randn(1000, dtype=torch.float64), -1)
    ref = torch.log_softmax(1.2 * torch.randn(1000, dtype=torch.float64), -1)
    true_kl = (logp.exp() * (logp - ref)).sum()
    close((logp.exp() * kl_penalty(logp, ref, "k3")).sum(), true_kl)
    trlx_mean = (logp.exp() * kl_penalty(logp, ref, "trlx")).sum()
    close(trlx_mean, torch.expm1(torch.logsumexp(2 * logp - ref, -1)) - true_kl)
    assert trlx_mean > 5 * true_kl


def test_kl_statistic_sums_the_estimator_over_masked_tokens_and_averages_samples():
    # one sample, k3: 0.0187308 + 0.1487213 + 0 = 0.1674520; trlx's form: 0.1279334; k1: 0.2 - 0.5 = -0.3
    close(kl_statistic(LP, REF, t([[1, 1, 1]]), "k3"), 0.1674520)
    close(kl_statistic(LP, REF, t([[1, 1, 1]]), "trlx"), 0.1279334)
    close(kl_statistic(LP, REF, t([[1, 1, 1]])), -0.3)
    # two samples, the second masked to its first token: (0.1674520 + 0.0187308) / 2 = 0.0930914
    close(kl_statistic(LP.repeat(2, 1), REF.repeat(2, 1), t([[1, 1, 1], [1, 0, 0]]), "k3"), 0.0930914)


def test_trlx_controller_statistic_over_prompt_and_response_of_two_chunks():
    # Chunk 1, one sequence [PAD, p1, p2 | r1, r2, PAD] (prompt left-padded, response right-padded). Its log-probs
    # are of tokens 1..5 (p1, p2, r1, r2, PAD) with l = [0.3, 0.2, -0.5, 0.0, 0.7]: p1's input is a pad and the
    # last label is one, so the sum is over p2, r1, r2: 0.0214028 + 0.1065307 + 0 = 0.1279334. (trlx masks by the
    # input alone and would add r2 -> PAD's 0.7 too: the artefact past a short response's end, left out.)
    lp = t([[0.3, 0.2, -0.5, 0.0, 0.7]])
    chunk1 = trlx_kl_statistic(lp, torch.zeros_like(lp), t([[0, 1, 1, 1, 1, 0]]))
    close(chunk1, 0.1279334)
    # Chunk 2, two full sequences of 3 tokens: l = [1, 0] sums e - 2 = 0.7182818, l = [0, 0] sums 0: mean 0.3591409
    lp = t([[1.0, 0.0], [0.0, 0.0]])
    chunk2 = trlx_kl_statistic(lp, torch.zeros_like(lp), t([[1, 1, 1], [1, 1, 1]]))
    close(chunk2, 0.3591409)
    # trlx: ((sqrt(0.1279334) + sqrt(0.3591409)) / 2)² = ((0.3576778 + 0.5992837) / 2)² = 0.2289438;
    # ours: the sample-weighted mean (0.1279334 + 2 · 0.3591409) / 3 = 0.2820717
    chunks, sizes = torch.stack([chunk1, chunk2]), t([1, 2])
    close(controller_kl(chunks, sizes, trlx_compat=True), 0.2289438)
    close(controller_kl(chunks, sizes), 0.2820717)
    # the four chunks [0.5, 2, 8, 3]: ((0.7071068 + 1.4142136 + 2.8284271 + 1.7320508) / 4)² = 2.7904018
    close(controller_kl(t([0.5, 2.0, 8.0, 3.0]), t([1, 1, 1, 1]), trlx_compat=True), 2.7904018)


def test_clip_scores_and_missing_eos_penalty():
    # cliprange_reward 10: 12 -> 10, -12 -> -10, 3 unchanged; 0/None disable clipping
    close(clip_scores(t([12.0, -12.0, 3.0]), 10), [10.0, -10.0, 3.0])
    close(clip_scores(t([12.0]), None), [12.0])
    close(clip_scores(t([12.0]), 0), [12.0])
    # §12.10: penalty 1.0 on s = 1.0 without EOS -> 0.0; with EOS unchanged
    close(missing_eos_penalty(t([1.0, 1.0]), torch.tensor([False, True]), 1.0), [0.0, 1.0])


def test_running_moments_merge_chunks_like_trlx():
    moments = RunningMoments()
    # chunk [1, 2, 3]: mean 2, Bessel std 1; the prior's count 1e-24 vanishes, so running mean 2, std 1
    mean, std = moments.update(t([1.0, 2.0, 3.0]))
    close([mean, std, moments.mean, moments.std], [2.0, 1.0, 2.0, 1.0])
    # chunk [5]: delta 3, total 4; sum of squares 2 + 9*3*1/4 + 0 = 8.75; mean 2 + 3/4 = 2.75; var 8.75/4;
    # std = sqrt(8.75/3) — exactly the statistics of [1, 2, 3, 5] (deviations -1.75 -0.75 0.25 2.25)
    moments.update(t([5.0]))
    close([moments.mean, moments.var, moments.std], [2.75, 2.1875, math.sqrt(8.75 / 3)])


def test_running_moments_sum_dense_scores_per_sample():
    # dense rows [1, 1, 9] and [2, 0, 9] with mask [[1, 1, 0], [1, 1, 1]] sum to 2 and 11: mean 6.5,
    # Bessel std sqrt(((4.5)^2 * 2) / 1) = 6.363961
    mean, std = RunningMoments().update(t([[1.0, 1.0, 9.0], [2.0, 0.0, 9.0]]), t([[1, 1, 0], [1, 1, 1]]))
    close([mean, std], [6.5, 6.3639610])


def test_score_scaler_modes_divide_and_never_centre():
    # first chunk [1, 2, 3]: running std 1 and ref std 1 -> unchanged; second chunk [5]: running std sqrt(8.75/3),
    # ref std still that of the first chunk (1)
    running, ref, unscaled = ScoreScaler("running"), ScoreScaler("ref"), ScoreScaler("none")
    for scaler in (running, ref, unscaled):
        close(scaler(t([1.0, 2.0, 3.0])), [1.0, 2.0, 3.0])
    close(running(t([5.0])), [5.0 / math.sqrt(8.75 / 3)])
    close(ref(t([5.0])), [5.0])
    close(unscaled(t([5.0])), [5.0])
    # a given ref_std is kept: 6 / 2 = 3
    close(ScoreScaler("ref", ref_std=2.0)(t([6.0, 0.0])), [3.0, 0.0])
    with pytest.raises(ValueError, match="scale_reward"):
        ScoreScaler("mean")


def test_score_scaler_takes_a_first_chunk_of_one_sample_only_when_it_needs_no_std():
    # A chunk of one sample has no std. Unscaled scores pass through (this divided by count - 1 = 0 before);
    # `running` and `ref` refuse it with the options to change, instead of trlx's NaN.
    close(ScoreScaler("none")(t([3.0])), [3.0])
    close(ScoreScaler("ref", ref_std=2.0)(t([3.0])), [1.5])
    for mode in ("running", "ref"):
        with pytest.raises(ChowaError, match="method.chunk_size"):
            ScoreScaler(mode)(t([3.0]))
    running = ScoreScaler("running")
    running(t([1.0, 2.0, 3.0]))
    close(running(t([5.0])), [5.0 / math.sqrt(8.75 / 3)])  # one sample after the first chunk is fine


def test_gae_spec_example_gamma_1():
    # r = [-0.02, 0.05, 2.0], V = [0.5, 0.6, 0.8], γ = 1, λ = 0.95
    # δ = [-0.02 + 0.6 - 0.5, 0.05 + 0.8 - 0.6, 2.0 - 0.8] = [0.08, 0.25, 1.2]
    # A3 = 1.2; A2 = 0.25 + 0.95*1.2 = 1.39; A1 = 0.08 + 0.95*1.39 = 1.4005; R = A + V = [1.9005, 1.99, 2.0]
    rewards, values, mask = t([[-0.02, 0.05, 2.0]]), t([[0.5, 0.6, 0.8]]), t([[1, 1, 1]])
    advantages, returns = gae_advantages_and_returns(rewards, values, mask, 1.0, 0.95)
    close(advantages, [[1.4005, 1.39, 1.2]])
    close(returns, [[1.9005, 1.99, 2.0]])


def test_gae_spec_example_discounted():
    # γ = 0.9, λ = 0.5: δ = [-0.02 + 0.54 - 0.5, 0.05 + 0.72 - 0.6, 1.2] = [0.02, 0.17, 1.2]
    # A2 = 0.17 + 0.45*1.2 = 0.71; A1 = 0.02 + 0.45*0.71 = 0.3395; R = [0.8395, 1.31, 2.0]
    advantages, returns = gae_advantages_and_returns(t([[-0.02, 0.05, 2.0]]), t([[0.5, 0.6, 0.8]]),
                                                     t([[1, 1, 1]]), gamma=0.9, lam=0.5)
    close(advantages, [[0.3395, 0.71, 1.2]])
    close(returns, [[0.8395, 1.31, 2.0]])


def test_gae_of_unequal_lengths_ignores_what_the_value_head_says_at_padding():
    # Row 1 is §12.2's response. Row 2 is one token long; the value head's raw outputs at its padding are 0.7 and
    # 0.9. trlx recomputes advantages from a store padded with 0.0, so its row 2 is r - V = 1 - 0.5 = 0.5, R = 1.0,
    # exactly as if it had been rolled out alone. (Run on the raw values, its padding would add δ2 = 0 + 0.9 - 0.7
    # and δ3 = -0.9: A1 = 1.2 + 0.95 · (0.2 - 0.95 · 0.9) = 0.57775.)
    rewards = t([[-0.02, 0.05, 2.0], [1.0, 0.0, 0.0]])
    values, mask = t([[0.5, 0.6, 0.8], [0.5, 0.7, 0.9]]), t([[1, 1, 1], [1, 0, 0]])
    advantages, returns = gae_advantages_and_returns(rewards, values, mask, 1.0, 0.95)
    close(advantages, [[1.4005, 1.39, 1.2], [0.5, 0.0, 0.0]])
    close(returns, [[1.9005, 1.99, 2.0], [1.0, 0.0, 0.0]])
    alone = gae_advantages_and_returns(rewards[1:, :1], values[1:, :1], mask[1:, :1], 1.0, 0.95)
    close(alone[0], [[0.5]])


A, M = t([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]]), t([[1, 1, 1], [1, 0, 0]])


def test_masked_whitening():
    # tokens [1, 2, 3, 4]: μ = 2.5, σ² = (2.25 + 0.25 + 0.25 + 2.25)/3 = 5/3, σ = 1.2909944
    # -> [-1.5, -0.5, 0.5, 1.5]/σ = [-1.161895, -0.387298, 0.387298, 1.161895]; pads forced to 0
    close(whiten(A, M), [[-1.161895, -0.387298, 0.387298], [1.161895, 0.0, 0.0]])


def test_masked_whitening_with_one_token_centres_without_scaling():
    # n = 1: no variance; Â = m*(A - μ) = [3 - 3, pad 0]
    close(whiten(t([[3.0, 7.0]]), t([[1, 0]])), [[0.0, 0.0]])


def test_trlx_whitening_uses_every_element():
    # all six elements [1, 2, 3, 4, 0, 0]: μ = 10/6 = 5/3; squared deviations (4 + 1 + 16 + 49 + 25 + 25)/9 = 120/9
    # distributed (population): σ² = 20/9 -> (1 - 5/3)/1.490712 = -0.447214, ...
    close(whiten(A, M, "trlx", distributed=True),
          [[-0.447214, 0.223607, 0.894427], [1.565248, -1.118034, -1.118034]])
    # single process (torch.var_mean, Bessel): σ² = 120/9/5 = 8/3 -> (1 - 5/3)/1.632993 = -0.408248, ...
    close(whiten(A, M, "trlx"), [[-0.408248, 0.204124, 0.816497], [1.428869, -1.020621, -1.020621]])
    close(whiten(A, M, "none"), A)


# §12.4: (Â, ρ) = (+1, 1.5), (-1, 1.5), (+1, 0.5), (-1, 0.5), ε = 0.2, plus a padded fifth token
ADV = t([[1.0, -1.0, 1.0, -1.0, 5.0]])
RATIO = t([[1.5, 1.5, 0.5, 0.5, 3.0]])
PG_MASK = t([[1, 1, 1, 1, 0]])


def test_policy_loss_and_clipfrac():
    # max(-Âρ, -Â·clamp(ρ, 0.8, 1.2)): max(-1.5, -1.2) = -1.2 (clipped wins); max(1.5, 1.2) = 1.5;
    # max(-0.5, -0.8) = -0.5; max(0.5, 0.8) = 0.8 (clipped wins). pg = (-1.2 + 1.5 - 0.5 + 0.8)/4 = 0.15,
    # clipfrac = 2/4; the pad (Â = 5, ρ = 3) is masked out
    loss, clipfrac = policy_loss(RATIO.log(), torch.zeros_like(RATIO), ADV, PG_MASK, cliprange=0.2)
    close([loss, clipfrac], [0.15, 0.5])


def test_approx_kl_masked_and_trlx():
    # (ρ - 1) - log ρ: ρ = 1.5 -> 0.5 - 0.4054651 = 0.0945349; ρ = 0.5 -> -0.5 + 0.6931472 = 0.1931472;
    # pad: log-ratio masked to 0 -> 0. Ours: (2*0.0945349 + 2*0.1931472)/4 = 0.1438411;
    # trlx (unmasked mean over 5): 0.5753642/5 = 0.1150728
    logprobs, old = RATIO.log(), torch.zeros_like(RATIO)
    close(approx_kl(logprobs, old, PG_MASK), 0.1438411)
    close(approx_kl(logprobs, old, PG_MASK, trlx_compat=True), 0.1150728)


def test_value_loss_and_clipfrac():
    # ε_v = 0.2. (V_old, V, R) = (0.5, 1.0, 2.0): V_clip = 0.7, max((1 - 2)², (0.7 - 2)²) = 1.69 (clipped wins);
    # (0.5, 0.6, 0.0): V_clip = 0.6, both 0.36. vf = 0.5*(1.69 + 0.36)/2 = 0.5125, clipfrac = 1/2
    loss, clipfrac = value_loss(t([[1.0, 0.6]]), t([[0.5, 0.5]]), t([[2.0, 0.0]]), t([[1, 1]]), 0.2)
    close([loss, clipfrac], [0.5125, 0.5])


def test_ppo_loss_combines_policy_and_value():
    # tokens 1-2 of §12.4: pg = (-1.2 + 1.5)/2 = 0.15, clipfrac 1/2; values of §12.5: vf = 0.5125;
    # loss = 0.15 + 0.5*0.5125 = 0.40625; approx_kl = 0.0945349 (both ρ = 1.5)
    out = ppo_loss(RATIO[:, :2].log(), t([[0.0, 0.0]]), t([[1.0, 0.6]]), t([[0.5, 0.5]]), ADV[:, :2],
                   t([[2.0, 0.0]]), t([[1, 1]]), cliprange=0.2, cliprange_value=0.2, vf_coef=0.5)
    close([out.loss, out.pg_loss, out.vf_loss, out.pg_clipfrac, out.vf_clipfrac, out.approx_kl],
          [0.40625, 0.15, 0.5125, 0.5, 0.5, 0.0945349])


def test_logprobs_from_logits_with_temperature():
    # logits [0, ln 3]: p = [1/4, 3/4] -> log p(1) = ln 0.75 = -0.2876821
    # at T = 2: logits [0, ln 3 / 2] -> p(1) = √3/(1 + √3) = 0.6339746 -> -0.4557464
    logits = t([[[0.0, math.log(3.0)]]])
    close(logprobs_from_logits(logits, torch.tensor([[1]])), [[-0.2876821]])
    close(logprobs_from_logits(logits, torch.tensor([[1]]), temperature=2.0), [[-0.4557464]])


def test_entropy_from_logits():
    # uniform over 4: ln 4 = 1.3862944; p = [1/4, 3/4]: 0.25*ln 4 + 0.75*ln(4/3) = 0.3465736 + 0.2157616 = 0.5623351
    close(entropy_from_logits(t([[[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3.0), -1e9, -1e9]]])),
          [[1.3862944, 0.5623351]])


def test_explained_variance_over_response_tokens():
    # R = [1, 2, 3], V = [1, 2, 2] (pad R 100, V 0 masked): R - V = [0, 0, 1], Bessel var = (1/9 + 1/9 + 4/9)/2
    # = 1/3; var(R) = 1 -> 1 - 1/3 = 0.6666667
    close(explained_variance(t([[1.0, 2.0, 2.0, 0.0]]), t([[1.0, 2.0, 3.0, 100.0]]), t([[1, 1, 1, 0]])),
          2.0 / 3.0)


def test_adaptive_kl_controller():
    # β = 0.05, target 6, horizon 10000, n_steps 4: KL 9 -> e = clip(0.5) = 0.2 -> 0.05*(1 + 0.2*4/1e4) = 0.050004
    # KL 3 -> e = -0.2 -> 0.049996; KL 6.6 -> e = 0.1 -> 0.05*1.00004 = 0.050002
    for kl, expected in ((9.0, 0.050004), (3.0, 0.049996), (6.6, 0.050002)):
        controller = AdaptiveKLController(0.05, target=6.0, horizon=10000)
        controller.update(kl, n_steps=4)
        close(controller.value, expected)
    # four PPO epochs at KL 9: 0.05*1.00008^4 = 0.0500160
    controller = make_kl_controller(0.05, target=6.0, horizon=10000)
    for _ in range(4):
        controller.update(9.0, n_steps=4)
    close(controller.value, 0.0500160)


def test_fixed_kl_controller_never_changes():
    controller = make_kl_controller(0.05)
    assert isinstance(controller, FixedKLController)
    controller.update(100.0, n_steps=4)
    assert controller.value == 0.05


def test_bradley_terry_loss():
    # r_c = 1, r_r = 0: -log σ(1) = log(1 + e^-1) = 0.3132617; margin 0.5: log(1 + e^-0.5) = 0.4740770;
    # centering c = 0.01: + 0.01*(1 + 0)² = 0.3232617; r_c = r_r: log 2 = 0.6931472
    close(bradley_terry_loss(t([1.0]), t([0.0]))[0], 0.3132617)
    close(bradley_terry_loss(t([1.0]), t([0.0]), margin=0.5)[0], 0.4740770)
    close(bradley_terry_loss(t([1.0]), t([0.0]), centering_coef=0.01)[0], 0.3232617)
    close(bradley_terry_loss(t([0.3]), t([0.3]))[0], 0.6931472)
    # accuracy: share with r_c > r_r (ties do not count): [2 > 1, 0 > 1, 1 > 1] -> 1/3
    close(bradley_terry_loss(t([2.0, 0.0, 1.0]), t([1.0, 1.0, 1.0]))[1], 1.0 / 3.0)


def test_score_read_positions():
    PAD, EOS = 0, 2
    assert last_token_index(torch.tensor([[1, 1, 1, 0, 0]])).tolist() == [2]  # right-padded [5, 6, 7, PAD, PAD]
    assert last_token_index(torch.tensor([[0, 0, 1, 1, 1]])).tolist() == [4]  # left-padded [PAD, PAD, 5, 6, 7]
    assert first_eos_index(torch.tensor([[5, EOS, 7, EOS, PAD]]), EOS).tolist() == [1]  # Dahoas: first EOS
    close(read_scores(t([[0.1, 0.2, 0.3]]), torch.tensor([1])), [0.2])
