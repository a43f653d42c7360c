"""Check that chowa's judges send exactly the messages the reference code builds from the same files.

ja-vicuna-qa: the reference's own `llm_judge/gen_judgment.py` and `common.py` (imported from the user's clone, with
`openai`, `tiktoken`, `dotenv` and `upload_result` stubbed so nothing leaves the machine) build every match of the
clone's `data/jp_bench` in each mode, and the stub records each judge call's messages, temperature and max_tokens;
chowa's `chowa.eval.judge.mtbench` builds its calls from the same folder; the two lists must be equal, in order. The
stub also answers each call with a scripted verdict, so the verdicts and records of both are compared as well.

BELLE: the two template literals that assemble the judge message in BELLE's `ChatGPT_Score.html.temp` are cut from
the clone's file and evaluated in headless Chromium (the page's own JavaScript, not a re-reading of it) for every
record of `eval/eval_set.json` with a fixed model answer; chowa's `belle.judge_message` must give the same strings.

Run as:
    python tools/judge_reference_check.py --ja-vicuna path/to/ja-vicuna-qa-benchmark --belle path/to/BELLE
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the Chromium driver of the test suite

VERDICTS = ["[[A]]", "[[B]]", "[[C]]", "no verdict", "[[7]]", "[[rating: 4]]"]


def _stub_reference_imports(calls: list[dict]) -> None:
    def create(**params):
        calls.append({"messages": params["messages"], "temperature": params["temperature"],
                      "max_tokens": params["max_tokens"]})
        return {"choices": [{"message": {"content": VERDICTS[len(calls) % len(VERDICTS)]}}]}

    openai = types.ModuleType("openai")
    openai.api_type = None
    openai.ChatCompletion = types.SimpleNamespace(create=create)
    openai.error = types.SimpleNamespace(OpenAIError=Exception)
    dotenv = types.ModuleType("dotenv")
    dotenv.load_dotenv = lambda *args, **kwargs: None
    upload = types.ModuleType("upload_result")
    upload.upload_results = lambda *args, **kwargs: None
    sys.modules |= {"openai": openai, "tiktoken": types.ModuleType("tiktoken"), "dotenv": dotenv,
                    "upload_result": upload}


def check_ja_vicuna(clone: Path) -> int:
    """Compare every judge call of the three modes; the number of calls compared."""
    from chowa.eval.judge import mtbench

    calls: list[dict] = []
    _stub_reference_imports(calls)
    sys.path.insert(0, str(clone / "llm_judge"))
    common = importlib.import_module("common")
    gen = importlib.import_module("gen_judgment")
    bench_dir = clone / "data" / "jp_bench"
    questions = common.load_questions(bench_dir / "question.jsonl")
    # loaded as the reference's __main__ loads them (gen_judgment.py)
    answers = {m: common.load_model_answers(bench_dir / "model_answer" / m)
               for m in sorted(common.get_model_list(bench_dir / "model_answer"))}
    refs = {"gpt-4": common.load_model_answers(bench_dir / "reference_answer" / "gpt-4")}
    prompts = common.load_judge_prompts(bench_dir / "judge_prompts.jsonl")
    models, baseline = sorted(answers), "openai--text-davinci-003"
    compared = 0
    for mode in ("single", "pairwise-baseline", "pairwise-all"):
        calls.clear()
        names = ("single", "single-math") if mode == "single" else ("pair", "pair-math")
        judges = [common.Judge("gpt-4", prompts[name]) for name in names]
        if mode == "single":
            groups = gen.make_match_groups_single(questions, answers, refs, *judges)
        else:
            groups = gen.make_match_groups_pairwise(questions, answers, refs, *judges,
                                                    baseline_model=baseline if mode == "pairwise-baseline" else None)
        reference_records = [(gid, m.play()) for gid, group in groups.items() for m in group]
        mine = mtbench.matches(mtbench.Bench(bench_dir), mode, models, baseline, "gpt-4")
        _require(list(mine) == list(groups), f"{mode}: match groups {list(mine)[:3]} against {list(groups)[:3]}")
        chowa_calls = [{"messages": messages, **mtbench.JUDGE_SETTINGS} for group in mine.values() for m in group
                       for messages in m.calls()]
        _require(chowa_calls == calls, f"{mode}: the first differing call: " + next(
            (json.dumps([a, b], ensure_ascii=False)[:2000] for a, b in zip(chowa_calls, calls) if a != b),
            f"{len(chowa_calls)} calls against {len(calls)}"))
        replies = iter(VERDICTS[(i + 1) % len(VERDICTS)] for i in range(len(calls)))  # what the stub answered
        for (gid, record), (_, match) in zip(reference_records, ((g, m) for g, ms in mine.items() for m in ms)):
            first = next(replies)
            mine_record = mtbench._record(match, "gpt-4", first, None if mode == "single" else next(replies))
            keys = ("score",) if mode == "single" else ("g1_winner", "g2_winner")
            _require(all(mine_record[k] == record[k] for k in keys), f"{gid}: {record} against {mine_record}")
        compared += len(calls)
        print(f"ja-vicuna-qa {mode}: {len(calls)} judge calls identical, verdicts identical")
    return compared


def check_belle(clone: Path) -> int:
    """Evaluate BELLE's own template literals in Chromium and compare with chowa's messages."""
    from cdp import Browser
    from chowa.eval.judge.belle import class_key, judge_message, read_belle

    template = (clone / "eval" / "template_html" / "ChatGPT_Score.html.temp").read_text(encoding="utf-8")
    literals = re.findall(r"inputPrompt = (`[^`]*`);", template)
    _require(len(literals) == 2, "the template no longer has the two inputPrompt literals")
    records, prompts = read_belle(clone)
    answer = "モデルの回答 with 'quotes' and\nnewlines"
    with Browser() as browser:
        browser.navigate("about:blank")
        for index, record in enumerate(records):
            prompt = prompts[class_key(record["class"])]
            literal = literals[0] if record["class"] in ("generation", "brainstorming", "rewrite") else literals[1]
            bindings = {"prompt": prompt, "question": record, "userAnswer": answer}
            script = "(() => {" + "".join(f"const {k} = {json.dumps(v, ensure_ascii=False)};"
                                          for k, v in bindings.items()) + f"return {literal}; }})()"
            _require(browser.evaluate(script) == judge_message(prompt, record, answer),
                     f"record {index} ({record['class']})")
    print(f"BELLE: {len(records)} judge messages identical to the page's template literals")
    return len(records)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise SystemExit(f"MISMATCH: {message}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ja-vicuna", type=Path, help="a clone of ku-nlp/ja-vicuna-qa-benchmark")
    parser.add_argument("--belle", type=Path, help="a clone of LianjiaTech/BELLE")
    args = parser.parse_args()
    if args.ja_vicuna:
        check_ja_vicuna(args.ja_vicuna)
    if args.belle:
        check_belle(args.belle)


if __name__ == "__main__":
    main()
