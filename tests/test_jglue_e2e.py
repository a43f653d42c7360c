"""End to end on a tiny random GPT-NeoX: batched scoring equals the one-request-at-a-time reference mode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from chowa.config import load_config
from chowa.errors import ChowaError
from chowa.eval.jglue.runner import run_jglue, write_prompts
from chowa.eval.models import HFCausalLM
from chowa.tokenizer import load_tokenizer
from chowa.tokenizer.train import TokenizerTrainConfig
from chowa.tokenizer.train import main as train_tokenizer
from test_jglue_data import write_jglue_root


def _tiny_model(folder: Path, corpus_root: Path, max_positions: int) -> Path:
    corpus = folder.parent / "corpus.txt"
    lines = [line for path in sorted(corpus_root.rglob("*")) if path.is_file()
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = load_config(TokenizerTrainConfig, overrides=[f"out={folder}", "vocab_size=400"],
                      flags={"input": [str(corpus)]})
    train_tokenizer(cfg)
    tokenizer = load_tokenizer(folder)
    torch.manual_seed(0)
    config = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=max_positions,
                           eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                           initializer_range=0.5)  # large weights: outputs depend visibly on order and position
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jglue_e2e")
    root = write_jglue_root(tmp / "data", long_texts=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a hidden-32 model only loses time to thread hand-offs on a shared CPU
    yield root, _tiny_model(tmp / "model", root, max_positions=1024)
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_weblab_suite_batched_equals_sequential(setup, tmp_path):
    root, model = setup
    results = {}
    for sequential in (True, False):
        out = tmp_path / ("seq" if sequential else "batched") / "results.json"
        results[sequential] = run_jglue(str(model), str(root), suite="weblab", limit=4, batch_size=3,
                                        sequential=sequential, out=str(out), dtype="float32", device="cpu")
    seq, bat = results[True], results[False]
    assert list(seq["tasks"]) == list(bat["tasks"]) and all(t["status"] == "ok" for t in seq["tasks"].values())
    for task_id in seq["tasks"]:
        assert seq["tasks"][task_id]["metrics"] == pytest.approx(bat["tasks"][task_id]["metrics"]), task_id
        seq_docs = _samples(tmp_path / "seq", task_id)
        bat_docs = _samples(tmp_path / "batched", task_id)
        for a, b in zip(seq_docs, bat_docs, strict=True):
            assert a.get("completion") == b.get("completion"), task_id
            # fp32 sums differ by rounding in proportion to their size (6e-5 on −400 nats)
            assert a.get("loglikelihoods", []) == pytest.approx(b.get("loglikelihoods", []), rel=1e-6, abs=1e-5), \
                task_id
    assert set(seq["averages"]) == {"avg4", "avg6", "avg8"}
    table = (tmp_path / "batched" / "results.md").read_text(encoding="utf-8")
    assert table.startswith("| Model | Average | JCommonsenseQA |")


def _samples(folder: Path, task_id: str) -> list[dict]:
    lines = (folder / "results.samples" / f"{task_id}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.slow
def test_truncated_and_shared_contexts_score_like_the_reference(setup):
    """Long contexts (left-truncated), empty contexts ([eos]) and multi-token choices, batched vs one by one."""
    root, model = setup
    lm = HFCausalLM.from_folder(model, dtype="float32", device="cpu", batch_size=4, progress=False)
    lm.max_length = 48  # forces truncation of the long requests below
    long = "雨の記事、第0文。" * 9
    requests = [("", "雨の記事"), ("", "猫"), (long, "ポジティブ"), (long, "ネガティブ"), ("短い。", "entailment"),
                ("短い。", "neutral"), ("短い。", ""), *((long[:30], choice) for choice in "ABCDEF")]
    batched = lm.loglikelihood(requests)
    lm.sequential = True
    sequential = lm.loglikelihood(requests)
    for (a, greedy_a), (b, greedy_b) in zip(batched, sequential):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-5) and greedy_a == greedy_b
    assert batched[6] == (0.0, True)
    gen = [(long, ["\n"], 5), ("短い。", ["文"], 3), ("猫", ["</s>", "\n"], 7)]
    lm.sequential = False
    batched_text = lm.generate_until(gen)
    lm.sequential = True
    assert batched_text == lm.generate_until(gen)


def test_cut_contexts_share_the_window_left_by_the_cut(setup):
    """Continuations of one token count after a context longer than the model's window see the same cut prefix:
    it runs once, and every score is the one-at-a-time reference's; a continuation longer than the window is refused."""
    root, model = setup
    lm = HFCausalLM.from_folder(model, dtype="float32", device="cpu", batch_size=8, progress=False)
    lm.max_length = 40
    long = "雨の記事、第0文。" * 12
    choices = [c for c in "甲乙丙丁戊猫犬" if len(lm.encode(c)) == len(lm.encode("甲"))][:4]
    assert len(choices) >= 3
    requests = [(long, c) for c in choices]
    tokens = []
    hook = lm.model.register_forward_pre_hook(
        lambda module, args, kwargs: tokens.append((args[0] if args else kwargs["input_ids"]).numel()),
        with_kwargs=True)
    batched = lm.loglikelihood(requests)
    hook.remove()
    assert sum(tokens) < 2 * lm.max_length  # one window, not one per continuation
    lm.sequential = True
    for (a, greedy_a), (b, greedy_b) in zip(batched, lm.loglikelihood(requests)):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-5) and greedy_a == greedy_b
    lm.sequential = False
    with pytest.raises(ChowaError, match="does not fit the model's context of 40"):
        lm.loglikelihood([("", "雨の記事" * 40)])


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_cut_contexts_of_several_continuation_lengths_in_one_batch(setup, positions):
    """Two token counts after one cut context share a chunk: the shorter rows' padding runs past the window, which a
    learned position table (GPT-2 style) has no row for; scores still equal one request at a time."""
    from transformers import GPT2Config, GPT2LMHeadModel

    root, model = setup
    lm = HFCausalLM.from_folder(model, dtype="float32", device="cpu", batch_size=16, progress=False)
    if positions == "learned":
        torch.manual_seed(0)
        config = GPT2Config(vocab_size=len(lm.tokenizer), n_positions=40, n_embd=32, n_layer=2, n_head=2,
                            eos_token_id=lm.eos_token_id, bos_token_id=lm.eos_token_id)
        lm = HFCausalLM(GPT2LMHeadModel(config), lm.tokenizer, batch_size=16, progress=False)
        assert lm.max_length == 40
    lm.max_length = 40
    long = "雨の記事、第0文。" * 12
    by_length: dict[int, list[str]] = {}
    for piece in ["甲", "乙", "丙", "猫", "犬", "雨の記事", "第0文", "記事", "ネガティブ", "ポジティブ"]:
        by_length.setdefault(len(lm.encode(piece)), []).append(piece)
    groups = [pieces[:3] for pieces in by_length.values() if len(pieces) >= 2]
    assert len(groups) >= 2, by_length  # two token counts, two or more continuations each
    requests = [(long, piece) for pieces in groups for piece in pieces]
    batched = lm.loglikelihood(requests)
    lm.sequential = True
    for (a, greedy_a), (b, greedy_b) in zip(batched, lm.loglikelihood(requests)):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-5) and greedy_a == greedy_b


def test_write_prompts_with_model_trims_and_sets_budgets(setup, tmp_path):
    root, model = setup
    out = tmp_path / "p.jsonl"
    assert write_prompts("mgsm-1.0-0.4", str(root), out, limit=2, model=str(model)) == 2
    record = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert record["until"] == ["</s>", "\n"] and record["max_new_tokens"] == 256 and isinstance(record["gold"], int)
    jsquad = tmp_path / "j.jsonl"
    write_prompts("jsquad-1.1-0.3", str(root), jsquad, limit=1, model=str(model))
    assert json.loads(jsquad.read_text(encoding="utf-8"))["max_new_tokens"] >= 1


def test_missing_task_is_reported_missing(setup, tmp_path):
    root, model = setup
    partial = tmp_path / "partial"  # xwinograd's file and nothing else
    shutil.copytree(Path(root) / "xwinograd", partial / "xwinograd")
    results = run_jglue(str(model), str(partial), tasks="jnli-1.1-0.3,xwinograd_ja", dtype="float32", device="cpu")
    tasks = results["tasks"]
    assert tasks["jnli-1.1-0.3"]["status"] == "missing" and tasks["xwinograd_ja"]["status"] == "ok"
    assert results["averages"] and all(key.endswith("_partial") for key in results["averages"])  # never a 0 counted
    (partial / "xwinograd" / "dataset.tsv").unlink()
    with pytest.raises(ChowaError, match="no requested task has its files under"):  # nothing at all: an error
        run_jglue(str(model), str(partial), tasks="jnli-1.1-0.3,xwinograd_ja", dtype="float32", device="cpu")


def test_batch_size_bounds_rows_per_forward(setup):
    root, model = setup
    lm = HFCausalLM.from_folder(model, dtype="float32", device="cpu", batch_size=4, progress=False)
    rows = []

    def record(module, args, kwargs):
        ids = args[0] if args else kwargs["input_ids"]
        rows.append(ids.shape[0])

    lm.model.register_forward_pre_hook(record, with_kwargs=True)
    # Nine continuations of one shared context (as xwinograd's [eos]) and two 5-choice questions.
    requests = [("", f"文{i}") for i in range(9)] + [(q, c) for q in ("問一", "問二") for c in "甲乙丙丁戊"]
    lm.loglikelihood(requests)
    assert rows and max(rows) <= 4


def test_sampling_settings_in_the_folder_are_warned_about(setup, caplog):
    root, model = setup
    lm = HFCausalLM.from_folder(model, dtype="float32", device="cpu", progress=False)
    lm.model.generation_config.repetition_penalty = 1.2
    with caplog.at_level("WARNING", logger="chowa.eval.models"):
        HFCausalLM(lm.model, lm.tokenizer)
    assert "repetition_penalty" in caplog.text
