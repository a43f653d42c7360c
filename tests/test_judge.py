"""LLM-judged evaluation against a real HTTP judge: a scripted OpenAI-compatible endpoint started in the test (its
replies chosen per request so every verdict branch is hit) and a `chowa serve` of a tiny model for the plumbing.
Benchmark folders are invented by the test in the FastChat and BELLE layouts."""

from __future__ import annotations

import csv
import http.server
import json
import threading
from pathlib import Path

import pytest

from chowa.config import load_config
from chowa.config.judge import EvalAnswersConfig, EvalBelleConfig, EvalJudgeConfig
from chowa.errors import ChowaError
from chowa.eval.judge import belle, mtbench
from chowa.eval.judge.client import JudgeClient, JudgeError
from chowa.formats import save_format
from chowa.models.build import build_model
from chowa.tokenizer import load_tokenizer
from conftest import start_server

SYSTEM = {"pair": "Judge two answers.", "pair-math": "Judge two answers with the reference.",
          "single": "You rate.", "single-math": "You rate with the reference."}
TEMPLATES = {"pair": "Q: {question}\nA: {answer_a}\nB: {answer_b}",
             "pair-math": "Q: {question}\nREF: {ref_answer_1}\nA: {answer_a}\nB: {answer_b}",
             "single": "Q: {question}\nANSWER: {answer}", "single-math": "Q: {question}\nREF: {ref_answer_1}\n"
                                                                          "ANSWER: {answer}"}
QUESTIONS = [(1, "generic", "時間管理のコツは?"), (2, "writing", "短い詩を書いて。"), (3, "math", "3たす4は?"),
             (4, "coding", "Pythonで1から3を足すには?")]


class ScriptedJudge:
    """An OpenAI-compatible chat endpoint: the reply to a request is the script's entry for the first script key
    found in its user message (checked in the script's order); every request is recorded."""

    def __init__(self, script: list[tuple[str, str]], status: int = 200, fail_after: int | None = None):
        self.script, self.status, self.fail_after, self.requests = script, status, fail_after, []
        judge = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                judge.requests.append(body)
                failing = judge.fail_after is not None and len(judge.requests) > judge.fail_after
                status = 500 if failing else judge.status
                user = body["messages"][-1]["content"]
                reply = next((answer for key, answer in judge.script if key in user), "no verdict here")
                answer = {"choices": [{"message": {"role": "assistant", "content": reply}}],
                          "usage": {"prompt_tokens": 10, "completion_tokens": 2}} if status == 200 else \
                    {"error": {"message": f"scripted {status}"}}
                data = json.dumps(answer, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def scripted():
    judges = []

    def start(script, **kwargs) -> ScriptedJudge:
        judges.append(ScriptedJudge(script, **kwargs))
        return judges[-1]

    yield start
    for judge in judges:
        judge.close()


def _jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def _answers(bench: Path, model: str, texts: dict[int, str]) -> None:
    _jsonl(bench / "model_answer" / model / "results.jsonl",
           [{"question_id": q, "answer_id": f"{model}{q}", "model_id": model,
             "choices": [{"index": 0, "turns": [text]}], "tstamp": 0} for q, text in texts.items()])


@pytest.fixture
def bench(tmp_path) -> Path:
    root = tmp_path / "jp_bench"
    _jsonl(root / "question.jsonl", [{"question_id": q, "category": c, "turns": [t]} for q, c, t in QUESTIONS])
    _jsonl(root / "judge_prompts.jsonl", [
        {"name": name, "type": "single" if name.startswith("single") else "pairwise", "system_prompt": SYSTEM[name],
         "prompt_template": TEMPLATES[name], "description": "invented for the test", "category": "general",
         "output_format": "[[rating]]" if name.startswith("single") else "[[A]]"} for name in SYSTEM])
    _jsonl(root / "reference_answer" / "gpt-4" / "results.jsonl",
           [{"question_id": q, "model_id": "gpt-4", "choices": [{"index": 0, "turns": [f"ref{q}"]}]} for q in (3, 4)])
    for model in ("alpha", "beta", "gamma"):
        _answers(root, model, {q: f"<{model}{q}>" for q, _, _ in QUESTIONS})
    return root


def _judge_cfg(bench: Path, url: str, *extra: str) -> EvalJudgeConfig:
    return load_config(EvalJudgeConfig, overrides=[f"bench={bench}", f"judge_url={url}", "judge_model=gpt-4",
                                                   "judge_retries=0", *extra])


# Pairwise script, keyed by the answers shown as A and B ("A: <alpha1>\nB: <beta1>"):
#   alpha v beta: q1 alpha wins both orders; q2 orders disagree (tie); q3 tie ([[C]]); q4 no verdict in both (error,
#   error: the reference's arithmetic makes that a win for model_2)
#   beta v gamma: q1-q4 gamma wins both orders
PAIR_SCRIPT = [("A: <alpha1>\nB: <beta1>", "[[A]]"), ("A: <beta1>\nB: <alpha1>", "[[B]]"),
               ("A: <alpha2>\nB: <beta2>", "[[A]]"), ("A: <beta2>\nB: <alpha2>", "[[A]]"),
               ("A: <alpha3>", "[[C]]"), ("A: <beta3>\nB: <alpha3>", "[[C]]"),
               ("<alpha4>", "I cannot decide"),
               ("A: <gamma", "better: [[A]]"), ("B: <gamma", "[[B]] wins")]


def test_pairwise_baseline_sends_the_reference_messages_and_prints_its_table(bench, scripted, capsys):
    judge = scripted(PAIR_SCRIPT)
    rows = mtbench.judge_main(_judge_cfg(bench, judge.url, "mode=pairwise-baseline", "models=alpha,gamma",
                                         "baseline=beta"))
    assert len(judge.requests) == 2 * 4 * 2  # two pairs, four questions, both orders
    first = next(r for r in judge.requests if "<alpha1>\nB: <beta1>" in r["messages"][1]["content"])
    assert first["temperature"] == 0 and first["max_tokens"] == 2048 and first["model"] == "gpt-4"
    assert first["messages"] == [{"role": "system", "content": SYSTEM["pair"]},
                                 {"role": "user", "content": "Q: 時間管理のコツは?\nA: <alpha1>\nB: <beta1>"}]
    math = [r for r in judge.requests if "3たす4は?" in r["messages"][1]["content"]][0]
    assert math["messages"][0]["content"] == SYSTEM["pair-math"] and "REF: ref3" in math["messages"][1]["content"]
    folder = bench / "model_judgment" / "pairwise" / "gpt-4"
    records = [json.loads(line) for line in (folder / "pairwise:alpha_beta.jsonl").read_text().splitlines()]
    assert [(r["g1_winner"], r["g2_winner"]) for r in records] == [
        ("model_1", "model_1"), ("model_1", "model_2"), ("tie", "tie"), ("error", "error")]
    assert records[2]["judge_prompt"] == "pair-math" and records[0]["judge_prompt"] == "pair"
    assert (folder / "pairwise:beta_gamma.jsonl").is_file()  # the baseline is model_1 only when it sorts first
    # by hand: alpha v beta: 1 win (q1), ties q2 q3, q4 error/error counts for model_2 (beta):
    # win 25.0, lose 25.0, adjusted (1 + 0.5 * 2) / 4 = 50.0; gamma v beta: 4 wins = 100.0, 0.0, 100.0
    assert rows == [{"model_1": "gamma", "model_2": "beta", "win_rate": 100.0, "lose_rate": 0.0,
                     "adjusted_win_rate": 100.0},
                    {"model_1": "alpha", "model_2": "beta", "win_rate": 25.0, "lose_rate": 25.0,
                     "adjusted_win_rate": 50.0}]
    assert "| alpha | beta | 25.0 | 25.0 | 50.0 |" in capsys.readouterr().out
    again = scripted(PAIR_SCRIPT)
    mtbench.judge_main(_judge_cfg(bench, again.url, "mode=pairwise-baseline", "models=alpha,gamma", "baseline=beta"))
    assert again.requests == []  # everything came from the cache


def test_single_scores_parse_every_rating_form_and_average_as_the_reference(bench, scripted):
    judge = scripted([("<alpha1>", "good [[7]]"), ("<alpha2>", "[[rating: 4]]"), ("<alpha3>", "[[rating:5]] [[9]]"),
                      ("<alpha4>", "[[rating: 4.5]]")])
    rows = mtbench.judge_main(_judge_cfg(bench, judge.url, "mode=single", "models=alpha"))
    records = [json.loads(line) for line in
               (bench / "model_judgment/single/gpt-4/single:alpha.jsonl").read_text().splitlines()]
    assert [r["score"] for r in records] == [7, 4, 9, -1]  # [[9]] outranks [[rating:5]]; 4.5 after rating: is none
    assert rows == [{"model": "alpha", "score": (7 + 4 + 9 - 1) / 4, "unparsed": 1}]
    coding = [r for r in judge.requests if "<alpha4>" in r["messages"][1]["content"]][0]
    assert records[3]["judge_prompt"] == "single-math" and "REF: ref4" in coding["messages"][1]["content"]


def test_a_run_that_breaks_keeps_what_was_judged_and_resumes_asking_only_the_rest(bench, scripted, tmp_path):
    broken = scripted(PAIR_SCRIPT, fail_after=5)
    cfg = _judge_cfg(bench, broken.url, "mode=pairwise-all", "models=alpha,beta", "judge_concurrency=1")
    with pytest.raises(JudgeError, match="HTTP 500: scripted 500"):
        mtbench.judge_main(cfg)
    cache = bench / "model_judgment" / "judge_cache.jsonl"  # not among the files the reference's tools read
    assert len(cache.read_text().splitlines()) == 5 and len(broken.requests) < 8  # the rest was never sent
    with cache.open("a") as sink:
        sink.write('{"key": "cut sho')  # a crash while an answer was being written
    healthy = scripted(PAIR_SCRIPT)
    mtbench.judge_main(_judge_cfg(bench, healthy.url, "mode=pairwise-all", "models=alpha,beta"))
    assert len(healthy.requests) == 8 - 5 and len(cache.read_text().splitlines()) == 8
    JudgeClient(healthy.url, "gpt-4", cache=cache)  # the repaired cache reads back whole
    folder = bench / "model_judgment" / "pairwise" / "gpt-4"
    assert [p.name for p in folder.iterdir()] == ["pairwise:alpha_beta.jsonl"]
    again = scripted(PAIR_SCRIPT)
    mtbench.judge_main(_judge_cfg(bench, again.url, "mode=pairwise-all", "models=alpha,beta",
                                  f"judge_cache={tmp_path / 'fresh_cache.jsonl'}"))
    assert again.requests == []  # an existing judgment file is read, as the reference skips it


def test_bad_inputs_are_named(bench, scripted, tmp_path):
    (bench / "reference_answer" / "gpt-4" / "results.jsonl").write_text(
        json.dumps({"question_id": 3, "choices": [{"index": 0, "turns": ["ref3"]}]}) + "\n")
    with pytest.raises(ChowaError, match="no reference answer to question 4"):
        mtbench.judge_main(_judge_cfg(bench, "http://127.0.0.1:9", "mode=single", "models=alpha"))
    with pytest.raises(ChowaError, match="question.jsonl does not exist"):
        mtbench.judge_main(_judge_cfg(tmp_path, "http://127.0.0.1:9", "mode=single", "models=alpha"))
    refusing = scripted([], status=401)
    client = JudgeClient(refusing.url, "gpt-4", key_env="CHOWA_TEST_NO_KEY", retries=0, concurrency=1)
    with pytest.raises(JudgeError, match="HTTP 401.*CHOWA_TEST_NO_KEY"):
        client.ask([{"messages": [{"role": "user", "content": f"x{i}"}]} for i in range(20)])
    assert len(refusing.requests) < 20  # the first refusal stops the run; the other calls are never sent
    with pytest.raises(JudgeError, match="--judge-url 'api.openai.com'"):
        JudgeClient("api.openai.com", "gpt-4")
    with pytest.raises(JudgeError, match="after 1 attempts"):
        JudgeClient("http://127.0.0.1:9", "gpt-4", retries=0).ask([{"messages": [{"role": "user", "content": "x"}]}])


# --- BELLE -------------------------------------------------------------------------------------------------------

BELLE_PROMPTS = {"math": "MATHS.", "code": "CODE.", "open QA": "OPEN.", "closed\u00a0QA": "CLOSED.",
                 "generation": "GEN.", "rewrite": "REW."}
BELLE_SET = [("1+1?", "2", "math"), ("print 1?", "print(1)", "code"), ("空は?", "青い", "open qa"),
             ("文中の色は?", "赤", "closed\u00a0qa"), ("詩を", "", "generation"), ("言い換えて", "", "rewrite")]


@pytest.fixture
def belle_dir(tmp_path) -> Path:
    root = tmp_path / "BELLE"
    _jsonl(root / "eval" / "eval_set.json", [{"question": q, "std_answer": a, "class": c} for q, a, c in BELLE_SET])
    _jsonl(root / "eval" / "eval_prompt.json", [{"class": c, "prompt": p} for c, p in BELLE_PROMPTS.items()])
    return root


def test_belle_messages_scores_and_the_cards_table(belle_dir, scripted, tokenizer_dir, tmp_path, capsys):
    model = _chat_model(tmp_path / "model", tokenizer_dir, 0)
    judge = scripted([("1+1?", "得分：0.8分"), ("print 1?", "得分: 1.5"), ("空は?", "得分:0.5"), ("文中", "理由だけ"),
                      ("詩を", "得分： 0.25"), ("言い換えて", "得分:1")])
    out = tmp_path / "belle"
    summary = belle.main(load_config(EvalBelleConfig, overrides=[
        f"belle_dir={belle_dir}", f"model={model}", f"out={out}", f"judge_url={judge.url}", "judge_model=gpt-3.5",
        "repeats=2", "max_new_tokens=8", "greedy=true", "judge_retries=0"]))
    answers = [json.loads(line)["answer"] for line in (out / "answers.jsonl").read_text().splitlines()]
    users = [r["messages"][0]["content"] for r in judge.requests]
    assert len(judge.requests) == 6 * 2 and all(r["temperature"] == 0.0 and r["max_tokens"] == 3000
                                                for r in judge.requests)
    assert f"MATHS. 1+1? 标准回答:2  模型回答：' {answers[0]}'。请针对模型回答给出得分，顺便给出理由：" in users
    assert f"GEN. 詩を  模型回答： '{answers[4]}'。请针对模型回答给出得分，顺便给出理由：" in users
    assert any(u.startswith("CLOSED. 文中の色は? 标准回答:赤") for u in users)  # NBSP class found its prompt
    columns = summary["columns"]
    assert summary["math"] == 0.8 and summary["code"] == 1.0 and columns["others"] == pytest.approx(0.9)
    assert columns["open qa"] == 0.5 and columns["closed qa"] is None and summary["unparsed"]["closed qa"] == 2
    assert columns["generation"] == 0.25 and columns["rewrite"] == 1.0
    present = [0.9, 1.0, 0.25, 0.5]  # others, rewrite, generation, open qa
    assert summary["macro ave"] == pytest.approx(sum(present) / 4)
    assert summary["macro ave w/o others"] == pytest.approx(sum(present[1:]) / 3)
    assert "| 0.900 | 1.000 |" in capsys.readouterr().out
    (belle_dir / "eval" / "eval_prompt.json").write_text(json.dumps({"class": "math", "prompt": "M"}) + "\n")
    with pytest.raises(ChowaError, match="no judge prompt for the class 'code'"):
        belle.read_belle(belle_dir)


# --- answers, compare, and chowa serve as the judge ---------------------------------------------------------------


def test_answers_in_the_benchmarks_layout_then_judged_by_a_served_tiny_model(bench, tokenizer_dir, tmp_path,
                                                                             monkeypatch):
    model = _chat_model(tmp_path / "model", tokenizer_dir, 0)
    temperatures = []
    real = mtbench.generate_replies

    def spy(chat, conversations, sampling, *args, **kwargs):
        temperatures.append((conversations[0][0]["content"], sampling.temperature))
        return real(chat, conversations, sampling, *args, **kwargs)

    monkeypatch.setattr(mtbench, "generate_replies", spy)
    mtbench.answers_main(load_config(EvalAnswersConfig, overrides=[f"bench={bench}", "max_new_tokens=6"],
                                     flags={"model": [f"tiny={model}"]}))
    assert dict(temperatures) == {"時間管理のコツは?": 0.1, "短い詩を書いて。": 0.7, "3たす4は?": 0.001,
                                  "Pythonで1から3を足すには?": 0.001}
    records = [json.loads(line) for line in (bench / "model_answer/tiny/results.jsonl").read_text().splitlines()]
    assert [r["question_id"] for r in records] == [1, 2, 3, 4] and all(r["model_id"] == "tiny" for r in records)
    config = json.loads((bench / "model_answer/tiny/config.json").read_text())
    assert config["prompt_template"] == "ユーザー: {instruction}\nシステム: "
    # a judge's system message needs a format with a place for it, and its 2,048 reply tokens a longer context
    judge_model = _chat_model(tmp_path / "judge", tokenizer_dir, 1, "vicuna-v1.1", positions=4096)
    with start_server(["--model", f"judge={judge_model}"]) as server:
        rows = mtbench.judge_main(_judge_cfg(bench, server.url, "mode=single", "models=tiny", "judge_model=judge",
                                             "judge_retries=2"))
    assert len(rows) == 1 and rows[0]["model"] == "tiny"  # a tiny model's verdicts are noise; the plumbing works
    assert (bench / "model_judgment/single/judge/single:tiny.jsonl").is_file()


def test_compare_with_an_llm_judge_in_both_orders(scripted, tokenizer_dir, tmp_path):
    from chowa.eval.compare import compare

    prompts = tmp_path / "prompts.jsonl"
    _jsonl(prompts, [{"prompt": "猫"}, {"prompt": "犬"}])
    a, b = (_chat_model(tmp_path / name, tokenizer_dir, seed) for name, seed in (("a", 2), ("b", 3)))
    judge = scripted([("猫", "[[A]]"), ("犬", "no verdict")])  # 猫: always the one shown first; 犬: errors
    summary = compare(a, b, prompts, f"llm:{judge.url}#judge", tmp_path / "out")
    assert len(judge.requests) == 4 and summary["tie"] == 2 and summary["order_disagreements"] == 1
    assert judge.requests[0]["messages"][0]["content"] == mtbench.CHOWA_PAIR_PROMPT["system_prompt"]
    with (tmp_path / "out" / "compare.csv").open(encoding="utf-8", newline="") as sheet:
        rows = [(r["verdict_ab"], r["verdict_ba"], r["final"]) for r in csv.DictReader(sheet)]
    assert rows == [("A", "B", "tie"), ("error", "error", "tie")]


def _chat_model(folder: Path, tokenizer_dir: Path, seed: int, fmt: str = "rinna", positions: int = 512) -> Path:
    """A random tiny GPT-NeoX chat model folder (hidden 32, 2 layers)."""
    tokenizer = load_tokenizer(tokenizer_dir)
    build_model("tiny", tokenizer=tokenizer, seed=seed, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=positions).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    save_format(folder, fmt)
    return folder
