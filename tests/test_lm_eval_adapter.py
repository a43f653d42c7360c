"""The lm-eval adapter: local-file tasks run on a tiny chowa model, and its numbers equal direct computation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

lm_eval = pytest.importorskip("lm_eval")

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from chowa.eval.lm_eval_adapter import ChowaLM  # noqa: E402
from chowa.formats import render_prompt  # noqa: E402

QUESTIONS = [("日本の首都は?", ["東京", "大阪", "京都"], 0), ("What is 3 plus 4?", ["7", "8", "12"], 0),
             ("猫は何と鳴く?", ["ワン", "ニャー"], 1), ("Which is a colour?", ["red", "run", "rain"], 0)]


def _task_folder(folder: Path) -> Path:
    """A multiple-choice and a generate_until task over JSONL files, as a user's local tasks would be."""
    data = folder / "tiny_qa.jsonl"
    data.write_text("".join(json.dumps({"question": q, "choices": c, "label": label, "answer": c[label]},
                                       ensure_ascii=False) + "\n" for q, c, label in QUESTIONS), encoding="utf-8")
    common = (f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n  cache_dir: {folder / 'cache'}\n"
              "test_split: test\n")
    (folder / "tiny_mc.yaml").write_text(
        "task: chowa_tiny_mc\n" + common + "output_type: multiple_choice\ndoc_to_text: \"質問: {{question}}\\n回答:\"\n"
        "doc_to_choice: \"{{choices}}\"\ndoc_to_target: label\nmetric_list:\n  - metric: acc\n  - metric: acc_norm\n",
        encoding="utf-8")
    (folder / "tiny_gen.yaml").write_text(
        "task: chowa_tiny_gen\n" + common + "output_type: generate_until\ndoc_to_text: \"質問: {{question}}\\n回答:\"\n"
        "doc_to_target: \"{{answer}}\"\ngeneration_kwargs:\n  until: [\"\\n\", \"。\"]\n  max_gen_toks: 6\n"
        "  do_sample: false\nmetric_list:\n  - metric: exact_match\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def chowa_lm(tiny_model_dir) -> ChowaLM:
    return ChowaLM(pretrained=str(tiny_model_dir), batch_size=4, device="cpu", format="rinna")


def _direct_loglikelihood(lm: ChowaLM, context: str, continuation: str) -> float:
    """Sum of log p(continuation tokens) from one plain forward pass over context + continuation."""
    ctx_ids = lm.lm.encode(context) or [lm.lm.eos_token_id]
    cont_ids = lm.lm.encode(continuation)
    with torch.no_grad():
        logits = lm.lm.model(torch.tensor([ctx_ids + cont_ids])).logits[0, len(ctx_ids) - 1:-1]
    return F.log_softmax(logits.float(), dim=-1).gather(1, torch.tensor(cont_ids)[:, None]).sum().item()


def test_simple_evaluate_runs_local_tasks_on_a_chowa_model(tmp_path, tiny_model_dir, chowa_lm):
    from lm_eval import simple_evaluate

    tasks = TaskManager(include_path=str(_task_folder(tmp_path)), include_defaults=False)  # skip 14k YAMLs
    out = simple_evaluate(model="chowa", model_args=f"pretrained={tiny_model_dir},device=cpu", batch_size=4,
                          tasks=["chowa_tiny_mc", "chowa_tiny_gen"], task_manager=tasks, log_samples=True)
    mc, gen = out["results"]["chowa_tiny_mc"], out["results"]["chowa_tiny_gen"]
    assert 0.0 <= mc["acc,none"] <= 1.0 and 0.0 <= mc["acc_norm,none"] <= 1.0
    assert gen["exact_match,none"] == 0.0  # a random model answers none of them
    lm, correct = chowa_lm, 0
    for sample in out["samples"]["chowa_tiny_mc"]:
        direct = [_direct_loglikelihood(lm, ctx, cont) for ctx, cont in sample["arguments"]]
        assert [r[0][0] for r in sample["resps"]] == pytest.approx(direct, abs=1e-4)
        correct += max(range(len(direct)), key=direct.__getitem__) == sample["target"]
    assert mc["acc,none"] == pytest.approx(correct / len(QUESTIONS))
    for sample in out["samples"]["chowa_tiny_gen"]:
        reply = sample["resps"][0][0]
        assert "\n" not in reply and "。" not in reply


def _requests(kind: str, args: list[tuple]) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=0) for a in args]


def test_generation_is_the_same_batched_or_alone_and_honours_until(chowa_lm):
    kwargs = {"until": ["。"], "max_gen_toks": 5, "do_sample": False}
    prompts = ["吾輩は猫である。", "It has been raining", ""]
    batched = chowa_lm.generate_until(_requests("generate_until", [(p, kwargs) for p in prompts]))
    single = [chowa_lm.generate_until(_requests("generate_until", [(p, dict(kwargs))]))[0] for p in prompts]
    assert batched == single and any(batched)
    assert batched == [_greedy(chowa_lm, p, 5, "。") for p in prompts]
    short = chowa_lm.generate_until(_requests("generate_until", [(prompts[1], {"until": [], "max_gen_toks": 2})]))
    assert short == [_greedy(chowa_lm, prompts[1], 2, None)]


def _greedy(lm: ChowaLM, prompt: str, steps: int, stop: str | None) -> str:
    """An argmax loop of `steps` tokens without cache or padding, cut at EOS and at `stop`."""
    ids = lm.lm.encode(prompt) or [lm.lm.eos_token_id]
    new: list[int] = []
    with torch.no_grad():
        while len(new) < steps and (not new or new[-1] != lm.lm.eos_token_id):
            new.append(int(lm.lm.model(torch.tensor([ids + new])).logits[0, -1].argmax()))
    text = lm.tokenizer.decode([t for t in new if t != lm.lm.eos_token_id], skip_special_tokens=True)
    return text.split(stop)[0] if stop else text


def test_loglikelihood_and_rolling_equal_a_direct_forward_pass(chowa_lm):
    pairs = [("質問: 日本の首都は?\n回答:", " 東京"), ("質問: 日本の首都は?\n回答:", " 大阪です"), ("", "こんにちは")]
    results = chowa_lm.loglikelihood(_requests("loglikelihood", pairs))
    assert [r[0] for r in results] == pytest.approx([_direct_loglikelihood(chowa_lm, *p) for p in pairs], abs=1e-4)
    text = "吾輩は猫である。名前はまだ無い。"
    (rolling,) = chowa_lm.loglikelihood_rolling(_requests("loglikelihood_rolling", [(text,)]))
    assert rolling == pytest.approx(_direct_loglikelihood(chowa_lm, "", text), abs=1e-4)
    chowa_lm.lm.max_length = 4  # windows of 4: each token is still predicted exactly once
    try:
        (windowed,) = chowa_lm.loglikelihood_rolling(_requests("loglikelihood_rolling", [(text,)]))
    finally:
        chowa_lm.lm.max_length = chowa_lm.lm.model.config.max_position_embeddings
    assert windowed < 0 and windowed != pytest.approx(rolling, abs=1e-6)


def test_chat_template_renders_in_the_chowa_format(chowa_lm):
    messages = [{"role": "user", "content": "3たす4は?"}]
    assert chowa_lm.apply_chat_template(messages) == render_prompt(messages, "rinna", "</s>")


def test_multiple_choice_tasks_score_a_byte_group_model(tmp_path):
    """lm-eval's loglikelihood requests reach the byte-group model's byte scoring (chowa.eval.byte_lm)."""
    from lm_eval import simple_evaluate

    from chowa.bytegroup.model import ByteGroupConfig, ByteGroupForCausalLM, ByteGroupTokenizer, save_folder
    from chowa.eval.byte_lm import ByteGroupLM
    from chowa.eval.models import HFCausalLM
    from chowa.formats import save_format

    torch.manual_seed(0)
    config = ByteGroupConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                             intermediate_size=172, max_position_embeddings=128)
    folder = save_folder(ByteGroupForCausalLM(config), ByteGroupTokenizer(), tmp_path / "bytes")
    save_format(folder, "rinna")
    tasks = TaskManager(include_path=str(_task_folder(tmp_path)), include_defaults=False)
    out = simple_evaluate(model="chowa", model_args=f"pretrained={folder},device=cpu", batch_size=4,
                          tasks=["chowa_tiny_mc"], task_manager=tasks, log_samples=True)
    lm = HFCausalLM.from_folder(folder, device="cpu", progress=False)
    assert isinstance(lm, ByteGroupLM)
    for sample in out["samples"]["chowa_tiny_mc"]:
        expected = lm.loglikelihood([tuple(args) for args in sample["arguments"]])
        assert [r[0][0] for r in sample["resps"]] == pytest.approx([e[0] for e in expected], abs=1e-4)
    assert 0.0 <= out["results"]["chowa_tiny_mc"]["acc,none"] <= 1.0
