"""Read the JGLUE-suite files a user supplies, in their published layouts, into template-ready documents.

Nothing is downloaded. An absent task comes back with `missing` set (the runner reports it as missing, never
as 0); malformed records raise `ChowaError` naming the file and line. Document order is file order, because
the few-shot draws depend on it.

Layout under the data root:
    JGLUE/datasets/{jcommonsenseqa,jnli,jsquad,marc_ja}-v1.1/{train,valid}-v1.1.json
    jaqket_v2/{train,dev}_jaqket_59.350.json   xlsum_ja/{train,test}.csv
    mgsm/mgsm_ja.tsv, mgsm/exemplars.py       xwinograd/dataset.tsv

Run as (from Python):
    data = load_task_data("jsquad", "~/data/jglue"); print(len(data.eval_docs), data.warnings)
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chowa.data.text import BUILTIN_DIR, BUILTIN_PREFIX
from chowa.errors import ChowaError

# Row counts of the published files (§1); a mismatch changes the few-shot draws, so it is reported.
EXPECTED_ROWS = {
    "jcommonsenseqa": (1119, 8939), "jnli": (2434, 20073), "marc_ja": (5654, 187528), "jsquad": (4442, 62859),
    "jaqket_v2": (1164, 2154), "xlsum_ja": (766, 4215), "xwinograd_ja": (959, 0), "mgsm": (250, 8),
}
# `git hash-object` of the yahoojapan/JGLUE v1.1.0 files; later releases relabel or reorder rows.
JGLUE_BLOBS = {
    "jcommonsenseqa-v1.1/train-v1.1.json": "4d11d31788cb22850b0a88d41a1ffdd13e8a180b",
    "jcommonsenseqa-v1.1/valid-v1.1.json": "1099679e5bc9a4d70f9ae6a6e7b41dca84897f99",
    "jnli-v1.1/train-v1.1.json": "14d9948a80dc585cfd53eb358594b0722b937802",
    "jnli-v1.1/valid-v1.1.json": "fee97af8f0b9325441b35186fcb04b3e0415800d",
    "jsquad-v1.1/train-v1.1.json": "20ce716ee531e3e23088f5840a3b0751ae803424",
    "jsquad-v1.1/valid-v1.1.json": "bcde414e0b7131607bb1fa2c4542dd888f68771a",
}
JNLI_LABELS = ["entailment", "contradiction", "neutral"]
MARC_LABELS = ["positive", "negative"]


@dataclass
class TaskData:
    eval_docs: list[dict] = field(default_factory=list)
    train_docs: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # absent files; non-empty means the task is missing
    warnings: list[str] = field(default_factory=list)


def load_task_data(task: str, root: str | Path) -> TaskData:
    """Eval and few-shot documents of `task` (a bare task name such as "jsquad") from the data root
    (`builtin:jglue` is chowa's own invented data in the same layout)."""
    root = str(root)
    root = BUILTIN_DIR / root[len(BUILTIN_PREFIX):] if root.startswith(BUILTIN_PREFIX) else Path(root).expanduser()
    if task not in _LOADERS:
        raise ChowaError(f"unknown JGLUE task {task!r}; known: {', '.join(_LOADERS)}")
    files = _files(task, root)
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        return TaskData(missing=missing)
    data = _LOADERS[task](*files)
    expected_eval, expected_train = EXPECTED_ROWS[task]
    for split, docs, expected in (("eval", data.eval_docs, expected_eval), ("few-shot", data.train_docs,
                                                                             expected_train)):
        if expected and len(docs) != expected:
            data.warnings.append(f"{task}: {len(docs)} {split} rows, the published files have {expected}")
    for path in files:
        key = f"{path.parent.name}/{path.name}"
        if key in JGLUE_BLOBS and git_blob_id(path) != JGLUE_BLOBS[key]:
            data.warnings.append(f"{path}: not the JGLUE v1.1.0 file (git blob id differs)")
    return data


def _files(task: str, root: Path) -> list[Path]:
    jglue = root / "JGLUE" / "datasets"
    if task == "marc_ja":
        folder = jglue / "marc_ja-v1.1"
        # The recipe writes -v1.0 names unless run with --version 1.1; both hold the same rows.
        suffix = "v1.1" if (folder / "valid-v1.1.json").is_file() or not (folder / "valid-v1.0.json").is_file() \
            else "v1.0"
        return [folder / f"valid-{suffix}.json", folder / f"train-{suffix}.json"]
    if task in ("jcommonsenseqa", "jnli", "jsquad"):
        return [jglue / f"{task}-v1.1" / "valid-v1.1.json", jglue / f"{task}-v1.1" / "train-v1.1.json"]
    return {
        "jaqket_v2": [root / "jaqket_v2" / "dev_jaqket_59.350.json", root / "jaqket_v2" / "train_jaqket_59.350.json"],
        "xlsum_ja": [root / "xlsum_ja" / "test.csv", root / "xlsum_ja" / "train.csv"],
        "mgsm": [root / "mgsm" / "mgsm_ja.tsv", root / "mgsm" / "exemplars.py"],
        "xwinograd_ja": [root / "xwinograd" / "dataset.tsv"],
    }[task]


def git_blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ChowaError(f"{path}: not UTF-8 at byte offset {exc.start}") from None


def _json_lines(path: Path, convert: Callable[[dict], dict]) -> list[dict]:
    docs = []
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            docs.append(convert(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ChowaError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise ChowaError(f"{path}:{lineno}: malformed record ({_describe(exc)})") from None
    return docs


def _describe(exc: Exception) -> str:
    return f"missing field {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)


def _jcqa(record: dict) -> dict:
    choices = [str(record[f"choice{i}"]) for i in range(5)]
    gold = int(record["label"])
    if not 0 <= gold < 5:
        raise ValueError(f"label {gold} is not 0-4")
    return {"id": record["q_id"], "question": record["question"], "choices": choices, "gold": gold,
            **{f"c{i}": c for i, c in enumerate(choices)}}


def _jnli(record: dict) -> dict:
    if record["label"] not in JNLI_LABELS:
        raise ValueError(f"label {record['label']!r} is not one of {JNLI_LABELS}")
    return {"id": record["sentence_pair_id"], "premise": record["sentence1"], "hypothesis": record["sentence2"],
            "gold": JNLI_LABELS.index(record["label"])}


def _marc(record: dict) -> dict:
    if record["label"] not in MARC_LABELS:
        raise ValueError(f"label {record['label']!r} is not one of {MARC_LABELS}")
    return {"id": record["review_id"], "sentence": record["sentence"], "gold": MARC_LABELS.index(record["label"])}


def _load_jsonl_task(convert: Callable[[dict], dict]) -> Callable[[Path, Path], TaskData]:
    return lambda valid, train: TaskData(_json_lines(valid, convert), _json_lines(train, convert))


def _load_json(path: Path):
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise ChowaError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def _jsquad_file(path: Path) -> list[dict]:
    """One doc per question, article → paragraph → qa order (the SQuAD loader's order)."""
    docs = []
    try:
        for article in _load_json(path)["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    docs.append({"id": qa["id"], "title": article["title"], "context": context,
                                 "question": qa["question"], "answers": [a["text"] for a in qa["answers"]],
                                 "passage": context.split("[SEP]")[-1].strip()})
    except (KeyError, TypeError) as exc:
        raise ChowaError(f"{path}: malformed SQuAD record ({_describe(exc)})") from None
    return docs


def _jaqket_file(path: Path) -> list[dict]:
    """The published loader's filter: first 5 passages, drop questions none of them answers."""
    records = _load_json(path)
    if not isinstance(records, list):
        raise ChowaError(f"{path}: expected one JSON array of JAQKET records")
    docs = []
    for index, record in enumerate(records):
        try:
            ctxs = record["ctxs"][:5]
            if not any(c["has_answer"] for c in ctxs):
                continue
            docs.append({"id": record["qid"], "question": record["question"], "answers": list(record["answers"]),
                         "titles": [c["title"] for c in ctxs], "texts": [c["text"] for c in ctxs],
                         "has_answer": [bool(c["has_answer"]) for c in ctxs]})
        except (KeyError, TypeError) as exc:
            raise ChowaError(f"{path}: record {index}: malformed JAQKET record ({_describe(exc)})") from None
    return docs


def _xlsum_csv(path: Path) -> list[dict]:
    csv.field_size_limit(sys.maxsize)  # news articles exceed csv's 128 KiB default field limit
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not {"text", "summary"} <= set(reader.fieldnames or []):
            raise ChowaError(f"{path}:1: header lacks the 'text' and 'summary' columns")
        try:
            return [{"id": str(i), "text": row["text"], "summary": row["summary"]} for i, row in enumerate(reader)]
        except UnicodeDecodeError as exc:
            raise ChowaError(f"{path}: not UTF-8 at byte offset {exc.start}") from None


def _mgsm(test: Path, exemplars: Path) -> TaskData:
    eval_docs = []
    with test.open(encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if len(row) != 2:
                raise ChowaError(f"{test}:{lineno}: expected 'question<TAB>answer_number', got {len(row)} fields")
            try:
                number = int(row[1].replace(",", ""))  # a few answers carry thousands separators
            except ValueError:
                raise ChowaError(f"{test}:{lineno}: answer_number {row[1]!r} is not an integer") from None
            eval_docs.append({"id": str(lineno), "question": row[0], "answer": None, "answer_number": number})
    return TaskData(eval_docs, _mgsm_exemplars(exemplars))


def _mgsm_exemplars(path: Path) -> list[dict]:
    """The 8 Japanese exemplars, read with `ast` so the file is never executed."""
    values = {}
    try:
        for node in ast.parse(_read_text(path)).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if node.targets[0].id in ("MGSM_EXEMPLARS", "EXEMPLAR_NUMBER_ANSWERS"):
                    values[node.targets[0].id] = ast.literal_eval(node.value)
        exemplars, numbers = values["MGSM_EXEMPLARS"]["ja"], values["EXEMPLAR_NUMBER_ANSWERS"]
        return [{"id": key, "question": exemplars[key]["q"], "answer": exemplars[key]["a"],
                 "answer_number": numbers[i]} for i, key in enumerate(str(k) for k in range(1, 9))]
    except (SyntaxError, ValueError) as exc:
        raise ChowaError(f"{path}: cannot read the exemplars ({exc})") from None
    except (KeyError, IndexError, TypeError) as exc:
        raise ChowaError(f"{path}: MGSM_EXEMPLARS['ja'] or EXEMPLAR_NUMBER_ANSWERS incomplete ({exc!r})") from None


def _xwinograd(path: Path) -> TaskData:
    docs = []
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        columns = line.rstrip("\r").split("\t")
        if len(columns) != 7:
            raise ChowaError(f"{path}:{lineno}: expected 7 tab-separated columns, got {len(columns)}")
        if columns[0] != "jp":
            continue
        try:
            docs.append(_xwinograd_doc(columns, lineno))
        except (json.JSONDecodeError, ValueError, TypeError, IndexError) as exc:
            raise ChowaError(f"{path}:{lineno}: malformed xwinograd row ({exc})") from None
    return TaskData(docs, [])


def _xwinograd_doc(columns: list[str], lineno: int) -> dict:
    tokens, pronoun, candidates = (json.loads(c) for c in columns[4:7])
    start, end = pronoun[1]
    sentences = ["".join(tokens[:start] + [cand[0]] + tokens[end:]) for cand in candidates]
    correct = [i for i, cand in enumerate(candidates) if cand[3]]
    if len(sentences) != 2 or len(correct) != 1:
        raise ValueError("expected two candidates, exactly one correct")
    return {"id": str(lineno), "sentence1": sentences[0], "sentence2": sentences[1], "answer": str(correct[0] + 1)}


_LOADERS: dict[str, Callable[..., TaskData]] = {
    "jcommonsenseqa": _load_jsonl_task(_jcqa),
    "jnli": _load_jsonl_task(_jnli),
    "marc_ja": _load_jsonl_task(_marc),
    "jsquad": lambda valid, train: TaskData(_jsquad_file(valid), _jsquad_file(train)),
    "jaqket_v2": lambda dev, train: TaskData(_jaqket_file(dev), _jaqket_file(train)),
    "xlsum_ja": lambda test, train: TaskData(_xlsum_csv(test), _xlsum_csv(train)),
    "mgsm": _mgsm,
    "xwinograd_ja": _xwinograd,
}
