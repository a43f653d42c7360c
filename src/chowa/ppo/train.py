"""Reinforcement learning from a reward with PPO: the `ppo` stage (spec: specs/ppo.md).

Each step samples `method.num_rollouts` responses to training prompts from the policy in its chat format, keeping the
sampled ids (`chowa.ppo.rollout`); scores them with a reward model or a rule (`chowa.ppo.rewards`), clipped and
optionally scaled; turns scores into per-token rewards with a KL penalty against the frozen reference (score at the
last response token); computes GAE advantages; then runs `method.ppo_epochs` shuffled passes of clipped policy and
value updates over minibatches (`chowa.ppo.losses`). The KL coefficient is fixed, or adaptive when `method.target`
is set (trlx). Value and reference live in one of four layouts (`chowa.ppo.layouts`).

Output folder: the policy as a plain HF causal-LM folder with its tokenizer and chat format, metrics.jsonl,
ppo.png (reward, KL and length curves), ppo_losses.png (clip fraction, approx. KL, value loss, explained variance,
entropy), samples.jsonl (sampled replies with their scores), config.yaml, and checkpoints/ (policy folder +
accelerate state of policy, value and optimizer + KL coefficient and score scaler).
Held-out prompts are answered greedily and scored before training (the SFT baseline) and every `train.eval_every`
steps.

Run as:
    chowa ppo --config configs/tiny/ppo.yaml
    accelerate launch --num_processes 2 -m chowa ppo --config configs/tiny/ppo.yaml runtime.cpu=true
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate.utils import DistributedType
from tqdm import tqdm

from chowa.answers import grade
from chowa.config.ppo import PPOConfig
from chowa.data.order import SeededOrder
from chowa.data.prompts import PromptRecord, read_prompts
from chowa.data.records import ReadOptions
from chowa.errors import ChowaError, TrainingInterrupted
from chowa.formats import chat_template, encode_prompt, resolve_format, save_format
from chowa.generate import prompt_seed
from chowa.models.load import load_causal_lm, load_model_tokenizer, load_trunk
from chowa.padding import pad_rows
from chowa.ppo import losses
from chowa.ppo.layouts import PPOModel, TokenScores
from chowa.ppo.rewards import RewardSource
from chowa.ppo.rollout import Rollout, decode_replies, sample
from chowa.runtime import Runtime, configure_model
from chowa.training.checkpoint import StopSignal, save_checkpoint, save_model_folder
from chowa.training.loop import begin_run, report_eval, run_summary, trim_metrics
from chowa.training.optim import build_optimizer, build_scheduler
from chowa.training.plots import plot_metrics

# ppo.png's panels. `kl` is what the KL controller reads (under trlx_compat its own statistic, over prompt positions
# too), so it gets its own panel beside the two estimates of KL(policy ‖ reference) over response tokens.
PPO_CURVES = [("score_mean", "heldout_score", "heldout_score_sampled"),
              ("heldout_accuracy", "heldout_accuracy_sampled"), ("kl_k1", "kl_k3"), ("kl",), ("response_length",)]


@dataclass
class Experience:
    """One sampled response and what PPO needs of it; all (T,) over its own response tokens."""

    prompt: torch.Tensor
    response: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class PPORun:
    """Everything a PPO run holds between steps (models, reward, controller, scaler), and its two phases."""

    def __init__(self, cfg: PPOConfig, runtime: Runtime):
        self.cfg, self.runtime = cfg, runtime
        self.tokenizer = load_model_tokenizer(cfg.model, cfg.tokenizer)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.fmt = resolve_format(cfg.format, cfg.tokenizer or cfg.model)
        self.tokenizer.chat_template = chat_template(self.fmt)
        self.stop = tuple(cfg.generation.stop) or self.fmt.stop
        self.prompts = read_prompts(cfg.data.prompts, ReadOptions.of(cfg.data))
        self.heldout = (read_prompts(cfg.data.heldout, ReadOptions.of(cfg.data))[:cfg.data.heldout_size]
                        if cfg.data.heldout else [])
        self.order = SeededOrder(len(self.prompts), seed=cfg.runtime.seed)
        self.kl = losses.make_kl_controller(cfg.method.init_kl_coef, cfg.method.target, cfg.method.horizon)
        self.scaler = losses.ScoreScaler(cfg.reward.scale)
        self.scaler.check_first_chunk(min(cfg.method.chunk_size, cfg.method.num_rollouts) * runtime.num_processes)
        with runtime.built_whole():  # copied, probed and (the reward model) run outside the prepared model
            self.reward = RewardSource(cfg.reward, self.tokenizer, self.fmt, runtime.device)
            value_model = load_trunk(cfg.method.value_model) if cfg.method.value_model else None
            policy = load_causal_lm(cfg.model)
        # Before the layout copies blocks: the reference and value copies keep the kernel and checkpointing they
        # are copied with, and must read the masks the trunk builds for its kernel.
        for model in (policy, value_model):
            if model is not None:
                configure_model(model, cfg.runtime)
        self.model = PPOModel(policy, cfg.method.layout, cfg.method.num_layers_unfrozen, value_model)

    @property
    def unwrapped(self) -> PPOModel:
        return self.runtime.accelerator.unwrap_model(self.model)

    def prompt_ids(self, prompts: list[PromptRecord]) -> list[list[int]]:
        return [encode_prompt(p.messages, self.fmt, self.tokenizer)[-self.cfg.data.max_prompt_length:]
                for p in prompts]

    def forward(self, prompts: torch.Tensor, prompt_mask: torch.Tensor, responses: torch.Tensor,
                response_mask: torch.Tensor, with_reference: bool, from_prompt: bool = False) -> TokenScores:
        """Policy log-probs and values (and reference log-probs and entropy) of the response tokens, all (B, T);
        `from_prompt`: of every predicted token, prompt positions first, (B, Q − 1 + T). Prompts are left-padded,
        responses right-padded. Log-probs are taken at the sampling temperature (trlx: at 1)."""
        method = self.cfg.method
        temperature = 1.0 if method.trlx_compat else self.cfg.generation.temperature
        return self.model(torch.cat([prompts, responses], 1), torch.cat([prompt_mask, response_mask], 1),
                          first=1 if from_prompt else prompts.shape[1], temperature=temperature,
                          with_reference=with_reference, with_entropy=with_reference)

    # --- phase 1: experience -----------------------------------------------------------------------------------

    @torch.no_grad()
    def collect(self, step: int) -> tuple[list[Experience], dict, list[dict]]:
        """Sample, score and turn into advantages this process's share of the step's rollouts."""
        cfg, runtime = self.cfg, self.runtime
        per_process = cfg.method.num_rollouts
        first = (step * runtime.num_processes + runtime.process_index) * per_process
        experiences, stats, logged, chunk_kls, chunk_sizes = [], [], [], [], []
        self.model.eval()
        for start in range(0, per_process, cfg.method.chunk_size):
            count = min(cfg.method.chunk_size, per_process - start)
            prompts = [self.prompts[self.order[first + start + i]] for i in range(count)]
            prompt_ids = self.prompt_ids(prompts)
            with runtime.whole_parameters(self.model):
                rollout = sample(self.unwrapped.policy, prompt_ids, self.tokenizer, self.fmt,
                                 cfg.generation.max_new_tokens, cfg.generation.temperature, stop=self.stop)
            compat = cfg.method.trlx_compat
            scored = self.forward(rollout.queries, rollout.query_mask, rollout.responses, rollout.response_mask, True,
                                  from_prompt=compat)
            width = rollout.responses.shape[1]
            logprobs, ref_logprobs, values = (t[:, -width:] for t in (scored.logprobs, scored.ref_logprobs,
                                                                       scored.values))
            mask = rollout.response_mask.to(logprobs.dtype)
            replies = decode_replies(rollout, self.tokenizer, self.fmt)
            raw = self.reward.score(prompts, prompt_ids, rollout.response_ids(), replies).to(runtime.device)
            scores = losses.missing_eos_penalty(raw, rollout.has_eos, cfg.reward.missing_eos_penalty)
            scores = self.scaler(losses.clip_scores(scores, cfg.reward.cliprange_reward))
            rewards = losses.rollout_rewards(logprobs, ref_logprobs, mask, scores, self.kl.value,
                                             cfg.method.kl_estimator)
            advantages, returns = losses.gae_advantages_and_returns(rewards, values, mask, cfg.method.gamma,
                                                                    cfg.method.lam)
            if compat:
                chunk_kls.append(losses.trlx_kl_statistic(scored.logprobs, scored.ref_logprobs,
                                                          torch.cat([rollout.query_mask, rollout.response_mask], 1)))
            else:
                chunk_kls.append(losses.kl_statistic(logprobs, ref_logprobs, mask, cfg.method.kl_estimator))
            stats.append({"score_mean": raw.mean(), "score_sq": (raw**2).mean(),
                          "kl_k1": losses.kl_statistic(logprobs, ref_logprobs, mask, "k1"),
                          "kl_k3": losses.kl_statistic(logprobs, ref_logprobs, mask, "k3"),
                          "entropy": losses.masked_mean(scored.entropy[:, -width:], mask),
                          "explained_variance": losses.explained_variance(values, returns, mask),
                          "response_length": mask.sum(1).mean(), "ended": rollout.has_eos.float().mean()})
            chunk_sizes.append(count)
            experiences += _split(rollout, logprobs, values, rewards, advantages, returns)
            logged += [{"step": step + 1, "split": "train", "prompt": p.messages[-1]["content"], "reply": r,
                        "score": round(s, 4)} for p, r, s in zip(prompts, replies, raw.tolist(), strict=True)]
        if cfg.method.whiten_scope == "rollout":
            _whiten_rollout(experiences, cfg.method.whiten)
        summary = {key: torch.stack([s[key] for s in stats]).mean() for key in stats[0]}
        # The controller's input: each chunk's statistic averaged over processes first, as trlx all-reduces it
        chunk_kls = runtime.accelerator.reduce(torch.stack(chunk_kls), reduction="mean")
        summary["kl"] = losses.controller_kl(chunk_kls, torch.tensor(chunk_sizes, device=chunk_kls.device,
                                                                     dtype=chunk_kls.dtype), cfg.method.trlx_compat)
        return experiences, summary, logged[:cfg.train.log_samples]

    # --- phase 2: optimisation ---------------------------------------------------------------------------------

    def update(self, experiences: list[Experience], step: int, optimizer, scheduler, mean_kl: float) -> dict:
        """`method.ppo_epochs` shuffled passes in batches of `method.batch_size`, one optimizer step per batch."""
        cfg, accelerator = self.cfg, self.runtime.accelerator
        batch_size = cfg.method.batch_size
        micro_size = cfg.method.minibatch_size or batch_size
        shuffle = torch.Generator().manual_seed(cfg.runtime.seed * 100003 + step)  # a pure function of the step
        totals: dict[str, list[torch.Tensor]] = {}
        self.model.train()
        for _ in range(cfg.method.ppo_epochs):
            order = torch.randperm(len(experiences), generator=shuffle).tolist()
            for first in range(0, len(order), batch_size):
                batch = [experiences[i] for i in order[first:first + batch_size]]
                for micro in range(0, len(batch), micro_size):
                    part = batch[micro:micro + micro_size]
                    with self.runtime.accumulating(last=micro + micro_size >= len(batch)):
                        out = self.loss(part)
                        accelerator.backward(out.loss * len(part) / len(batch))
                    for key in ("pg_loss", "vf_loss", "pg_clipfrac", "vf_clipfrac", "approx_kl"):
                        totals.setdefault(key, []).append(getattr(out, key).detach())
                if cfg.optim.grad_clip > 0:
                    accelerator.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            self.kl.update(mean_kl, n_steps=batch_size)  # after each epoch, as trlx's post_backward_callback
        return {key: torch.stack(values).mean() for key, values in totals.items()}

    def loss(self, part: list[Experience]) -> losses.PPOLoss:
        pad = self.tokenizer.pad_token_id
        prompts, prompt_mask = pad_rows([e.prompt.tolist() for e in part], pad, "left", self.runtime.device)
        responses, response_mask = pad_rows([e.response.tolist() for e in part], pad, "right", self.runtime.device,
                                             min_width=1)
        old_logprobs, old_values, advantages, returns = (
            _pad_stack([getattr(e, name) for e in part], responses.shape[1]).to(self.runtime.device)
            for name in ("logprobs", "values", "advantages", "returns"))
        scored = self.forward(prompts, prompt_mask, responses, response_mask, False)
        logprobs, values = scored.logprobs, scored.values
        mask = response_mask.to(logprobs.dtype)
        if self.cfg.method.whiten_scope == "minibatch":
            advantages = losses.whiten(advantages, mask, self.cfg.method.whiten)
        ppo = self.cfg.method
        return losses.ppo_loss(logprobs, old_logprobs, values, old_values, advantages, returns, mask,
                               ppo.cliprange, ppo.cliprange_value, ppo.vf_coef, ppo.trlx_compat)

    # --- held-out evaluation -----------------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, step: int) -> tuple[dict, list[dict]]:
        """Mean score (and checked-answer accuracy where records have answers) on the held-out prompts: one reply
        each (greedy unless `generation.eval_greedy` is off), plus `generation.eval_samples` sampled ones."""
        cfg, runtime = self.cfg, self.runtime
        devices = [runtime.device] if runtime.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # generate's own draw would move the training RNG stream
            metrics, logged = self._score_heldout(step, cfg.generation.eval_greedy, 1, first_stream=0)
            if cfg.generation.eval_samples:
                sampled, _ = self._score_heldout(step, False, cfg.generation.eval_samples, first_stream=1)
                metrics |= {f"{key}_sampled": value for key, value in sampled.items()}
        return metrics, logged[:cfg.train.log_samples]

    def _score_heldout(self, step: int, greedy: bool, repeats: int, first_stream: int) -> tuple[dict, list[dict]]:
        """heldout_score / _length / _accuracy over `repeats` replies to every held-out prompt, and the replies.

        Sampled reply r to held-out prompt i draws from its own seeded stream (number first_stream + r), so the
        figures do not depend on `method.chunk_size` or the number of processes."""
        cfg, runtime = self.cfg, self.runtime
        mine = list(range(runtime.process_index, len(self.heldout), runtime.num_processes))
        totals = torch.zeros(5, device=runtime.device)  # score, length, correct, checkable, count
        logged = []
        # Gathered once for all chunks: the processes' shares, and so their numbers of chunks, may differ.
        with runtime.whole_parameters(self.model):
            for repeat, start in [(r, s) for r in range(repeats) for s in range(0, len(mine), cfg.method.chunk_size)]:
                indices = mine[start:start + cfg.method.chunk_size]
                prompts = [self.heldout[i] for i in indices]
                prompt_ids = self.prompt_ids(prompts)
                stream = cfg.runtime.seed * 7919 + first_stream + repeat
                seeds = None if greedy else [prompt_seed(stream, i) for i in indices]
                rollout = sample(self.unwrapped.policy, prompt_ids, self.tokenizer, self.fmt,
                                 cfg.generation.max_new_tokens, cfg.generation.temperature, greedy=greedy,
                                 stop=self.stop, seeds=seeds)
                replies = decode_replies(rollout, self.tokenizer, self.fmt)
                scores = self.reward.score(prompts, prompt_ids, rollout.response_ids(), replies)
                checks = [float(g.correct) for p, r in zip(prompts, replies, strict=True)
                          if (g := grade(p.record, r)).correct is not None]
                totals += torch.tensor([scores.sum().item(), rollout.response_mask.sum().item(), sum(checks),
                                        len(checks), len(prompts)], device=runtime.device)
                logged += [{"step": step, "split": "heldout", "prompt": p.messages[-1]["content"], "reply": r,
                            "score": round(s, 4)}
                           for p, r, s in zip(prompts, replies, scores.tolist(), strict=True)]
        totals = runtime.accelerator.reduce(totals, reduction="sum")
        count = totals[4].clamp(min=1)
        metrics = {"heldout_score": (totals[0] / count).item(), "heldout_length": (totals[1] / count).item()}
        if totals[3] > 0:
            metrics["heldout_accuracy"] = (totals[2] / totals[3]).item()
        return metrics, logged

    def state(self) -> dict:
        """What accelerate's save_state does not hold: the KL coefficient and the score scaler."""
        moments = self.scaler.moments
        return {"kl_coef": self.kl.value, "scaler": {"mean": moments.mean, "var": moments.var, "std": moments.std,
                                                     "count": moments.count, "ref_std": self.scaler.ref_std}}

    def load_state(self, state: dict) -> None:
        self.kl.value = state["kl_coef"]
        scaler = dict(state["scaler"])
        self.scaler.ref_std = scaler.pop("ref_std")
        vars(self.scaler.moments).update(scaler)


def _split(rollout: Rollout, *per_token: torch.Tensor) -> list[Experience]:
    """Padded (B, T) chunk tensors -> one Experience per sample, without padding (kept on the CPU)."""
    rows = []
    for i in range(rollout.responses.shape[0]):
        keep_prompt, keep = rollout.query_mask[i].bool(), rollout.response_mask[i].bool()
        rows.append(Experience(rollout.queries[i][keep_prompt].cpu(), rollout.responses[i][keep].cpu(),
                               *(t[i][keep].float().cpu() for t in per_token)))
    return rows


def _pad_stack(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    """(T_i,) rows -> (B, width), right-padded with zeros."""
    out = torch.zeros((len(rows), width))
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def _whiten_rollout(experiences: list[Experience], mode: str) -> None:
    """Whiten advantages once over every response token of the rollout (`whiten_scope: rollout`)."""
    flat = torch.cat([e.advantages for e in experiences]).unsqueeze(0)
    whitened = losses.whiten(flat, torch.ones_like(flat), mode)[0]
    for e, part in zip(experiences, whitened.split([len(e.advantages) for e in experiences]), strict=True):
        e.advantages = part


def check_sharding(runtime: Runtime) -> None:
    """Refuse FSDP1 at start: the policy is gathered for sampling through FSDP2's API."""
    accelerator = runtime.accelerator
    if accelerator.distributed_type == DistributedType.FSDP and not accelerator.is_fsdp2:
        raise ChowaError("ppo: FSDP1 cannot gather the policy for sampling; launch with --fsdp_version 2")


def main(cfg: PPOConfig) -> Path:
    out = Path(cfg.out)
    runtime = Runtime(cfg.runtime, out_dir=out)
    check_sharding(runtime)
    run = PPORun(cfg, runtime)
    accelerator = runtime.accelerator
    batches = -(-cfg.method.num_rollouts // cfg.method.batch_size)
    optimizer = build_optimizer(run.model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.train.steps * cfg.method.ppo_epochs * batches)
    run.model, optimizer = runtime.prepare(run.model, optimizer,
                                           micro_batch=cfg.method.minibatch_size or cfg.method.batch_size,
                                           grad_clip=cfg.optim.grad_clip)
    accelerator.register_for_checkpointing(scheduler)
    # Each process samples with its own random stream (the same seed everywhere would correlate their rollouts);
    # a resumed run restores every process's stream from the checkpoint.
    torch.manual_seed(cfg.runtime.seed * 1009 + runtime.process_index)
    start_step, trainer_state = begin_run(runtime, cfg, out, "ppo")
    if trainer_state is not None:
        run.load_state(trainer_state)
    trim_metrics(runtime, start_step, out / "samples.jsonl")
    runtime.print(f"ppo: {len(run.prompts):,} prompts, {len(run.heldout):,} held out, layout {cfg.method.layout}, "
                  f"format {run.fmt.name}")
    if run.heldout and trainer_state is None:  # the SFT baseline of the held-out curve
        metrics, logged = run.evaluate(0)
        runtime.log(report_eval(runtime, "ppo", 0, metrics))
        _log_samples(runtime, out, logged)
    progress = tqdm(total=cfg.train.steps, initial=start_step, desc="ppo", disable=not runtime.is_main, unit="step")
    with StopSignal() as stop:
        for step in range(start_step, cfg.train.steps):
            started = time.perf_counter()
            experiences, rollout_stats, logged = run.collect(step)
            kl_coef = run.kl.value  # the β these rewards used
            rollout_stats = {k: v.item() for k, v in _reduce(accelerator, rollout_stats).items()}
            train_stats = {k: v.item() for k, v in _reduce(accelerator, run.update(
                experiences, step, optimizer, scheduler, rollout_stats["kl"])).items()}
            score_sq = rollout_stats.pop("score_sq")
            record = {"step": step + 1, **rollout_stats,
                      "score_std": max(0.0, score_sq - rollout_stats["score_mean"] ** 2) ** 0.5,
                      **train_stats, "kl_coef": kl_coef, "lr": scheduler.get_last_lr()[0],
                      "seconds": round(time.perf_counter() - started, 3)}
            done = step + 1 == cfg.train.steps
            if run.heldout and (done or (cfg.train.eval_every and (step + 1) % cfg.train.eval_every == 0)):
                metrics, heldout_logged = run.evaluate(step + 1)
                record |= report_eval(runtime, "ppo", step + 1, metrics)
                logged += heldout_logged
            runtime.log(record)
            _log_samples(runtime, out, logged)
            progress.update(1)
            progress.set_postfix(score=f"{record['score_mean']:.3f}", kl=f"{record['kl']:.3f}")
            interrupted = stop.any_rank(runtime)
            if done or interrupted or (cfg.train.save_every and (step + 1) % cfg.train.save_every == 0):
                save_checkpoint(runtime, out, step + 1, run.unwrapped.policy, run.tokenizer,
                                {"stage": "ppo", **run.state()}, keep=cfg.train.keep_checkpoints, config=cfg,
                                within=run.model)
            if interrupted:
                progress.close()
                raise TrainingInterrupted(f"ppo: stopped by {stop.requested or 'a signal'} after step {step + 1}; "
                                          "run the same command again (train.resume=auto) to continue.")
    progress.close()
    save_model_folder(runtime, run.unwrapped.policy, run.tokenizer, out, within=run.model)
    if runtime.is_main:
        save_format(out, run.fmt)
        title = f"ppo ({cfg.method.layout})"
        plot_metrics(runtime.metrics_path, out / "ppo.png", PPO_CURVES, title)
        plot_metrics(runtime.metrics_path, out / "ppo_losses.png",
                     [("pg_clipfrac", "approx_kl"), ("vf_loss",), ("explained_variance",), ("entropy",)], title)
    runtime.finish()
    runtime.print(run_summary(runtime.metrics_path, "ppo", out, step_key="score_mean", end_keys=("kl_k1",),
                              heldout_keys=("heldout_score", "heldout_score_sampled", "heldout_accuracy")))
    runtime.wait()
    return out


def _reduce(accelerator, stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean of each scalar over processes."""
    if not stats:
        return {}
    keys = list(stats)
    stacked = torch.stack([stats[k].float().to(accelerator.device) for k in keys])
    return dict(zip(keys, accelerator.reduce(stacked, reduction="mean"), strict=True))


def _log_samples(runtime: Runtime, out: Path, rows: list[dict]) -> None:
    if runtime.is_main and rows:
        with (out / "samples.jsonl").open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


