"""JGLUE metrics as pure functions: choice accuracy, Japanese QA exact match/F1, xlsum ROUGE-2, mgsm numbers.

QA text is normalised the way the reference harness does it (emoji removal, neologdn, whitespace collapse) and
tokenised with MeCab (fugashi + unidic-lite, the `ja-eval` extra). ROUGE-2 reproduces `rouge_score` 0.1.2: per
document n-gram F-measure, then the median of 1,000 bootstrap means drawn from numpy's global RNG, which is why
`rouge2` seeds it (the reference seeds it once at start-up and nothing else draws from it before).

Run as (from Python):
    from chowa.eval.jglue.metrics import exact_match, averages
    exact_match("海沿い", ["海沿い", "海"])  # 1.0
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

from chowa.errors import ChowaError

_EMOJI_RANGES = re.compile(
    "[\U0001F600-\U0001F64F\U0001F300-\U0001F5FF\U0001F680-\U0001F6FF\U0001F1E0-\U0001F1FF\u2702-\u27B0]+")
PUNCT = set(
    "\uff01\uff1f\uff61\u3002\uff02\uff03\uff04\uff05\uff06\uff07\uff08\uff09\uff0a\uff0b\uff0c\uff0d\uff0f\uff1a"
    "\uff1b\uff1c\uff1d\uff1e\uff20\uff3b\uff3c\uff3d\uff3e\uff3f\uff40\uff5b\uff5c\uff5d\uff5e\uff5f\uff60\uff62"
    "\uff63\uff64\u3001\u3003\u300b\u300c\u300d\u300e\u300f\u3010\u3011\u3014\u3015\u3016\u3017\u3018\u3019\u301a"
    "\u301b\u301c\u301d\u301e\u301f\u3030\u303e\u303f\u2013\u2014\u2018\u2019\u201b\u201c\u201d\u201e\u201f\u2026"
    "\u2027\ufe4f.") | set(string.punctuation)
MGSM_NUMBER = re.compile(r"(\-?[0-9\.\,]+)")
AVERAGES = {
    "avg4": ("jcommonsenseqa", "jnli", "marc_ja", "jsquad"),
    "avg6": ("jcommonsenseqa", "jnli", "marc_ja", "jsquad", "jaqket_v2", "xwinograd_ja"),
    "avg8": ("jcommonsenseqa", "jnli", "marc_ja", "jsquad", "jaqket_v2", "xwinograd_ja", "xlsum_ja", "mgsm"),
}


# --- multiple choice ---------------------------------------------------------------------------------------

def choice_metrics(loglikelihoods: Sequence[float], choices: Sequence[str], gold: int) -> dict[str, float]:
    """acc and acc_norm (log-likelihood per character) of one document; the first maximum wins a tie."""
    normed = [ll / len(choice) for ll, choice in zip(loglikelihoods, choices)]
    return {"acc": float(int(np.argmax(loglikelihoods)) == gold), "acc_norm": float(int(np.argmax(normed)) == gold)}


def winograd_acc(ll1: float, ll2: float, answer: str) -> float:
    """1 when the correct sentence is strictly likelier; a tie counts as wrong."""
    return float((answer == "1" and ll1 > ll2) or (answer == "2" and ll2 > ll1))


# --- Japanese QA -------------------------------------------------------------------------------------------

@cache
def _ja_libs():
    try:
        import emoji
        import neologdn
        from fugashi import Tagger
    except ImportError as exc:
        raise ChowaError(f"JGLUE QA metrics need the ja-eval extra (pip install 'chowa[ja-eval]'): {exc}") from None
    return emoji, neologdn, Tagger("-Owakati")


def ja_normalize(text: str) -> str:
    emoji, neologdn, _ = _ja_libs()
    text = "".join("" if emoji.is_emoji(char) else char for char in text)
    text = _EMOJI_RANGES.sub("", text)
    text = neologdn.normalize(text)
    return " ".join(text.split())


def ja_tokens(text: str) -> list[str]:
    return _ja_libs()[2].parse(ja_normalize(text)).split()


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """No lower-casing, no article removal: only `ja_normalize` on both sides."""
    normalized = ja_normalize(prediction)
    return float(max(normalized == ja_normalize(gold) for gold in golds))


def qa_f1(prediction: str, golds: Sequence[str]) -> float:
    """Best token-overlap F1 over the golds; only whole single-character punctuation tokens are dropped."""
    pred_tokens = [t for t in ja_tokens(prediction) if t not in PUNCT]

    def against(gold: str) -> float:
        gold_tokens = [t for t in ja_tokens(gold) if t not in PUNCT]
        same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
        if same == 0:
            return 0.0
        precision, recall = same / len(pred_tokens), same / len(gold_tokens)
        return 2 * precision * recall / (precision + recall)

    return max(against(gold) for gold in golds)


# --- mgsm --------------------------------------------------------------------------------------------------

def mgsm_extract(completion: str) -> int | None:
    """The last number in the completion, if it is an integer."""
    found = MGSM_NUMBER.findall(completion)
    if not found:
        return None
    text = found[-1].strip(".").replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


# --- xlsum ROUGE-2 -----------------------------------------------------------------------------------------

def rouge2_scores(reference: str, prediction: str, tokenize: Callable[[str], list[str]]) -> tuple[float, float, float]:
    """(precision, recall, fmeasure) of bigram overlap, as `rouge_score.rouge_scorer` computes them."""
    ref_grams, pred_grams = _bigrams(tokenize(reference)), _bigrams(tokenize(prediction))
    overlap = sum(min(count, pred_grams[gram]) for gram, count in ref_grams.items())
    precision = overlap / max(sum(pred_grams.values()), 1)
    recall = overlap / max(sum(ref_grams.values()), 1)
    fmeasure = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, fmeasure


def _bigrams(tokens: list[str]) -> Counter:
    return Counter(tuple(tokens[i:i + 2]) for i in range(len(tokens) - 1))


def bootstrap_mid(scores: Sequence[tuple[float, float, float]], n_samples: int = 1000) -> tuple[float, float, float]:
    """The 50th percentile of bootstrap means, per measure, drawing from numpy's *global* RNG like rouge_score.

    scores: (N, 3) rows of (precision, recall, fmeasure); kept as one matrix so the float sums match.
    """
    matrix = np.vstack(tuple(scores))
    sample_mean = np.zeros((n_samples, matrix.shape[1]))
    for i in range(n_samples):
        sample_idx = np.random.choice(np.arange(matrix.shape[0]), size=matrix.shape[0])
        sample_mean[i, :] = np.mean(matrix[sample_idx, :], axis=0)
    delta = (1 - 0.95) / 2  # rouge_score's default 95% interval, computed the same way
    percentiles = np.percentile(sample_mean, 100 * np.array([delta, 0.5, 1 - delta]), axis=0)
    return tuple(float(x) for x in percentiles[1, :])


def rouge2(predictions: Sequence[str], references: Sequence[str], tokenize: Callable[[str], list[str]]) -> dict:
    """Task-level ROUGE-2 ×100 (bootstrap mid, the published number) and the plain mean, in evaluation order."""
    scores = [rouge2_scores(ref, pred, tokenize) for ref, pred in zip(references, predictions)]
    np.random.seed(1234)
    return {"rouge2": bootstrap_mid(scores)[2] * 100, "rouge2_mean": float(np.mean([s[2] for s in scores])) * 100}


# --- averages ----------------------------------------------------------------------------------------------

def averages(scores: dict[str, float | None]) -> dict[str, dict]:
    """4/6/8-task means of unrounded per-task scores (bare task name -> 0-100 score, None when missing).

    A complete average is `{"value", "tasks"}`; with members missing it becomes `<name>_partial` with the
    mean of the present members and the missing names, so a partial mean is never mistaken for the real one.
    """
    out = {}
    for name, members in AVERAGES.items():
        present = [task for task in members if scores.get(task) is not None]
        missing = [task for task in members if task not in present]
        if not present:
            continue
        value = round(sum(scores[task] for task in present) / len(present), 2)
        key = name if not missing else f"{name}_partial"
        out[key] = {"value": value, "tasks": present, **({"missing": missing} if missing else {})}
    return out
