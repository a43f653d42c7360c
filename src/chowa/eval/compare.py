"""Side-by-side comparison of two chat models: A's wins, ties and losses against B, as the rinna card's "PPO vs SFT".

Both models answer every prompt of a JSONL file (`chowa.generate`: each in its own chat format, with the same
sampling options), a judge decides each pair, and the table counts the verdicts from A's side.

Judges (`--judge`):
    reward:DIR            a reward-model folder (`chowa.reward.score.load_reward_model`) scores each reply, rendered
                          in the reward model's chat format; the higher score wins.
    rule:module:function  pointwise, the contract of PPO's rule rewards:
                          `function(samples: list[str], prompts: list[str], *, records: list[dict]) -> list[float]`,
                          called once per model: `samples` are its replies, `prompts` the prompts rendered in its
                          chat format, `records` the prompt records; the higher score wins. (PPO also passes
                          `response_ids` and `tokenizer`; here the two models may not share a tokenizer, so not.)
    pair:module:function  pairwise: `function(prompt: str, first_reply: str, second_reply: str, *, record: dict)
                          -> "first" | "second" | "tie"`, where `prompt` is the user's text (format-free).
    llm:URL#MODEL         an LLM judge on any OpenAI-compatible endpoint, pairwise, with FastChat's "pair" prompt
                          from `--judge-prompts judge_prompts.jsonl` (e.g. ja-vicuna-qa's) or chowa's own; a
                          verdict without [[A]], [[B]] or [[C]] is an "error" and makes the pair a tie. Answers are
                          cached in OUT/judge_cache.jsonl.
    human                 a blind sheet for people to fill in; `tally` turns it into the table.

Presentation order: judges have position bias (the bloomz-rlhf card warns of it), so a pairwise judge is asked
twice, A's reply first and then B's first; when the two verdicts disagree the pair is a tie. A pointwise judge
scores each reply on its own, so its verdict is order-invariant by construction: both order columns are written
for a uniform file and always agree. Scores within `tolerance` of each other are a tie.

Human judging writes `sheet.csv` (prompt_id, prompt, reply_1, reply_2, verdict; UTF-8 with a BOM so spreadsheet
apps read Japanese). Which of reply_1 / reply_2 is A is shuffled per prompt with `seed` and kept in
`.sheet_key.json` beside the sheet. Fill `verdict` with 1, 2 or tie; `tally` reads the sheet and the key. Each
prompt is shown once, in a random order, rather than in both orders.

Outputs in the output folder: `compare.csv` (prompt_id (1-based position in the prompt file), prompt, reply_a,
reply_b, score_a, score_b, verdict_ab (A shown first), verdict_ba, final; verdicts are A, B or tie),
`summary.json` and `table.md` (`chowa.tables.win_tie_loss_table`); for `human`, `tally` writes them beside the key.

Run as:
    chowa compare --a runs/demo/ppo --b runs/demo/sft --prompts prompts.jsonl --judge reward:runs/demo/reward \
        --out runs/demo/compare
    chowa compare --a runs/demo/ppo --b runs/demo/sft --prompts prompts.jsonl --judge human --out runs/human
    chowa compare tally runs/human/sheet.csv
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from chowa.config import load_callable, save_config
from chowa.config.eval import CompareConfig, CompareTallyConfig
from chowa.config.generate import Sampling
from chowa.data.prompts import PromptRecord, read_prompts
from chowa.data.records import ReadOptions
from chowa.errors import ChowaError
from chowa.files import atomic_write_text, check_writable
from chowa.formats import ChatFormat, Message, render_prompt
from chowa.generate import generate_replies, load_chat_model
from chowa.tables import wilson_interval, win_tie_loss_table

KEY_FILE = ".sheet_key.json"
SHEET_COLUMNS = ["prompt_id", "prompt", "reply_1", "reply_2", "verdict"]
COMPARE_COLUMNS = ["prompt_id", "prompt", "reply_a", "reply_b", "score_a", "score_b", "verdict_ab", "verdict_ba",
                   "final"]


@dataclass
class Side:
    """One compared model: its folder as given, its chat format and its replies."""

    name: str
    format: ChatFormat
    eos_token: str
    replies: list[str]


def compare(a_dir: str | os.PathLike, b_dir: str | os.PathLike, prompts_file: str | os.PathLike, judge: str,
            out_dir: str | os.PathLike, sampling: Sampling | None = None, batch_size: int = 8, seed: int = 0,
            tolerance: float = 1e-6, options: ReadOptions | None = None, judge_prompts: str = "",
            judge_key_env: str = "OPENAI_API_KEY") -> dict:
    """Generate both models' replies, judge them and write the outputs; returns the summary (for `human`: where
    the sheet is)."""
    items = read_prompts([str(prompts_file)], options)
    if not items:
        raise ChowaError(f"{prompts_file}: holds no prompts")
    kind, target = _parse_judge(judge)  # before generating, so a typo costs no generation time
    a, b = (_answer(folder, items, sampling or Sampling(), batch_size) for folder in (a_dir, b_dir))
    out = Path(out_dir)
    if kind == "human":
        return write_sheet(out, items, a, b, seed)
    if kind == "pair":
        rows = _pairwise_rows(target, items, a, b)
    elif kind == "llm":
        rows = _llm_rows(target, items, a, b, out, judge_prompts, judge_key_env)
    else:
        scorer = _reward_scorer(target, batch_size) if kind == "reward" else _rule_scorer(judge, target)
        rows = _pointwise_rows(scorer(items, a), scorer(items, b), tolerance)
    rows = [{"prompt_id": i, "prompt": prompt_text(item.messages), "reply_a": ra, "reply_b": rb} | row
            for i, (item, ra, rb, row) in enumerate(zip(items, a.replies, b.replies, rows, strict=True), start=1)]
    return _write_results(out, rows, a.name, b.name, judge)


def _parse_judge(judge: str) -> tuple[str, object]:
    """(kind, target): the reward folder, or the judge function, checked before any generation."""
    kind, _, target = judge.partition(":")
    if judge == "human":
        return "human", None
    if kind == "reward" and target:
        if not Path(target).is_dir():
            raise ChowaError(f"--judge {judge}: {target} is not a folder")
        return kind, target
    if kind in ("rule", "pair") and target:
        return kind, load_callable(target, f"--judge {kind}:")
    if kind == "llm" and "#" in target and all(target.rpartition("#")[::2]):
        url, _, model = target.rpartition("#")
        return kind, (url, model)
    raise ChowaError(f"--judge {judge!r}: expected reward:DIR, rule:module:function, pair:module:function, "
                     "llm:URL#MODEL or human")


def _answer(folder: str | os.PathLike, items: list[PromptRecord], sampling: Sampling,
            batch_size: int) -> Side:
    chat = load_chat_model(folder)
    with tqdm(total=len(items), desc=f"generate {folder}", unit="prompt", leave=False) as bar:
        replies = generate_replies(chat, [item.messages for item in items], sampling, batch_size, progress=bar.update,
                                   names=[item.source for item in items])
    return Side(str(folder), chat.format, chat.tokenizer.eos_token or "", replies)


def prompt_text(messages: list[Message]) -> str:
    """What a reader sees as the prompt: the user's text, or `role: content` lines for a longer conversation."""
    def text(m: Message) -> str:
        return m["content"] + (f"\n\n{m['input']}" if m.get("input") else "")

    if len(messages) == 1:
        return text(messages[0])
    return "\n".join(f"{m['role']}: {text(m)}" for m in messages)


# --- judges ----------------------------------------------------------------------------------------------------

Scorer = Callable[[list[PromptRecord], Side], list[float]]


def _reward_scorer(folder: str, batch_size: int) -> Scorer:
    from chowa.reward.score import load_reward_model

    reward_model = load_reward_model(folder)

    def score(items, side: Side) -> list[float]:
        conversations = [[*item.messages, {"role": "assistant", "content": r}] for item, r in zip(items, side.replies)]
        return reward_model.score_conversations(conversations, batch_size)

    return score


def _rule_scorer(judge: str, function: Callable) -> Scorer:
    def score(items, side: Side) -> list[float]:
        prompts = [render_prompt(item.messages, side.format, side.eos_token) for item in items]
        scores = function(side.replies, prompts, records=[item.record for item in items])
        if not hasattr(scores, "__len__") or len(scores) != len(side.replies):
            raise ChowaError(f"--judge {judge}: must return one float per reply ({len(side.replies)})")
        return [float(s) for s in scores]

    return score


def _pointwise_rows(scores_a: list[float], scores_b: list[float], tolerance: float) -> list[dict]:
    rows = []
    for score_a, score_b in zip(scores_a, scores_b, strict=True):
        verdict = "tie" if abs(score_a - score_b) <= tolerance else ("A" if score_a > score_b else "B")
        rows.append({"score_a": round(score_a, 6), "score_b": round(score_b, 6), "verdict_ab": verdict,
                     "verdict_ba": verdict, "final": verdict})
    return rows


def _pairwise_rows(function: Callable, items: list[PromptRecord], a: Side, b: Side) -> list[dict]:
    rows = []
    for i, item in enumerate(items):
        prompt = prompt_text(item.messages)
        ab = _pair_verdict(function, prompt, a.replies[i], b.replies[i], item.record, ("A", "B"), i + 1)
        ba = _pair_verdict(function, prompt, b.replies[i], a.replies[i], item.record, ("B", "A"), i + 1)
        rows.append({"score_a": "", "score_b": "", "verdict_ab": ab, "verdict_ba": ba,
                     "final": ab if ab == ba else "tie"})
    return rows


def _pair_verdict(function: Callable, prompt: str, first: str, second: str, record: dict,
                  labels: tuple[str, str], prompt_id: int) -> str:
    verdict = function(prompt, first, second, record=record)
    if verdict not in ("first", "second", "tie"):
        raise ChowaError(f"pairwise judge {function.__module__}:{function.__name__}: prompt {prompt_id}: returned "
                         f"{verdict!r}, expected 'first', 'second' or 'tie'")
    return {"first": labels[0], "second": labels[1], "tie": "tie"}[verdict]


def _llm_rows(endpoint: tuple[str, str], items: list[PromptRecord], a: Side, b: Side, out: Path,
             prompts_file: str, key_env: str) -> list[dict]:
    """An LLM judge asked in both orders, concurrently, with FastChat's pairwise prompt ("pair" of a
    judge_prompts.jsonl) or chowa's own; its [[A]] / [[B]] / [[C]] read as FastChat reads them."""
    from chowa.eval.judge.client import JudgeClient
    from chowa.eval.judge.mtbench import JUDGE_SETTINGS, judge_messages, pair_prompt, winner

    prompt = pair_prompt(Path(prompts_file) if prompts_file else None)
    client = JudgeClient(*endpoint, key_env=key_env, cache=out / "judge_cache.jsonl")

    def call(question: str, first: str, second: str) -> dict:
        return {"messages": judge_messages(prompt, question=question, answer_a=first, answer_b=second),
                **JUDGE_SETTINGS}

    calls = []
    for i, item in enumerate(items):
        question = prompt_text(item.messages)
        calls += [call(question, a.replies[i], b.replies[i]), call(question, b.replies[i], a.replies[i])]
    replies = client.ask(calls, desc="judge A vs B")
    unparsed = sum(winner(reply, "A", "B") == "error" for reply in replies)
    print(f"judge: {client.usage_line()}; {unparsed} of {len(replies)} judgments had no [[A]], [[B]] or [[C]] (each "
          "makes its pair a tie)", file=sys.stderr)
    rows = []
    for i in range(len(items)):
        ab, ba = winner(replies[2 * i], "A", "B"), winner(replies[2 * i + 1], "B", "A")
        final = ab if ab == ba and ab in ("A", "B") else "tie"
        rows.append({"score_a": "", "score_b": "", "verdict_ab": ab, "verdict_ba": ba, "final": final})
    return rows


# --- outputs ---------------------------------------------------------------------------------------------------

def summarize(finals: list[str], a_name: str, b_name: str, judge: str, disagreements: int = 0) -> dict:
    """Counts and percentages of A's wins, ties and losses."""
    counts = {"win": finals.count("A"), "tie": finals.count("tie"), "loss": finals.count("B")}
    total = max(len(finals), 1)
    return {"a": a_name, "b": b_name, "judge": judge, "prompts": len(finals), **counts,
            "percent": {k: round(100 * v / total, 1) for k, v in counts.items()},
            "interval": {k: wilson_interval(v, len(finals)) for k, v in counts.items()},
            "order_disagreements": disagreements}


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_results(out: Path, rows: list[dict], a_name: str, b_name: str, judge: str) -> dict:
    disagreements = sum(1 for r in rows if r["verdict_ab"] and r["verdict_ba"] and r["verdict_ab"] != r["verdict_ba"])
    summary = summarize([r["final"] for r in rows], a_name, b_name, judge, disagreements)
    atomic_write_text(out / "compare.csv", _csv_text(COMPARE_COLUMNS, rows))
    atomic_write_text(out / "summary.json", json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    return summary


# --- human judging ---------------------------------------------------------------------------------------------

def write_sheet(out: Path, items: list[PromptRecord], a: Side, b: Side, seed: int) -> dict:
    """`sheet.csv` with A and B shuffled per prompt, and the key saying which reply number is A."""
    rng = random.Random(seed)
    rows, a_is = [], {}
    for i, (item, reply_a, reply_b) in enumerate(zip(items, a.replies, b.replies, strict=True), start=1):
        a_first = rng.random() < 0.5
        first, second = (reply_a, reply_b) if a_first else (reply_b, reply_a)
        rows.append({"prompt_id": i, "prompt": prompt_text(item.messages), "reply_1": first, "reply_2": second,
                     "verdict": ""})
        a_is[str(i)] = "1" if a_first else "2"
    sheet = out / "sheet.csv"
    atomic_write_text(sheet, "\ufeff" + _csv_text(SHEET_COLUMNS, rows))
    key = {"a": a.name, "b": b.name, "seed": seed, "a_is": a_is}
    atomic_write_text(out / KEY_FILE, json.dumps(key, ensure_ascii=False, indent=2) + "\n")
    return {"sheet": str(sheet), "key": str(out / KEY_FILE), "prompts": len(rows)}


def tally(sheet_path: str | os.PathLike, key_path: str | os.PathLike | None = None) -> dict:
    """The table of a filled sheet; also writes compare.csv and summary.json beside the key.

    Rows are numbered as a spreadsheet shows them (the header is row 1); every blank or invalid verdict is named.
    """
    sheet = Path(sheet_path)
    key_file = Path(key_path) if key_path else sheet.parent / KEY_FILE
    key = _read_key(key_file)
    rows, problems, seen = [], [], set()
    for number, row in enumerate(_read_sheet(sheet), start=2):
        prompt_id = (row.get("prompt_id") or "").strip()
        verdict = (row.get("verdict") or "").strip().lower()
        if prompt_id in seen:
            problems.append(f"row {number}: prompt_id {prompt_id} appears twice")
            continue
        seen.add(prompt_id)
        if prompt_id not in key["a_is"]:
            problems.append(f"row {number}: prompt_id {prompt_id!r} is not in the key {key_file}")
        elif verdict not in ("1", "2", "tie"):
            problems.append(f"row {number} (prompt_id {prompt_id}): verdict {verdict!r} is not 1, 2 or tie")
        else:
            rows.append(_sheet_row(row, prompt_id, verdict, key["a_is"][prompt_id]))
    missing = [prompt_id for prompt_id in key["a_is"] if prompt_id not in seen]
    if missing:
        problems.append(f"prompt_id {', '.join(missing)} missing from the sheet")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ChowaError(f"{sheet}: {shown}")
    return _write_results(key_file.parent, rows, key["a"], key["b"], "human")


def _sheet_row(row: dict, prompt_id: str, verdict: str, a_is: str) -> dict:
    a_first = a_is == "1"
    final = "tie" if verdict == "tie" else ("A" if verdict == a_is else "B")
    reply_a, reply_b = (row["reply_1"], row["reply_2"]) if a_first else (row["reply_2"], row["reply_1"])
    return {"prompt_id": prompt_id, "prompt": row.get("prompt", ""), "reply_a": reply_a, "reply_b": reply_b,
            "score_a": "", "score_b": "", "verdict_ab": final if a_first else "",
            "verdict_ba": "" if a_first else final, "final": final}


def _read_key(path: Path) -> dict:
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChowaError(f"{path}: the sheet's key is missing (chowa compare --judge human writes it beside "
                         "sheet.csv; pass --key if you moved it)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ChowaError(f"{path}: cannot read the key ({exc})") from None
    if not isinstance(key, dict) or not isinstance(key.get("a_is"), dict) or "a" not in key or "b" not in key:
        raise ChowaError(f"{path}: not a compare key (expected fields a, b, a_is)")
    return key


def _read_sheet(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ChowaError(f"{path}: no such sheet") from None
    except UnicodeDecodeError:
        raise ChowaError(f"{path}: not UTF-8 text (save the sheet as CSV UTF-8)") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    absent = [c for c in ("prompt_id", "reply_1", "reply_2", "verdict") if c not in (reader.fieldnames or [])]
    if absent:
        raise ChowaError(f"{path}: row 1: missing column(s) {', '.join(absent)}")
    return list(reader)


def main(cfg: CompareConfig) -> dict:
    """`chowa compare` (and the pipeline's compare stage): print A's table and write it as table.md; for the human
    judge, write the sheet and say how to tally it."""
    check_writable(cfg.out, "--out", folder=True)
    summary = compare(cfg.a, cfg.b, cfg.prompts, cfg.judge, cfg.out, cfg.sampling(), cfg.batch_size, cfg.seed,
                      options=ReadOptions.of(cfg), judge_prompts=cfg.judge_prompts, judge_key_env=cfg.judge_key_env)
    save_config(cfg, cfg.out)
    if cfg.judge == "human":
        print(f"wrote {summary['sheet']}: fill its verdict column with 1, 2 or tie, then run: chowa compare tally "
              f"{summary['sheet']}")
        return summary
    table = win_tie_loss_table(summary)
    atomic_write_text(Path(cfg.out) / "table.md", table + "\n")
    print(table)
    print(f"wrote {cfg.out}/compare.csv, summary.json and table.md", file=sys.stderr)
    return summary


def tally_main(cfg: CompareTallyConfig) -> dict:
    """`chowa compare tally`: the table of a filled human sheet."""
    summary = tally(cfg.sheet, cfg.key or None)
    print(win_tie_loss_table(summary))
    return summary
