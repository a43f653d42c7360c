"""The continuous-batching engine: rows join and leave a running batch without changing what any row generates."""

from __future__ import annotations

import pytest
import torch

from chowa.decoding import DecodeSettings
from chowa.engine import Engine, QueueFull, Request
from chowa.generate import per_prompt_sampling, prompt_seed
from chowa.models.build import build_model
from chowa.tokenizer import load_tokenizer

TEXTS = ["今日は雨", "The meeting starts at 3 p.m. tomorrow and", "駅まで",
         "お茶を飲みながら本を読むのが好きだ。明日は", "Tokyo has 23", "母は毎朝",
         "In winter the mountains turn white", "ラーメン"]


@pytest.fixture(scope="module")
def lm(tokenizer_dir):
    tokenizer = load_tokenizer(tokenizer_dir)
    model = build_model("tiny", tokenizer=tokenizer, seed=1, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64).eval()
    prompts = [tokenizer.encode(text, add_special_tokens=False) for text in TEXTS]
    return model, tokenizer, prompts


def _hf(model, tokenizer, prompt: list[int], steps: int, **options) -> list[int]:
    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps,
                         pad_token_id=tokenizer.eos_token_id, **options)
    return out[0, len(prompt):].tolist()


def test_greedy_rows_equal_transformers_generate_alone_whatever_joins_and_leaves(lm):
    model, tokenizer, prompts = lm
    eos = frozenset({tokenizer.eos_token_id})
    budgets = [5 + 3 * (i % 4) for i in range(16)]  # unequal lengths: rows leave at different steps
    requests = [Request(prompts[i % len(prompts)], max_new_tokens=budget, stop_ids=eos)
                for i, budget in enumerate(budgets)]
    steps = []
    engine = Engine(model, tokenizer, max_batch=5)  # 16 requests through 5 rows: most join a running batch
    engine.on_step = steps.append
    engine.run(requests)
    assert max(steps) == 5 and len(set(steps)) > 1
    for request, budget in zip(requests, budgets, strict=True):
        alone = _hf(model, tokenizer, request.prompt, budget, do_sample=False)
        assert request.output == alone[:len(request.output)] and request.finish_reason in ("stop", "length")
        assert len(request.output) == budget or request.output[-1] in eos


def test_sampled_rows_draw_the_same_tokens_as_generate_with_the_per_prompt_sampler(lm):
    model, tokenizer, prompts = lm
    options = {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1}
    settings = DecodeSettings.of(options, model)
    requests = [Request(p, settings, max_new_tokens=12, seed=prompt_seed(5, i)) for i, p in enumerate(prompts)]
    Engine(model, tokenizer, max_batch=3).run(requests)
    for index, request in enumerate(requests):
        expected = _hf(model, tokenizer, request.prompt, 12,
                       **per_prompt_sampling(model, dict(options), [prompt_seed(5, index)]))
        assert request.output == expected
    assert len({tuple(r.output) for r in requests}) > 1


def test_a_request_submitted_while_others_run_joins_at_the_next_step(lm):
    model, tokenizer, prompts = lm
    engine = Engine(model, tokenizer, max_batch=4)
    first = Request(prompts[0], max_new_tokens=20)
    engine.submit(first)
    for _ in range(4):
        engine.step()
    late = Request(prompts[1], max_new_tokens=6)
    engine.submit(late)
    engine.step()
    assert len(engine.rows) == 2 and len(late.output) == 2  # prefilled (first token) and decoded once
    while engine.busy:
        engine.step()
    assert late.output == _hf(model, tokenizer, prompts[1], 6, do_sample=False)
    assert first.output == _hf(model, tokenizer, prompts[0], 20, do_sample=False)


def test_a_cancelled_row_leaves_at_the_next_step_and_the_cache_shrinks(lm):
    model, tokenizer, prompts = lm
    engine = Engine(model, tokenizer, max_batch=4)
    long_prompt = prompts[3] * 3
    going, staying = Request(long_prompt, max_new_tokens=30), Request(prompts[2], max_new_tokens=8)
    engine.submit(going)
    engine.submit(staying)
    engine.step()
    width = engine.batch.mask.shape[1]
    going.cancelled = True
    engine.step()
    assert going.finish_reason == "cancelled" and len(engine.rows) == 1
    assert engine.batch.mask.shape[1] < width  # the long prompt's columns are gone
    while engine.busy:
        engine.step()
    assert staying.output == _hf(model, tokenizer, prompts[2], 8, do_sample=False)


def test_a_row_whose_scores_break_fails_alone(lm):
    model, tokenizer, prompts = lm
    broken = Request(prompts[0], DecodeSettings(do_sample=True, temperature=1e-300, top_k=0), max_new_tokens=4)
    fine = [Request(p, max_new_tokens=4) for p in prompts[1:4]]
    Engine(model, tokenizer, max_batch=4).run([broken, *fine])
    assert broken.finish_reason == "error" and "no usable distribution" in broken.error
    assert all(r.finish_reason == "length" and len(r.output) == 4 for r in fine)


def test_min_tokens_bans_eos_and_the_queue_has_a_limit(lm):
    model, tokenizer, prompts = lm
    eos = tokenizer.eos_token_id
    boost = torch.zeros(model.config.vocab_size)
    boost[eos] = 100.0  # make EOS the likeliest token
    hook = model.get_output_embeddings().register_forward_hook(lambda module, args, out: out + boost)
    try:
        quick = Request(prompts[0], max_new_tokens=5, stop_ids=frozenset({eos}))
        held = Request(prompts[0], max_new_tokens=5, min_new_tokens=3, stop_ids=frozenset({eos}))
        Engine(model, tokenizer).run([quick, held])
    finally:
        hook.remove()
    assert quick.output == [eos] and quick.finish_reason == "stop"
    assert eos not in held.output[:3] and held.output[3] == eos and held.finish_reason == "stop"
    engine = Engine(model, tokenizer, max_queue=2)
    engine.submit(Request(prompts[0]))
    gone = Request(prompts[1])
    engine.submit(gone)
    with pytest.raises(QueueFull):
        engine.submit(Request(prompts[2]))
    gone.cancelled = True  # a client that left holds no place
    engine.submit(Request(prompts[2]))
    with pytest.raises(QueueFull):
        engine.submit(Request(prompts[3]))
