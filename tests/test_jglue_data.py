"""JGLUE data loading from the published file layouts, on invented records; `write_jglue_root` is shared."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from chowa.errors import ChowaError
from chowa.eval.jglue.data import git_blob_id, load_task_data

_TOPICS = ["雨", "猫", "山", "海", "駅", "茶", "本", "雪", "空", "花", "鳥", "月"]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _jcqa_rows(n: int, offset: int) -> list[dict]:
    return [{"q_id": offset + i, "question": f"{_TOPICS[i % 12]}に関係するものは？{offset + i}",
             **{f"choice{k}": f"{_TOPICS[(i + k) % 12]}{k}" for k in range(5)}, "label": i % 5} for i in range(n)]


def _jnli_rows(n: int, tag: str) -> list[dict]:
    labels = ["entailment", "contradiction", "neutral"]
    return [{"sentence_pair_id": str(i), "yjcaptions_id": f"{i}-{i}", "sentence1": f"{_TOPICS[i % 12]}が見える。",
             "sentence2": f"{_TOPICS[(i + 1) % 12]}がある{tag}{i}。", "label": labels[i % 3]} for i in range(n)]


def _marc_rows(n: int, long_every: int = 0) -> list[dict]:
    rows = []
    for i in range(n):
        text = f"この{_TOPICS[i % 12]}はとても良い商品でした。" * (30 if long_every and i % long_every == 0 else 1)
        rows.append({"sentence": text + str(i), "label": "positive" if i % 2 else "negative", "review_id": f"R{i}"})
    return rows


def _squad(n_articles: int, offset: int) -> dict:
    data = []
    for a in range(n_articles):
        title = f"架空{_TOPICS[a % 12]}市"
        paragraphs = []
        for p in range(2):
            text = f"{title}は{_TOPICS[(a + p) % 12]}の町。人口は{a * 10 + p}人。"
            qas = [{"id": f"a{offset + a}p{p}q{q}", "question": f"{title}には何がある？{q}",
                    "answers": [{"text": _TOPICS[(a + p) % 12], "answer_start": 4},
                                {"text": f"{_TOPICS[(a + p) % 12]}の町", "answer_start": 4}],
                    "is_impossible": False} for q in range(2)]
            paragraphs.append({"context": f"{title} [SEP] {text}", "qas": qas})
        data.append({"title": title, "paragraphs": paragraphs})
    return {"data": data}


def _jaqket(n: int, offset: int) -> list[dict]:
    records = []
    for i in range(n):
        ctxs = [{"id": str(k), "title": f"題{i}-{k}", "text": f"{_TOPICS[(i + k) % 12]}についての文{k}。",
                 "score": "1.0", "has_answer": k == 1 + i % 3} for k in range(7)]
        if i % 4 == 3:  # only a passage beyond the first 5 answers: the loader drops this question
            for c in ctxs:
                c["has_answer"] = c["id"] == "6"
        records.append({"qid": f"QA{offset + i}", "question": f"{_TOPICS[i % 12]}の名前は？{i}",
                        "answers": [f"{_TOPICS[(i + 1) % 12]}{i}", "別解"], "ctxs": ctxs})
    return records


def _xlsum(path: Path, n: int, sentences: int) -> None:
    tag = path.stem
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "url", "title", "summary", "text"])
        for i in range(n):
            text = "".join(f"{_TOPICS[(i + s) % 12]}の記事、第{s}文。" for s in range(sentences)) + "\n改行も含む。"
            summary = f"{_TOPICS[i % 12]}の{tag}要約{i}。"
            writer.writerow([f"id{i}", f"https://example.invalid/{i}", f"見出し{i}", summary, text])


_EXEMPLARS = '''"""Prompts for mgsm."""
EXEMPLAR_NUMBER_ANSWERS = [11, 29, 39, 9, 33, 8, 8, 5]
MGSM_EXEMPLARS = {
    "en": {"1": {"q": "Question: ignored", "a": "Step-by-Step Answer: ignored"}},
    "ja": {
%s
    },
}
'''


def _mgsm(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [f"{_TOPICS[i % 12]}が{i}個あります。さらに{i}個もらうと全部で何個？\t{'1,000' if i == 2 else 2 * i}"
            for i in range(7)]
    (folder / "mgsm_ja.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    entries = "\n".join(f'        "{k}": {{"q": "問題：{_TOPICS[k]}が{k}個あります。"\n'
                        f'                   "全部で何個？", "a": "ステップごとの答え：{k}個です。答えは{k}です。"}},'
                        for k in range(1, 9))
    (folder / "exemplars.py").write_text(_EXEMPLARS % entries, encoding="utf-8")


def _xwinograd(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(5):
        tokens = [_TOPICS[i], "は", _TOPICS[i + 1], "を", "見た", "。", "それ", "は", "空腹だった", "。"]
        correct = i % 2 == 0
        candidates = [[_TOPICS[i], [0, 1], [_TOPICS[i]], correct], [_TOPICS[i + 1], [2, 3], [_TOPICS[i + 1]],
                                                                       not correct]]
        columns = ["jp", "train" if i < 3 else "test", f"The thing {i}.", "".join(tokens),
                   json.dumps(tokens, ensure_ascii=False), json.dumps(["それ", [6, 7], ["それ"]], ensure_ascii=False),
                   json.dumps(candidates, ensure_ascii=False)]
        rows.append("\t".join(columns))
    rows.append("\t".join(["en", "test", "The cat saw.", "The cat saw it.", '["The","cat"]', '["it",[1,2],["it"]]',
                           '[["cat",[0,1],["cat"],true],["dog",[1,2],["dog"],false]]']))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def write_jglue_root(root: Path, long_texts: bool = False) -> Path:
    """Every task's files in the published layout; `long_texts` makes prompts that need trimming."""
    jglue = root / "JGLUE" / "datasets"
    _jsonl(jglue / "jcommonsenseqa-v1.1" / "valid-v1.1.json", _jcqa_rows(7, 9000))
    _jsonl(jglue / "jcommonsenseqa-v1.1" / "train-v1.1.json", _jcqa_rows(9, 100))
    _jsonl(jglue / "jnli-v1.1" / "valid-v1.1.json", _jnli_rows(6, "v"))
    _jsonl(jglue / "jnli-v1.1" / "train-v1.1.json", _jnli_rows(8, "t"))
    _jsonl(jglue / "marc_ja-v1.1" / "valid-v1.0.json", _marc_rows(6, long_every=3 if long_texts else 0))
    _jsonl(jglue / "marc_ja-v1.1" / "train-v1.0.json", _marc_rows(7))
    for split, n, offset in (("valid", 2, 0), ("train", 3, 100)):
        path = jglue / "jsquad-v1.1" / f"{split}-v1.1.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_squad(n, offset), ensure_ascii=False), encoding="utf-8")
    (root / "jaqket_v2").mkdir(parents=True, exist_ok=True)
    for name, n, offset in (("dev_jaqket_59.350.json", 6, 0), ("train_jaqket_59.350.json", 8, 100)):
        (root / "jaqket_v2" / name).write_text(json.dumps(_jaqket(n, offset), ensure_ascii=False), encoding="utf-8")
    for split, n in (("test", 4), ("train", 5), ("validation", 2)):
        _xlsum(root / "xlsum_ja" / f"{split}.csv", n, 70 if long_texts else 3)
    _mgsm(root / "mgsm")
    _xwinograd(root / "xwinograd" / "dataset.tsv")
    return root


@pytest.fixture
def jglue_root(tmp_path) -> Path:
    return write_jglue_root(tmp_path / "data")


def test_every_task_loads_in_file_order(jglue_root):
    counts = {name: (len(d.eval_docs), len(d.train_docs)) for name in
              ("jcommonsenseqa", "jnli", "marc_ja", "jsquad", "jaqket_v2", "xlsum_ja", "mgsm", "xwinograd_ja")
              for d in [load_task_data(name, jglue_root)]}
    # jsquad: 2 articles × 2 paragraphs × 2 questions; jaqket drops every 4th question (answer beyond ctxs[:5]).
    assert counts == {"jcommonsenseqa": (7, 9), "jnli": (6, 8), "marc_ja": (6, 7), "jsquad": (8, 12),
                      "jaqket_v2": (5, 6), "xlsum_ja": (4, 5), "mgsm": (7, 8), "xwinograd_ja": (5, 0)}
    assert [d["id"] for d in load_task_data("jcommonsenseqa", jglue_root).eval_docs][:3] == [9000, 9001, 9002]


def test_documents_carry_the_template_fields(jglue_root):
    squad = load_task_data("jsquad", jglue_root).eval_docs[0]
    assert squad["passage"] == "架空雨市は雨の町。人口は0人。" and squad["title"] == "架空雨市"
    assert squad["answers"] == ["雨", "雨の町"]
    jaqket = load_task_data("jaqket_v2", jglue_root).eval_docs[0]
    assert len(jaqket["texts"]) == 5 and jaqket["has_answer"] == [False, True, False, False, False]
    mgsm = load_task_data("mgsm", jglue_root)
    assert mgsm.eval_docs[2]["answer_number"] == 1000  # thousands separator
    assert mgsm.train_docs[0] == {"id": "1", "question": "問題：猫が1個あります。全部で何個？",
                                  "answer": "ステップごとの答え：1個です。答えは1です。", "answer_number": 11}
    winograd = load_task_data("xwinograd_ja", jglue_root).eval_docs
    assert winograd[0] == {"id": "1", "sentence1": "雨は猫を見た。雨は空腹だった。",
                           "sentence2": "雨は猫を見た。猫は空腹だった。", "answer": "1"}
    assert winograd[1]["answer"] == "2"
    xlsum = load_task_data("xlsum_ja", jglue_root).eval_docs[0]
    assert xlsum["text"].endswith("\n改行も含む。") and xlsum["summary"] == "雨のtest要約0。"


def test_absent_task_is_missing_not_an_error(tmp_path):
    data = load_task_data("jnli", tmp_path)
    assert data.missing and data.missing[0].endswith("jnli-v1.1/valid-v1.1.json")


def test_row_count_and_blob_mismatches_warn(jglue_root):
    warnings = load_task_data("jsquad", jglue_root).warnings
    assert any("8 eval rows" in w and "4442" in w for w in warnings)
    assert any("git blob id differs" in w for w in warnings)


def test_git_blob_id_matches_git(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"hello\n")
    assert git_blob_id(path) == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object` of "hello\n"


def test_malformed_record_names_file_and_line(jglue_root):
    path = jglue_root / "JGLUE/datasets/jnli-v1.1/valid-v1.1.json"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace('"label": "entailment"', '"label": "含意"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ChowaError, match=r"valid-v1.1.json:4: .*含意"):
        load_task_data("jnli", jglue_root)
    path.write_text('{"sentence1": "x"}\n', encoding="utf-8")
    with pytest.raises(ChowaError, match=r"valid-v1.1.json:1: .*missing field"):
        load_task_data("jnli", jglue_root)
