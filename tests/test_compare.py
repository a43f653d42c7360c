"""`chowa compare`: judges decide each pair as documented, orders that disagree tie, the human sheet round-trips;
`chowa eval heldout` checks every reply of several models."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from chowa.errors import ChowaError
from chowa.eval.compare import compare, tally
from chowa.formats import encode_prompt, save_format
from chowa.generate import Sampling
from chowa.tables import win_tie_loss_table
from chowa.tokenizer import load_tokenizer

PROMPTS = ["猫を2回書いてください。", "Write 'tea' 3 times.", "こんにちは", "What is 3 plus 4?", "雨", "空はなぜ青い?"]
GREEDY = Sampling(greedy=True, max_new_tokens=8)
JUDGES = '''
def weight(text):
    return sum(map(ord, text)) % 101

def heavier(samples, prompts, records, **meta):
    assert len(prompts) == len(records) == len(samples) and prompts[0].endswith("システム: ")
    return [float(weight(s)) for s in samples]

def heavier_pair(prompt, first_reply, second_reply, record):
    if weight(first_reply) == weight(second_reply):
        return "tie"
    return "first" if weight(first_reply) > weight(second_reply) else "second"

def always_first(prompt, first_reply, second_reply, record):
    return "first"

def shrug(prompt, first_reply, second_reply, record):
    return "maybe"
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model_dir, tokenizer_dir) -> tuple[Path, Path]:
    """Two tiny chat-model folders (different random weights, rinna format)."""
    from chowa.models.build import build_model

    a, b = tmp_path_factory.mktemp("model-a"), tmp_path_factory.mktemp("model-b")
    shutil.copytree(tiny_model_dir, a, dirs_exist_ok=True)
    tokenizer = load_tokenizer(tokenizer_dir)
    build_model("tiny", tokenizer=tokenizer, seed=1, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64).save_pretrained(str(b))
    tokenizer.save_pretrained(str(b))
    for folder in (a, b):
        save_format(folder, "rinna")
    return a, b


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}, ensure_ascii=False) + "\n" for p in PROMPTS), encoding="utf-8")
    return path


@pytest.fixture()
def judges(tmp_path, monkeypatch) -> str:
    (tmp_path / "compare_judges.py").write_text(JUDGES, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "compare_judges"


def _rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _heavier(row: dict) -> str:
    """The verdict of the test judges: the reply with the larger sum of code points (mod 101) wins."""
    a, b = (sum(map(ord, row[key])) % 101 for key in ("reply_a", "reply_b"))
    return "tie" if a == b else "A" if a > b else "B"


def test_pointwise_rule_judge_is_order_invariant_and_counts_from_a(models, prompts_file, judges, tmp_path):
    summary = compare(*models, prompts_file, f"rule:{judges}:heavier", tmp_path / "out", GREEDY)
    rows = _rows(tmp_path / "out" / "compare.csv")
    assert len(rows) == len(PROMPTS) and all(r["verdict_ab"] == r["verdict_ba"] == r["final"] for r in rows)
    expected = [_heavier(r) for r in rows]
    assert [r["final"] for r in rows] == expected and {"A", "B"} <= set(expected)
    assert (summary["win"], summary["tie"], summary["loss"]) == tuple(expected.count(v) for v in ("A", "tie", "B"))
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
    low, high = summary["interval"]["win"]  # a 95% (Wilson) interval around each share (#13)
    assert low < summary["win"] / len(rows) < high and f"[{100 * low:.1f}–{100 * high:.1f}]" in win_tie_loss_table(
        summary)
    table = win_tie_loss_table(summary)
    assert f"| A ({models[0]}) vs B ({models[1]}) | {summary['win']} (" in table


def test_pairwise_judge_is_asked_both_orders_and_disagreement_ties(models, prompts_file, judges, tmp_path):
    biased = compare(*models, prompts_file, f"pair:{judges}:always_first", tmp_path / "biased", GREEDY)
    rows = _rows(tmp_path / "biased" / "compare.csv")
    assert [(r["verdict_ab"], r["verdict_ba"], r["final"]) for r in rows] == [("A", "B", "tie")] * len(PROMPTS)
    assert biased["tie"] == biased["order_disagreements"] == len(PROMPTS)
    fair = compare(*models, prompts_file, f"pair:{judges}:heavier_pair", tmp_path / "fair", GREEDY)
    rows = _rows(tmp_path / "fair" / "compare.csv")
    assert fair["order_disagreements"] == 0 and [r["final"] for r in rows] == [_heavier(r) for r in rows]
    with pytest.raises(ChowaError, match=r"prompt 1: returned 'maybe'"):
        compare(*models, prompts_file, f"pair:{judges}:shrug", tmp_path / "bad", GREEDY)


def test_reward_judge_scores_prompt_reply_and_eos(models, prompts_file, tmp_path, tiny_model_dir):
    reward = tmp_path / "reward"
    tokenizer = load_tokenizer(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=1,
                                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(str(reward))
    tokenizer.save_pretrained(str(reward))
    save_format(reward, "rinna")
    summary = compare(*models, prompts_file, f"reward:{reward}", tmp_path / "out", GREEDY, batch_size=4)
    rows = _rows(tmp_path / "out" / "compare.csv")
    model.eval()
    for row in rows[:2]:
        ids = encode_prompt([{"role": "user", "content": row["prompt"]}], "rinna", tokenizer)
        ids += tokenizer.encode(row["reply_a"], add_special_tokens=False) + [tokenizer.eos_token_id]
        with torch.no_grad():
            direct = model(input_ids=torch.tensor([ids])).logits[0, 0].item()
        assert float(row["score_a"]) == pytest.approx(direct, abs=1e-4)
    for row in rows:
        a, b = float(row["score_a"]), float(row["score_b"])
        assert row["final"] == ("tie" if abs(a - b) <= 1e-6 else "A" if a > b else "B")
    assert summary["win"] + summary["tie"] + summary["loss"] == len(PROMPTS)


def test_human_sheet_is_blind_and_tally_reads_it_back(models, prompts_file, tmp_path):
    out = tmp_path / "human"
    info = compare(*models, prompts_file, "human", out, GREEDY, seed=3)
    sheet = Path(info["sheet"])
    rows = _rows(sheet)
    assert list(rows[0]) == ["prompt_id", "prompt", "reply_1", "reply_2", "verdict"] and len(rows) == len(PROMPTS)
    key = json.loads((out / ".sheet_key.json").read_text(encoding="utf-8"))["a_is"]
    assert set(key.values()) == {"1", "2"}  # shuffled: A is sometimes reply_1, sometimes reply_2
    assert "A" not in sheet.read_text(encoding="utf-8-sig").split("\n")[0]

    def fill(verdicts: list[str]) -> None:
        for row, verdict in zip(rows, verdicts):
            row["verdict"] = verdict
        with open(sheet, "w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    fill(["1"] * (len(PROMPTS) - 1) + ["Tie"])
    summary = tally(sheet)
    a_first = sum(key[str(i)] == "1" for i in range(1, len(PROMPTS)))
    assert (summary["win"], summary["tie"], summary["loss"]) == (a_first, 1, len(PROMPTS) - 1 - a_first)
    replies = {r["prompt_id"]: r for r in _rows(out / "compare.csv")}
    first = rows[0]
    assert replies["1"]["reply_a"] == (first["reply_1"] if key["1"] == "1" else first["reply_2"])
    fill(["1", "", "2", "x", "tie", "2"])
    with pytest.raises(ChowaError, match=r"row 3 \(prompt_id 2\): verdict '' .*row 5 \(prompt_id 4\): verdict 'x'"):
        tally(sheet)
    with pytest.raises(ChowaError, match=r"key is missing"):
        tally(sheet, tmp_path / "nowhere.json")


def test_bad_judge_is_named_before_generation(models, prompts_file, tmp_path):
    for judge, message in [("vote", "expected reward:DIR"), ("rule:nosuchmodule:f", "cannot import module"),
                           (f"reward:{tmp_path / 'absent'}", "is not a folder"), ("rule:json", "module:function")]:
        with pytest.raises(ChowaError, match=message):
            compare(*models, prompts_file, judge, tmp_path / "out", GREEDY)


def test_eval_heldout_command_checks_every_reply_and_prints_the_table(models, tmp_path, capsys):
    from chowa.answers import check_answer, preferred_style
    from chowa.cli import main as cli_main

    a, b = models
    code = cli_main(["eval", "heldout", "--model", f"first={a}", "--model", f"second={b}", "--limit", "24",
                     "--max-new-tokens", "6", "--out", str(tmp_path)])
    assert code == 0
    results = json.loads((tmp_path / "heldout.json").read_text(encoding="utf-8"))
    printed = capsys.readouterr()
    table = printed.out
    assert "eval first:" in printed.err and "eval second:" in printed.err and "0/24" in printed.err  # progress bars
    for name in ("first", "second"):
        replies = [json.loads(line) for line in (tmp_path / f"replies_{name}.jsonl").read_text("utf-8").splitlines()]
        assert len(replies) == 24 == results["prompts"]
        hits = [check_answer(r, r["reply"]) for r in replies]
        styles = [s for s in (preferred_style(r, r["reply"]) for r in replies) if s is not None]
        model = results["models"][name]
        assert model["accuracy"] == round(sum(hits) / len(hits), 4)
        assert model["preferred_style"] == (round(sum(styles) / len(styles), 4) if styles else None)
        assert f"| {name} | {100 * model['accuracy']:.1f}% |" in table
    assert cli_main(["eval", "heldout", "--model", str(a)]) == 2  # NAME=DIR is required
    assert cli_main(["eval", "heldout", "--model", f"x={a}", "--temperature", "0.7"]) == 2  # needs --sampled
    assert "for sampled replies only" in capsys.readouterr().err

