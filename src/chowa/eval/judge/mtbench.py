"""ja-vicuna-qa-benchmark (FastChat's MT-bench protocol) on a benchmark folder in its own layout: answers written by
chowa, judgments asked and scored exactly as the reference code does (`../shared/specs/judge.md` §2).

Layout (the user's clone, e.g. `ja-vicuna-qa-benchmark/data/jp_bench/`):
    question.jsonl, judge_prompts.jsonl (pair, pair-math, single, single-math),
    reference_answer/<name>/results.jsonl, model_answer/<model_id>/{results.jsonl, config.json},
    model_judgment/pairwise/<judge>/pairwise:<m1>_<m2>.jsonl, model_judgment/single/<judge>/single:<model>.jsonl

As the reference: only each question's first turn is answered and judged; categories math, reasoning and coding
take a reference answer (from `reference_answer/gpt-4/` whatever the judge, unless told otherwise) and the `-math`
judge prompts; a pairwise question is judged in both orders; pairs are the sorted models' combinations (the
baseline is `model_1` only when its id sorts first); the win table counts a question as a tie when either order
says tie or the two disagree (so one "error" makes a tie, and an error in both orders a win for `model_2`, as the
reference's arithmetic has it); the single score is the mean over every judgment, an unparsed one counting −1.
Where chowa differs it says so: the reference's answer generator, given a config with a `generation_config`,
applies question 1's category temperature to all 80 questions (it mutates the dict); chowa applies each question's
own category temperature, as the reference intends.

Run as:
    chowa eval answers --bench jp_bench --model rinna-ppo=runs/demo/ppo
    chowa eval judge --bench jp_bench --mode pairwise-baseline --models rinna-ppo \\
        --baseline openai--text-davinci-003 --judge-model gpt-4 --judge-url https://api.openai.com
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import string
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from chowa.config.generate import Sampling
from chowa.config.judge import EvalAnswersConfig, EvalJudgeConfig
from chowa.errors import ChowaError
from chowa.eval.judge.client import JudgeClient
from chowa.files import atomic_write_text, check_writable, read_jsonl
from chowa.formats import NL, render_prompt
from chowa.generate import generate_replies, load_chat_model
from chowa.tables import markdown_table

NEED_REF_CATS = ("math", "reasoning", "coding")
DEFAULT_TEMPERATURE = {"writing": 0.7, "roleplay": 0.7, "knowledge": 0.001, "math": 0.001, "coding": 0.001,
                       "common-sense": 0.3, "counterfactual": 0.7, "fermi": 0.3, "generic": 0.1}
JUDGE_SETTINGS = {"temperature": 0, "max_tokens": 2048}
# the fields the reference fills in each judge prompt: (pair, pair-math), (single, single-math)
_FIELDS = {False: ({"question", "answer_a", "answer_b"}, {"question", "answer_a", "answer_b", "ref_answer_1"}),
           True: ({"question", "answer"}, {"question", "answer", "ref_answer_1"})}
_ONE_SCORE = (re.compile(r"\[\[(\d+\.?\d*)]]"), re.compile(r"\[\[rating:(\d+)]]"), re.compile(r"\[\[rating: (\d+)]]"))


@dataclass
class Bench:
    """A benchmark folder in FastChat's layout."""

    root: Path

    def questions(self) -> list[dict]:
        path = self.root / "question.jsonl"
        records = read_jsonl(path, "benchmark")
        if not records:
            raise ChowaError(f"{path}: holds no questions")
        for number, record in enumerate(records, start=1):
            if not {"question_id", "category", "turns"} <= set(record) or not record["turns"] or not isinstance(
                    record["question_id"], int) or not isinstance(record["turns"][0], str):
                raise ChowaError(f"{path}:{number}: needs an integer question_id, a category and turns (strings)")
        return records

    def judge_prompts(self) -> dict[str, dict]:
        path = self.root / "judge_prompts.jsonl"
        records = read_jsonl(path, "benchmark")
        for number, record in enumerate(records, start=1):
            if not {"name", "system_prompt", "prompt_template"} <= set(record):
                raise ChowaError(f"{path}:{number}: a judge prompt needs name, system_prompt and prompt_template")
        return {record["name"]: record for record in records}

    def answers(self, folder: Path, what: str) -> dict[int, str]:
        """question_id -> first turn of the first choice, from a `results.jsonl` in the answer schema."""
        answers = {}
        path = folder / "results.jsonl"
        for number, record in enumerate(read_jsonl(path, what), start=1):
            try:
                answers[int(record["question_id"])] = record["choices"][0]["turns"][0]
            except (KeyError, IndexError, TypeError, ValueError):
                raise ChowaError(f"{path}:{number}: not an answer record (question_id, choices[0].turns)") from None
        return answers

    def model_answers(self, model_id: str) -> dict[int, str]:
        return self.answers(self.root / "model_answer" / model_id, f"answers of {model_id}")


# --- answers ---------------------------------------------------------------------------------------------------


def write_answers(bench: Bench, model_id: str, folder: str, sampling: Sampling, batch_size: int) -> Path:
    """Answer every question's first turn with the model in `folder` (its chat format; per-category temperatures
    unless `sampling` sets one) and write `model_answer/<model_id>/results.jsonl` and `config.json`."""
    questions = bench.questions()
    chat = load_chat_model(folder)
    replies: dict[int, str] = {}
    by_category: dict[str, list[dict]] = defaultdict(list)
    for question in questions:
        by_category[question["category"]].append(question)
    for category, group in by_category.items():
        temperature = sampling.temperature
        if temperature is None and not sampling.greedy:
            if category not in DEFAULT_TEMPERATURE:
                raise ChowaError(f"question {group[0]['question_id']}: category {category!r} has no default "
                                 f"temperature ({', '.join(DEFAULT_TEMPERATURE)}); give --temperature")
            temperature = DEFAULT_TEMPERATURE[category]
        conversations = [[{"role": "user", "content": q["turns"][0]}] for q in group]
        texts = generate_replies(chat, conversations, dataclasses.replace(sampling, temperature=temperature),
                                 batch_size, names=[f"question {q['question_id']}" for q in group])
        replies.update(zip((int(q["question_id"]) for q in group), texts, strict=True))
    out = bench.root / "model_answer" / model_id
    records = [{"question_id": int(q["question_id"]), "answer_id": uuid.uuid4().hex[:22], "model_id": model_id,
                "choices": [{"index": 0, "turns": [replies[int(q["question_id"])]]}], "tstamp": time.time()}
               for q in questions]
    atomic_write_text(out / "results.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    config = {"model_id": model_id, "model_name_or_path": str(folder), "chat_format": chat.format.name,
              "prompt_template": render_prompt([{"role": "user", "content": "{instruction}"}], chat.format),
              "generation_config": _generation_config(sampling, chat.format),
              "special_token_map": {NL: "\n"} if chat.format.newline == NL else {}}
    atomic_write_text(out / "config.json", json.dumps(config, ensure_ascii=False, indent=2) + "\n")
    return out / "results.jsonl"


def _generation_config(sampling: Sampling, fmt) -> dict:
    """The settings the answers were generated with, in the reference's schema: no temperature when each category
    had its own (the reference then takes its per-category table), no chowa-only keys."""
    options = sampling.resolve(fmt)
    options.pop("stop_strings", None)
    if sampling.temperature is None:
        options.pop("temperature", None)
    return options


# --- judging ---------------------------------------------------------------------------------------------------


@dataclass
class Match:
    """One judged question: single (model_1 only) or pairwise."""

    question: dict
    prompt: dict
    model_1: str
    answer_1: str
    model_2: str | None = None
    answer_2: str | None = None
    reference: str | None = None

    def messages(self, swapped: bool = False) -> list[dict]:
        kwargs = {"question": self.question["turns"][0]}
        if self.model_2 is None:
            kwargs["answer"] = self.answer_1
        else:
            first, second = (self.answer_2, self.answer_1) if swapped else (self.answer_1, self.answer_2)
            kwargs |= {"answer_a": first, "answer_b": second}
        if self.reference is not None:
            kwargs["ref_answer_1"] = self.reference
        return judge_messages(self.prompt, **kwargs)

    def calls(self) -> list[list[dict]]:
        """The messages of this match's judge calls, in the reference's order: one, or both orders for a pair."""
        return [self.messages()] if self.model_2 is None else [self.messages(), self.messages(swapped=True)]


def judge_messages(prompt: dict, **fields: str) -> list[dict]:
    """The reference's judge call: the judge prompt's system message, then its template filled with `fields`."""
    return [{"role": "system", "content": prompt["system_prompt"]},
            {"role": "user", "content": prompt["prompt_template"].format(**fields)}]


# chowa's own pairwise prompt (written for chowa), for `compare --judge llm:...` without a judge_prompts file
CHOWA_PAIR_PROMPT = {
    "name": "chowa-pair",
    "system_prompt": "あなたは公平な審査員です。ユーザーの質問に対する2つのAIアシスタントの回答を読み、質問によりよく"
                     "答えている方を選んでください。正確さ、有用性、質問への関連を重視し、回答の順序や長さ、"
                     "アシスタントの名前に判断を左右されないでください。短く理由を述べた後、最後の行に、アシスタントA"
                     "が優れていれば[[A]]、アシスタントBが優れていれば[[B]]、同等なら[[C]]とだけ書いてください。",
    "prompt_template": "[ユーザーの質問]\n{question}\n\n[アシスタントAの回答]\n{answer_a}\n\n"
                       "[アシスタントBの回答]\n{answer_b}",
}


def pair_prompt(judge_prompts: Path | None) -> dict:
    """The "pair" entry of a FastChat judge_prompts.jsonl, or chowa's own pairwise prompt."""
    if judge_prompts is None:
        return CHOWA_PAIR_PROMPT
    prompts = {p.get("name"): p for p in read_jsonl(judge_prompts, "--judge-prompts")}
    if "pair" not in prompts or not {"system_prompt", "prompt_template"} <= set(prompts["pair"]):
        raise ChowaError(f"{judge_prompts}: needs a judge prompt named 'pair' with system_prompt and prompt_template")
    return prompts["pair"]


def winner(judgment: str, model_a: str, model_b: str) -> str:
    """The reference's verdict: [[A]], else [[B]], else [[C]] (a tie), else "error", by substring in that order."""
    if "[[A]]" in judgment:
        return model_a
    if "[[B]]" in judgment:
        return model_b
    if "[[C]]" in judgment:
        return "tie"
    return "error"


def score(judgment: str) -> float:
    """The reference's single score: the first `[[n]]`, else `[[rating:n]]`, else `[[rating: n]]`; else −1."""
    for pattern in _ONE_SCORE:
        if match := pattern.search(judgment):
            text = match.group(1)
            return float(text) if "." in text else int(text)
    return -1


def matches(bench: Bench, mode: str, models: list[str], baseline: str | None, reference_name: str) -> dict:
    """Match groups by the reference's ids (`pairwise:<m1>_<m2>`, `single:<model>`), in its order."""
    questions = bench.questions()
    prompts = bench.judge_prompts()
    kinds = ("single", "single-math") if mode == "single" else ("pair", "pair-math")
    for name, fields in zip(kinds, _FIELDS[mode == "single"], strict=True):
        if name not in prompts:
            raise ChowaError(f"{bench.root / 'judge_prompts.jsonl'}: has no judge prompt named {name!r}")
        unknown = {f for _, f, _, _ in string.Formatter().parse(prompts[name]["prompt_template"]) if f} - fields
        if unknown:
            raise ChowaError(f"{bench.root / 'judge_prompts.jsonl'}: prompt {name!r} asks for {sorted(unknown)}, "
                             f"which the protocol does not fill ({', '.join(sorted(fields))})")
    references = _references(bench, questions, reference_name)
    if mode == "pairwise-baseline":
        if not baseline:
            raise ChowaError("eval judge: --mode pairwise-baseline needs --baseline ID")
        models = list(dict.fromkeys([*models, baseline]))
    if mode != "single" and len(set(models)) < 2:
        raise ChowaError(f"eval judge: --mode {mode} needs at least two models, got {', '.join(models)}")
    answers = {model: bench.model_answers(model) for model in sorted(models)}
    groups: dict[str, list[Match]] = {}
    pairs = [(m, None) for m in answers] if mode == "single" else itertools.combinations(answers, 2)
    for model_1, model_2 in pairs:
        if mode == "pairwise-baseline" and baseline not in (model_1, model_2):
            continue
        group = []
        for question in questions:
            qid = int(question["question_id"])
            needs_ref = question["category"] in NEED_REF_CATS
            prompt = prompts[kinds[1] if needs_ref else kinds[0]]
            found = [_answer(answers, model, qid) for model in (model_1, model_2) if model]
            group.append(Match(question, prompt, model_1, found[0], model_2, found[1] if model_2 else None,
                               references[qid] if needs_ref else None))
        groups[f"single:{model_1}" if mode == "single" else f"pairwise:{model_1}_{model_2}"] = group
    return groups


def _answer(answers: dict[str, dict[int, str]], model: str, qid: int) -> str:
    if qid not in answers[model]:
        raise ChowaError(f"model_answer/{model}/results.jsonl has no answer to question {qid}")
    return answers[model][qid]


def _references(bench: Bench, questions: list[dict], name: str) -> dict[int, str]:
    needed = [int(q["question_id"]) for q in questions if q["category"] in NEED_REF_CATS]
    if not needed:
        return {}
    folder = bench.root / "reference_answer" / name
    references = bench.answers(folder, f"reference answers ({name})")
    for qid in needed:
        if qid not in references:
            raise ChowaError(f"{folder / 'results.jsonl'}: no reference answer to question {qid}, which its "
                             "category needs (math, reasoning, coding)")
    return references


def judge(groups: dict[str, list[Match]], client: JudgeClient, mode: str,
          max_tokens: int = JUDGE_SETTINGS["max_tokens"]) -> dict[str, list[dict]]:
    """Every group's judgment records in the reference's format (two calls per pairwise question)."""
    settings = JUDGE_SETTINGS | {"max_tokens": max_tokens}
    calls = [{"messages": messages, **settings} for group in groups.values() for m in group for messages in m.calls()]
    replies = iter(client.ask(calls, desc=f"judge {mode}"))
    records = {}
    for gid, group in groups.items():
        records[gid] = [_record(m, client.model, next(replies), None if mode == "single" else next(replies))
                        for m in group]
    return records


def _record(match: Match, judge_model: str, first: str, second: str | None) -> dict:
    common = {"question_id": match.question["question_id"], "question": match.question["turns"][0]}
    tail = {"judge_model": judge_model, "judge_prompt": match.prompt["name"], "tstamp": time.time()}
    if second is None:
        return {"model": match.model_1, **common, "answer": match.answer_1, "judgment": first,
                "score": score(first), **tail}
    return {"model_1": match.model_1, "model_2": match.model_2, **common, "answer_1": match.answer_1,
            "answer_2": match.answer_2, "g1_judgment": first, "g2_judgment": second,
            "g1_winner": winner(first, "model_1", "model_2"), "g2_winner": winner(second, "model_2", "model_1"),
            **tail}


# --- the table -------------------------------------------------------------------------------------------------


def win_rates(records: list[dict]) -> dict[str, dict[str, float]]:
    """The reference's arithmetic over one pair's records: wins only where both orders agree."""
    wins_1 = wins_2 = ties = 0
    for record in records:
        g1, g2 = record["g1_winner"], record["g2_winner"]
        if "tie" in (g1, g2) or g1 != g2:
            ties += 1
        elif g1 == "model_1":
            wins_1 += 1
        else:
            wins_2 += 1
    n = len(records)
    return {"model_1": {"win_rate": wins_1 / n, "adjusted_win_rate": (wins_1 + 0.5 * ties) / n},
            "model_2": {"win_rate": wins_2 / n, "adjusted_win_rate": (wins_2 + 0.5 * ties) / n}}


def pairwise_table(groups: dict[str, list[dict]], baseline: str | None) -> list[dict]:
    """Rows (model_1, model_2, win_rate, lose_rate, adjusted_win_rate, ×100), the evaluated model first in
    baseline mode, sorted by adjusted win rate (highest first)."""
    rows = []
    for records in groups.values():
        rates, first = win_rates(records), records[0]
        side, other = ("model_2", "model_1") if baseline and baseline == first["model_1"] else ("model_1", "model_2")
        rows.append({"model_1": first[side], "model_2": first[other], "win_rate": 100 * rates[side]["win_rate"],
                     "lose_rate": 100 * rates[other]["win_rate"],
                     "adjusted_win_rate": 100 * rates[side]["adjusted_win_rate"]})
    return sorted(rows, key=lambda row: -row["adjusted_win_rate"])


def single_table(groups: dict[str, list[dict]]) -> list[dict]:
    """Rows (model, score, unparsed): the mean score over every judgment (−1 for an unparsed one, as the
    reference averages it), highest first."""
    rows = [{"model": records[0]["model"], "score": sum(r["score"] for r in records) / len(records),
             "unparsed": sum(r["score"] == -1 for r in records)} for records in groups.values()]
    return sorted(rows, key=lambda row: -row["score"])


def table_markdown(rows: list[dict]) -> str:
    headers = list(rows[0]) if rows else []
    return markdown_table(headers, [[f"{v:.1f}" if isinstance(v, float) else v for v in row.values()]
                                    for row in rows])


# --- the commands ----------------------------------------------------------------------------------------------


def answers_main(cfg: EvalAnswersConfig) -> None:
    """`chowa eval answers`: each model's answers in the benchmark's layout."""
    bench = Bench(Path(cfg.bench))
    bench.questions()  # a wrong --bench is named before any model loads
    for model_id, folder in cfg.model_folders().items():
        print(f"wrote {write_answers(bench, model_id, folder, cfg.sampling(), cfg.batch_size)}", file=sys.stderr)


def judge_main(cfg: EvalJudgeConfig) -> list[dict]:
    """`chowa eval judge`: judge, write the judgments in the reference's files, print the reference's table. As
    the reference, a group whose judgment file exists is read, not judged again, unless `--overwrite`."""
    bench = Bench(Path(cfg.bench))
    models = [m for m in cfg.models.split(",") if m]
    if not models and (bench.root / "model_answer").is_dir():  # as the reference: every answered model
        models = sorted(p.name for p in (bench.root / "model_answer").iterdir() if p.is_dir())
    if not models:
        raise ChowaError(f"eval judge: no models to judge (--models, or folders in {bench.root / 'model_answer'})")
    groups = matches(bench, cfg.mode, models, cfg.baseline or None, cfg.reference_answers)
    kind = "single" if cfg.mode == "single" else "pairwise"
    root = Path(cfg.out) if cfg.out else bench.root / "model_judgment"
    out = root / kind / cfg.judge_model
    check_writable(out, "judgments (--out)", folder=True)
    done = {gid: read_jsonl(out / f"{gid}.jsonl", "judgments") for gid in groups
            if (out / f"{gid}.jsonl").is_file() and not cfg.overwrite}
    client = cfg.client(root / "judge_cache.jsonl")  # beside, not in, the folders the reference's tools read
    records = judge({gid: g for gid, g in groups.items() if gid not in done}, client, cfg.mode,
                    cfg.judge_max_tokens or JUDGE_SETTINGS["max_tokens"])
    for gid, group in records.items():
        atomic_write_text(out / f"{gid}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in group))
    records = {gid: done[gid] if gid in done else records[gid] for gid in groups}
    rows = single_table(records) if kind == "single" else pairwise_table(records, cfg.baseline or None)
    kept = f"{len(done)} group(s) read from existing files (--overwrite judges them again); " if done else ""
    print(f"judge {cfg.judge_model}: {kept}{client.usage_line()}; judgments in {out}", file=sys.stderr)
    print(table_markdown(rows))
    return rows
