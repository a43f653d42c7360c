"""The PPO stage on a tiny GPT-NeoX: reward rises with bounded KL, responses keep the sampled ids, resume is exact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, GPTNeoXConfig, GPTNeoXForSequenceClassification

from chowa.answers import checked_answer, preferred_reply
from chowa.config import load_callable, load_config
from chowa.data.prompts import read_prompts
from chowa.errors import ChowaError
from chowa.formats import encode_prompt, get_format, save_format
from chowa.models.build import build_model
from chowa.models.load import load_trunk
from chowa.ppo.losses import gae_advantages_and_returns
from chowa.ppo.rewards import ModelReward
from chowa.ppo.rollout import end_response, sample
from chowa.ppo.train import PPOConfig, PPORun
from chowa.ppo.train import main as ppo
from chowa.runtime import Runtime
from chowa.tokenizer import load_tokenizer
from chowa.tokenizer.train import TokenizerTrainConfig
from chowa.tokenizer.train import main as train_tokenizer
from chowa.training.checkpoint import checkpoint_dirs
from chowa.training.plots import read_metrics
from conftest import launch_two_processes

# Easy to learn from a random model: the share of response tokens (EOS aside) with an id below 100.
RULES = '''
def low_ids(samples, prompts, response_ids, tokenizer, **meta):
    eos = tokenizer.eos_token_id
    kept = [[i for i in ids if i != eos] for ids in response_ids]
    return [sum(i < 100 for i in ids) / len(ids) if ids else 0.0 for ids in kept]
'''


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory, project_corpus) -> Path:
    """A random tiny GPT-NeoX (hidden 32, 2 layers) with a 420-piece tokenizer, in chat format `rinna`."""
    root = tmp_path_factory.mktemp("ppo")
    cfg = load_config(TokenizerTrainConfig, overrides=[f"out={root / 'tok'}", "vocab_size=420"],
                      flags={"input": [str(p) for p in project_corpus]})
    tokenizer = load_tokenizer(train_tokenizer(cfg))
    model = build_model("tiny", tokenizer=tokenizer, seed=0, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64)
    model.save_pretrained(root / "sft")
    tokenizer.save_pretrained(root / "sft")
    save_format(root / "sft", "rinna")
    return root / "sft"


@pytest.fixture()
def rules(tmp_path, monkeypatch) -> str:
    (tmp_path / "ppo_test_rules.py").write_text(RULES, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "ppo_test_rules:low_ids"


def _overrides(out: Path, policy_dir: Path, reward: str, *extra: str) -> list[str]:
    return [f"out={out}", f"model={policy_dir}", "data.prompts=[builtin:sft/train.jsonl]",
            "data.heldout=[builtin:sft/heldout.jsonl]", "data.heldout_size=16", f"reward.function={reward}",
            "generation.max_new_tokens=8", "method.num_rollouts=32", "method.chunk_size=16", "method.batch_size=8",
            "method.ppo_epochs=4", "method.num_layers_unfrozen=1", "optim.lr=1e-2", "runtime.cpu=true", *extra]


def _config(out: Path, policy_dir: Path, reward: str, *extra: str) -> PPOConfig:
    return load_config(PPOConfig, overrides=_overrides(out, policy_dir, reward, *extra))


@pytest.mark.parametrize("layout", ["hydra", "separate"])
def test_rule_reward_rises_with_finite_kl(tmp_path, policy_dir, rules, layout):
    out = ppo(_config(tmp_path / layout, policy_dir, rules, f"method.layout={layout}", "train.steps=12",
                      "train.eval_every=12"))
    records = read_metrics(out / "metrics.jsonl")
    steps = [r for r in records if r["step"] > 0]
    first, last = (sum(r["score_mean"] for r in part) / 3 for part in (steps[:3], steps[-3:]))
    assert last > first + 0.08, [r["score_mean"] for r in steps]
    baseline, final = records[0]["heldout_score"], records[-1]["heldout_score"]
    assert final > baseline, (baseline, final)
    assert all(0 <= r["kl"] < 50 and r["kl"] == r["kl"] for r in steps)  # k3 statistic: finite, non-negative
    for key in ("entropy", "pg_clipfrac", "approx_kl", "vf_loss", "explained_variance", "response_length",
                "score_std", "kl_coef"):
        assert key in steps[-1]
    assert (out / "ppo.png").stat().st_size > 1000
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {"train", "heldout"} <= {s["split"] for s in samples}
    reloaded = AutoModelForCausalLM.from_pretrained(str(out))  # a plain causal-LM folder with its chat format
    assert reloaded.config.hidden_size == 32 and (out / "chat_format.json").is_file()


def test_resume_continues_exactly(tmp_path, policy_dir, rules):
    common = ["data.heldout=[]", "method.num_rollouts=16", "method.ppo_epochs=2", "train.save_every=2",
              "train.keep_checkpoints=0", "reward.scale=running", "method.target=1.0", "method.horizon=100"]
    ppo(_config(tmp_path / "straight", policy_dir, rules, *common, "train.steps=4"))
    ppo(_config(tmp_path / "resumed", policy_dir, rules, *common, "train.steps=2"))
    assert [p.name for p in checkpoint_dirs(tmp_path / "resumed")] == ["step-00000002"]
    # a run of 2 steps continued to 4 (the schedule is constant, so this is the 4-step run interrupted at step 2)
    ppo(_config(tmp_path / "resumed", policy_dir, rules, *common, "train.steps=4",
                "train.resume_changes=[train.steps]"))

    def logged(run: str) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(tmp_path / run / "metrics.jsonl")]

    assert logged("resumed") == logged("straight")
    assert logged("straight")[-1]["kl_coef"] != 0.05  # the adaptive controller moved, and was restored


def test_responses_keep_sampled_ids_and_mask_after_the_end(policy_dir):
    tokenizer, fmt = load_tokenizer(policy_dir), get_format("rinna")
    eos = tokenizer.eos_token_id
    assert end_response([7, 8, eos, 9, eos], tokenizer, eos, fmt.stop) == ([7, 8, eos], True)
    assert end_response([7, 8, 9], tokenizer, eos, fmt.stop) == ([7, 8, 9], False)
    # a stop string ends the response before its first token; the EOS id is appended
    before = tokenizer.encode("今日は雨", add_special_tokens=False)
    next_turn = tokenizer.encode("ユーザー: 次", add_special_tokens=False)
    kept, ended = end_response(before + next_turn, tokenizer, eos, fmt.stop)
    assert ended and kept == before + [eos]
    # ... also when an EOS comes later: the invented next turn is never trained on
    assert end_response(before + next_turn + [9, eos], tokenizer, eos, fmt.stop) == (before + [eos], True)
    # an EOS before the stop string still ends it first
    assert end_response(before + [eos] + next_turn, tokenizer, eos, fmt.stop) == (before + [eos], True)

    model = AutoModelForCausalLM.from_pretrained(str(policy_dir))
    with torch.no_grad():  # make EOS likely (a few % a token) so some rows end early
        model.gpt_neox.final_layer_norm.bias.fill_(1.0)
        model.get_output_embeddings().weight[eos] = 0.06
    prompts = read_prompts(["builtin:sft/heldout.jsonl"])[:6]
    prompt_ids = [encode_prompt(p.messages, fmt, tokenizer) for p in prompts]
    torch.manual_seed(3)
    rollout = sample(model, prompt_ids, tokenizer, fmt, max_new_tokens=40, stop=())
    torch.manual_seed(3)
    queries = rollout.queries
    generated = model.generate(input_ids=queries, attention_mask=rollout.query_mask, max_new_tokens=40,
                               do_sample=True, top_k=0, top_p=1.0, temperature=1.0, eos_token_id=eos,
                               pad_token_id=tokenizer.pad_token_id)[:, queries.shape[1]:]
    for row, ids, mask, ended in zip(generated.tolist(), rollout.response_ids(), rollout.response_mask,
                                     rollout.has_eos, strict=True):
        assert ids == row[:len(ids)]  # the very ids sampled, no decode/encode round trip
        assert mask[:len(ids)].all() and not mask[len(ids):].any()
        assert bool(ended) == (eos in row) and (ids[-1] == eos) == bool(ended)
    assert rollout.has_eos.any() and not rollout.has_eos.all()


@pytest.fixture(scope="module")
def early_ending_policy_dir(policy_dir, tmp_path_factory) -> Path:
    """The tiny policy with EOS made likely (a few % a token), so responses of one chunk differ in length."""
    tokenizer = load_tokenizer(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(str(policy_dir))
    with torch.no_grad():
        model.gpt_neox.final_layer_norm.bias.fill_(1.0)
        model.get_output_embeddings().weight[tokenizer.eos_token_id] = 0.06
    out = tmp_path_factory.mktemp("early") / "sft"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    save_format(out, "rinna")
    return out


@pytest.mark.parametrize("compat", [True, False])
def test_advantages_of_a_response_are_its_own_whatever_the_padding_of_its_chunk(tmp_path, early_ending_policy_dir,
                                                                                 rules, compat):
    """trlx recomputes advantages from a store padded with zeros, so a short response's advantages are those of the
    response alone; the value head's raw outputs at its padding must not leak into them (in compat mode too)."""
    cfg = _config(tmp_path, early_ending_policy_dir, rules, f"method.trlx_compat={compat}", "method.num_rollouts=16",
                  "generation.max_new_tokens=12", "method.gamma=0.9")
    run = PPORun(cfg, Runtime(cfg.runtime, out_dir=tmp_path))
    torch.manual_seed(0)
    experiences, _, _ = run.collect(0)
    assert len({len(e.response) for e in experiences}) > 2  # responses of unequal lengths share the chunk
    for e in experiences:
        alone = gae_advantages_and_returns(e.rewards[None], e.values[None], torch.ones(1, len(e.response)), 0.9,
                                           cfg.method.lam)
        torch.testing.assert_close(e.advantages, alone[0][0], atol=1e-6, rtol=0)
        torch.testing.assert_close(e.returns, alone[1][0], atol=1e-6, rtol=0)


def test_a_chunk_of_one_sample_runs_unscaled_and_is_refused_where_a_std_is_needed(tmp_path, policy_dir, rules):
    single = ["method.chunk_size=1", "method.num_rollouts=2", "method.batch_size=2", "train.steps=1",
              "data.heldout=[]"]
    out = ppo(_config(tmp_path / "one", policy_dir, rules, *single))
    assert read_metrics(out / "metrics.jsonl")[-1]["step"] == 1
    with pytest.raises(ChowaError, match="reward.scale running .* method.chunk_size"):
        ppo(_config(tmp_path / "scaled", policy_dir, rules, *single, "reward.scale=running"))


def test_reward_model_scores_prompt_plus_response_ids(tmp_path, policy_dir):
    torch.manual_seed(1)
    tokenizer = load_tokenizer(policy_dir)
    config = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, num_labels=1, pad_token_id=tokenizer.pad_token_id,
                           eos_token_id=tokenizer.eos_token_id)
    rm = GPTNeoXForSequenceClassification(config).eval()
    rm.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")  # a reward folder as `chowa reward` writes it
    save_format(tmp_path / "rm", "rinna")
    scorer = ModelReward(str(tmp_path / "rm"), tokenizer, torch.device("cpu"))
    sequences = [[5, 6, 7], [8, 9, 10, 11, 12, tokenizer.eos_token_id]]
    scores = scorer(sequences)  # batched with right padding; an EOS is appended to the first
    with torch.no_grad():
        alone = [rm(torch.tensor([ids])).logits[0, 0].item() for ids in ([5, 6, 7, tokenizer.eos_token_id],
                                                                           sequences[1])]
    assert scores == pytest.approx(alone, abs=1e-5)
    trunk = load_trunk(tmp_path / "rm").base_model  # a reward folder can seed the separate critic (#13 review)
    assert all(torch.equal(a, b) for a, b in zip(trunk.state_dict().values(), rm.base_model.state_dict().values(),
                                                  strict=True))
    # the stage with a reward model, shaped against the reference replies and scaled by the running std, its
    # critic's trunk started from the reward model
    out = ppo(_config(tmp_path / "run", policy_dir, "''", f"reward.model={tmp_path / 'rm'}",
                      "reward.reference_reply=true", "reward.scale=running", "method.num_rollouts=16", "train.steps=2",
                      "data.heldout_size=4", "method.layout=separate", f"method.value_model={tmp_path / 'rm'}"))
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2] and all(abs(r["score_mean"]) < 10 for r in records[1:])


def test_callable_errors_name_the_missing_part():
    with pytest.raises(ChowaError, match="no_such_module_xyz"):
        load_callable("no_such_module_xyz:score", "reward.function")
    with pytest.raises(ChowaError, match="'no_such_function'"):
        load_callable("chowa.ppo.rewards:no_such_function", "reward.function")
    with pytest.raises(ChowaError, match="module:function"):
        load_callable("chowa.ppo.rewards", "reward.function")
    assert load_callable("chowa.ppo.rewards:checked_answer", "reward.function") is checked_answer


@pytest.mark.dist
def test_two_process_ppo(tmp_path, policy_dir):
    """Each process samples its own rollouts; held-out prompts are split between the processes and their scores
    gathered, so the SFT baseline (step 0, greedy and sampled) equals one process's; rank 0 writes the folder."""
    overrides = ["chowa.ppo.rewards:preferred_reply", "train.steps=2", "train.eval_every=1",
                 "generation.eval_samples=2"]
    single = read_metrics(ppo(_config(tmp_path / "single", policy_dir, *overrides)) / "metrics.jsonl")
    out = tmp_path / "dist"
    result = launch_two_processes("ppo", _overrides(out, policy_dir, *overrides))
    assert result.stdout.count(f"wrote {out}") == 2
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2] and all("heldout_score" in r for r in records)
    for key in ("heldout_score", "heldout_length", "heldout_accuracy", "heldout_score_sampled",
                "heldout_length_sampled"):  # sampled replies too: each prompt has its own stream
        assert records[0][key] == pytest.approx(single[0][key], abs=1e-6), key
    assert AutoModelForCausalLM.from_pretrained(str(out)) is not None


@pytest.mark.dist
@pytest.mark.parametrize("layout", ["hydra", "reference-branch", "shared", "separate"])
def test_ppo_under_fsdp_and_deepspeed_trains_as_under_ddp(tmp_path, policy_dir, layout):
    """Every layout under FSDP2 (full shard: the policy's blocks and every copied block each their own unit) and
    DeepSpeed ZeRO-2 and ZeRO-3 logs what DDP logs, step for step: the same rollouts (each process sampling with the
    policy gathered whole, replies of different lengths on the two), the same losses, KL and held-out scores, and
    the same final weights."""
    # 5 held-out prompts in chunks of 2: one process answers them in two chunks, the other in one
    overrides = ["chowa.ppo.rewards:preferred_reply", "train.steps=2", "train.eval_every=1",
                 "method.num_rollouts=8", "method.chunk_size=2", "method.batch_size=4", "method.ppo_epochs=2",
                 f"method.layout={layout}", "data.heldout_size=5"]
    for sharding in ("ddp", "fsdp", "zero2", "zero3"):
        out = tmp_path / sharding
        result = launch_two_processes("ppo", _overrides(out, policy_dir, *overrides), sharding=sharding)
        assert result.stdout.count(f"wrote {out}") == 2
    ddp = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    ddp_weights = AutoModelForCausalLM.from_pretrained(str(tmp_path / "ddp")).state_dict()
    for sharding in ("fsdp", "zero2", "zero3"):
        records = read_metrics(tmp_path / sharding / "metrics.jsonl")
        assert [r["step"] for r in records] == [0, 1, 2]
        for theirs, mine in zip(ddp, records, strict=True):
            assert set(mine) == set(theirs)
            for key, value in theirs.items():
                if key not in ("seconds", "step"):
                    assert mine[key] == pytest.approx(value, rel=1e-4, abs=1e-4), (sharding, mine["step"], key)
        weights = AutoModelForCausalLM.from_pretrained(str(tmp_path / sharding)).state_dict()
        assert weights.keys() == ddp_weights.keys()
        for name, tensor in ddp_weights.items():
            assert torch.allclose(tensor, weights[name], atol=1e-5), (sharding, name)
    state = next((tmp_path / "fsdp" / "checkpoints").iterdir()) / "state"
    assert (state / "pytorch_model_fsdp_0" / ".metadata").is_file()


@pytest.mark.dist
def test_ppo_micro_batches_under_deepspeed_step_once_per_batch(tmp_path, policy_dir):
    """With `method.minibatch_size` below `method.batch_size`, ZeRO-2 and ZeRO-3 accumulate the micro-batches and
    step once per batch, as DDP does: the same losses and weights (accelerate's DeepSpeed wrapper alone would step
    after every micro-batch)."""
    overrides = ["chowa.ppo.rewards:preferred_reply", "data.heldout=[]", "train.steps=2", "method.num_rollouts=8",
                 "method.chunk_size=8", "method.batch_size=4", "method.minibatch_size=2", "method.ppo_epochs=2"]
    for sharding in ("ddp", "zero2", "zero3"):
        launch_two_processes("ppo", _overrides(tmp_path / sharding, policy_dir, *overrides), sharding=sharding)
    ddp = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    ddp_weights = AutoModelForCausalLM.from_pretrained(str(tmp_path / "ddp")).state_dict()
    for sharding in ("zero2", "zero3"):
        for theirs, mine in zip(ddp, read_metrics(tmp_path / sharding / "metrics.jsonl"), strict=True):
            for key in ("score_mean", "pg_loss", "vf_loss", "approx_kl", "kl", "lr"):
                assert mine[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-4), (sharding, mine["step"], key)
        weights = AutoModelForCausalLM.from_pretrained(str(tmp_path / sharding)).state_dict()
        assert all(torch.allclose(ddp_weights[name], weights[name], atol=1e-5) for name in ddp_weights), sharding


@pytest.mark.dist
@pytest.mark.parametrize("sharding", ["fsdp", "zero3"])
def test_ppo_resumes_exactly_from_sharded_state(tmp_path, policy_dir, sharding):
    """A hydra PPO run under FSDP2 or ZeRO-3 continued from its step-1 checkpoint (sharded policy, value and optimizer
    state, KL coefficient, score scaler, every process's random stream) logs what the uninterrupted run logged."""
    overrides = ["data.heldout=[]", "train.steps=2", "train.save_every=1", "train.keep_checkpoints=0",
                 "method.num_rollouts=8", "method.chunk_size=8", "method.batch_size=4", "method.ppo_epochs=2",
                 "reward.scale=running", "method.target=1.0", "method.horizon=100"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    rule = "chowa.ppo.rewards:preferred_reply"
    launch_two_processes("ppo", _overrides(straight, policy_dir, rule, *overrides), sharding=sharding)
    shutil.copytree(straight, resumed, ignore=shutil.ignore_patterns("step-00000002"))
    (resumed / "model.safetensors").unlink()  # the finished run's final folder
    result = launch_two_processes("ppo", _overrides(resumed, policy_dir, rule, *overrides), sharding=sharding)
    assert "resuming from" in result.stdout + result.stderr

    def logged(run: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(run / "metrics.jsonl")]

    assert logged(resumed) == logged(straight) and len(logged(straight)) == 2
    assert logged(straight)[-1]["kl_coef"] != 0.05  # the adaptive controller moved, and was restored


def test_preferred_reply_adds_the_preferred_style_to_the_right_answer():
    ja = {"family": "arithmetic", "answer": "7", "lang": "ja"}
    en = {"family": "weekday", "answer": "Friday", "lang": "en"}
    text = {"family": "romaji", "answer": "neko", "lang": "ja"}
    replies = [(ja, "答えは7です。", 2.0), (ja, "答えは7だ。", 1.0), (ja, "The answer is 7.", 1.0),
               (ja, "8です。", 1.0), (ja, "8だよ。", 0.0), (en, "The answer is Friday.", 2.0),
               (en, "答えは金曜日です。", 1.0), (en, "Monday.", 1.0), (text, "neko", 1.0), (text, "inu", 0.0),
               ({"family": "open"}, "はい。", 0.0)]
    scores = preferred_reply([r for _, r, _ in replies], [""] * len(replies), records=[r for r, _, _ in replies])
    assert scores == [expected for _, _, expected in replies]


def test_sampled_heldout_scores_are_logged_beside_greedy_ones(tmp_path, policy_dir, rules):
    plain = read_metrics(ppo(_config(tmp_path / "plain", policy_dir, rules, "train.steps=1")) / "metrics.jsonl")
    out = ppo(_config(tmp_path / "run", policy_dir, rules, "train.steps=1", "generation.eval_samples=2"))
    first, last = read_metrics(out / "metrics.jsonl")
    for record in (first, last):
        assert {"heldout_score", "heldout_score_sampled", "heldout_length_sampled"} <= set(record)
    assert first["heldout_score_sampled"] != first["heldout_score"]  # sampled replies differ from greedy ones
    # Evaluation draws from its own random stream: training is the same with or without the sampled replies.
    assert last["score_mean"] == plain[-1]["score_mean"] and last["heldout_score"] == plain[-1]["heldout_score"]
    with pytest.raises(ChowaError, match="eval_samples"):
        ppo(_config(tmp_path / "bad", policy_dir, rules, "generation.eval_samples=-1"))


def test_sampled_heldout_figures_do_not_depend_on_the_chunk_size(tmp_path, policy_dir, rules):
    figures = []
    for chunk in (16, 5):
        cfg = _config(tmp_path / str(chunk), policy_dir, rules, f"method.chunk_size={chunk}",
                      "generation.eval_samples=2", "generation.eval_greedy=false")
        metrics, _ = PPORun(cfg, Runtime(cfg.runtime, out_dir=tmp_path / str(chunk))).evaluate(0)
        figures.append(metrics)
    assert figures[0] == figures[1]
    assert figures[0]["heldout_score"] != figures[0]["heldout_score_sampled"] or \
        figures[0]["heldout_length"] != figures[0]["heldout_length_sampled"]  # two streams, not one reply thrice


def test_checked_answer_and_prompt_records(tmp_path):
    records = [{"family": "arithmetic", "answer": "3", "lang": "en"}] * 2 + [{"family": "open"}]
    assert checked_answer(["The answer is 3.", "It is 4.", "anything"], ["p"] * 3, records=records) == [1.0, 0.0, 0.0]
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "こんにちは"},
                                             {"role": "assistant", "content": "どうも"}]}, ensure_ascii=False)
                    + "\n" + json.dumps({"instruction": "Add.", "input": "1 + 2", "answer": "3"}) + "\n"
                    + json.dumps({"text": "no prompt here"}) + "\n", encoding="utf-8")
    with pytest.raises(ChowaError, match=r"prompts.jsonl:3"):
        read_prompts([str(path)])
    path.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[:2]), encoding="utf-8")
    first, second = read_prompts([str(path)])
    assert first.reference == "どうも" and first.messages == [{"role": "user", "content": "こんにちは"}]
    assert second.messages == [{"role": "user", "content": "Add.", "input": "1 + 2"}] and second.record["answer"] == "3"
