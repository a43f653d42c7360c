"""JGLUE metrics on hand-computed values, and the weblab card's averages from its per-task scores."""

from __future__ import annotations

import numpy as np
import pytest

from chowa.eval.jglue.metrics import (
    averages,
    bootstrap_mid,
    choice_metrics,
    exact_match,
    ja_normalize,
    mgsm_extract,
    qa_f1,
    rouge2,
    rouge2_scores,
    winograd_acc,
)
from chowa.eval.jglue.runner import results_markdown

WEBLAB_SFT = {"jcommonsenseqa": 74.62, "jnli": 66.56, "marc_ja": 95.49, "jsquad": 78.34, "jaqket_v2": 63.32,
              "xlsum_ja": 20.57, "xwinograd_ja": 71.95, "mgsm": 2.0}


def test_weblab_card_averages():
    avg = averages(WEBLAB_SFT)
    assert {k: v["value"] for k, v in avg.items()} == {"avg4": 78.75, "avg6": 75.05, "avg8": 59.11}
    assert avg["avg6"]["tasks"] == ["jcommonsenseqa", "jnli", "marc_ja", "jsquad", "jaqket_v2", "xwinograd_ja"]


def test_missing_task_gives_a_labelled_partial_mean():
    avg = averages({**WEBLAB_SFT, "marc_ja": None})
    assert "avg4" not in avg and avg["avg4_partial"] == {
        "value": round((74.62 + 66.56 + 78.34) / 3, 2), "tasks": ["jcommonsenseqa", "jnli", "jsquad"],
        "missing": ["marc_ja"]}


def test_acc_norm_divides_by_characters_and_ties_go_to_the_first():
    # acc picks choice 1 (-2 > -3); per character: -4/4 = -1 beats -2/1 and -3/2.
    assert choice_metrics([-4.0, -2.0, -3.0], ["abcd", "x", "yz"], gold=0) == {"acc": 0.0, "acc_norm": 1.0}
    assert choice_metrics([-1.0, -1.0], ["a", "b"], gold=0)["acc"] == 1.0
    assert choice_metrics([-1.0, -1.0], ["a", "b"], gold=1)["acc"] == 0.0


def test_winograd_tie_is_wrong():
    assert winograd_acc(-1.0, -2.0, "1") == 1.0 and winograd_acc(-2.0, -1.0, "2") == 1.0
    assert winograd_acc(-1.0, -1.0, "1") == 0.0 and winograd_acc(-1.0, -1.0, "2") == 0.0


def test_normalisation_removes_emoji_folds_width_and_collapses_space():
    assert ja_normalize(" ＡＢＣ　１２３😀  x ") == "ABC 123 x"
    assert exact_match(" 東京😀", ["大阪", "東京"]) == 1.0
    assert exact_match("東京。", ["東京"]) == 0.0  # punctuation matters for exact match
    assert exact_match("</s>東京", ["東京"]) == 0.0  # generations are scored raw


def test_f1_uses_mecab_tokens_and_drops_punctuation_tokens():
    # MeCab (unidic-lite) splits 東京都 into 東京 / 都: precision 1/2, recall 1, F1 2/3.
    assert qa_f1("東京都", ["東京"]) == pytest.approx(2 / 3)
    assert qa_f1("「東京」。", ["東京"]) == 1.0
    assert qa_f1("大阪", ["東京", "大阪府"]) == pytest.approx(2 / 3)
    assert qa_f1("。", ["東京"]) == 0.0


@pytest.mark.parametrize("text, number", [("答えは1,234です。", 1234), ("合計は-7個", -7), ("答えは5.", 5),
                                          ("3.5 個", None), ("なし", None), ("1.2.3", None), ("2と3.0", 3)])
def test_mgsm_extract(text, number):
    assert mgsm_extract(text) == number


def test_rouge2_scores_by_hand():
    split = str.split
    # reference bigrams: (a b) (b c) (c d); prediction: (a b) (b x): overlap 1, P = 1/2, R = 1/3, F = 0.4
    assert rouge2_scores("a b c d", "a b x", split) == pytest.approx((0.5, 1 / 3, 0.4))
    assert rouge2_scores("a", "a", split) == (0.0, 0.0, 0.0)


def test_bootstrap_mid_of_identical_scores_is_that_score():
    np.random.seed(0)
    assert bootstrap_mid([(0.5, 0.25, 0.3)] * 7) == pytest.approx((0.5, 0.25, 0.3))


def test_rouge2_reseeds_so_it_is_reproducible():
    refs, preds = ["a b c", "d e f", "a b", "x y z"], ["a b", "d e", "b a", "x y z"]
    first = rouge2(preds, refs, str.split)
    np.random.seed(99)
    assert rouge2(preds, refs, str.split) == first
    assert first["rouge2_mean"] == pytest.approx(100 * (2 / 3 + 2 / 3 + 0 + 1) / 4)


def test_rouge2_matches_rouge_score_when_installed():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scoring = pytest.importorskip("rouge_score.scoring")

    class Split:
        def tokenize(self, text):
            return text.split()

    rng = np.random.default_rng(0)
    words = list("abcdefg")
    refs = [" ".join(rng.choice(words, size=int(rng.integers(0, 12)))) for _ in range(41)]
    preds = [" ".join(rng.choice(words, size=int(rng.integers(0, 12)))) for _ in range(41)]
    scorer, agg = rouge_scorer.RougeScorer(["rouge2"], tokenizer=Split()), scoring.BootstrapAggregator()
    for ref, pred in zip(refs, preds):
        agg.add_scores(scorer.score(ref, pred))
    np.random.seed(1234)
    expected = agg.aggregate()["rouge2"].mid.fmeasure * 100
    assert rouge2(preds, refs, str.split)["rouge2"] == expected


def test_markdown_table_in_the_cards_layout():
    results = {"model": "/m/weblab-10b-instruction-sft", "tasks": {}, "averages": averages(WEBLAB_SFT)}
    for name, task_id in zip(WEBLAB_SFT, ["jcommonsenseqa-1.1-0.3", "jnli-1.1-0.3", "marc_ja-1.1-0.3",
                                          "jsquad-1.1-0.3", "jaqket_v2-0.2-0.3", "xlsum_ja-1.0-0.3",
                                          "xwinograd_ja", "mgsm-1.0-0.3"]):
        results["tasks"][task_id] = {"status": "ok", "score": WEBLAB_SFT[name], "warnings": []}
    lines = results_markdown(results).splitlines()
    assert lines[0] == ("| Model | Average | JCommonsenseQA | JNLI | MARC-ja | JSQuAD | jaqket_v2 | xlsum_ja | "
                        "xwinograd_ja | mgsm |")
    assert lines[2] == ("| weblab-10b-instruction-sft | 59.11 | 74.62 | 66.56 | 95.49 | 78.34 | 63.32 | 20.57 | 71.95 "
                        "| 2.00 |")
