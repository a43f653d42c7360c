"""The built-in JGLUE data root: every suite loads from it, its answers are where the tasks say, and it runs."""

from __future__ import annotations

import json

import pytest
import torch

from chowa.data.text import BUILTIN_DIR
from chowa.eval.jglue.data import load_task_data
from chowa.eval.jglue.metrics import mgsm_extract
from chowa.eval.jglue.runner import run_jglue
from chowa.eval.jglue.tasks import SUITES, build_instances, fields, resolve_tasks
from tools.builtin_data.jglue import build_jglue, builtin_jglue_dir

ROOT = builtin_jglue_dir()
COUNTS = {"jcommonsenseqa": (20, 20), "jnli": (21, 24), "marc_ja": (20, 24), "jsquad": (20, 16),
          "jaqket_v2": (18, 14), "xlsum_ja": (20, 10), "mgsm": (20, 8), "xwinograd_ja": (20, 0)}


def test_shipped_files_are_the_generator_output():
    files = build_jglue()
    shipped = {p.relative_to(BUILTIN_DIR).as_posix() for p in ROOT.rglob("*") if p.is_file()}
    assert shipped == set(files)
    for relative, text in files.items():
        assert (BUILTIN_DIR / relative).read_bytes() == text.encode("utf-8"), relative
    assert sum(len(text.encode("utf-8")) for text in files.values()) < 150_000


def test_every_task_loads_with_its_document_counts():
    counts = {}
    for name in COUNTS:
        data = load_task_data(name, ROOT)
        assert not data.missing, name
        counts[name] = (len(data.eval_docs), len(data.train_docs))
    assert counts == COUNTS


@pytest.mark.parametrize("suite", list(SUITES))
def test_every_suite_builds_all_its_instances(suite):
    specs = resolve_tasks(suite=suite)
    assert len(specs) == 8
    for spec in specs:
        data = load_task_data(spec.name, ROOT)
        instances = build_instances(spec, data)
        assert len(instances) == COUNTS[spec.name][0], spec.task_id
        assert spec.name == "xwinograd_ja" or len(data.train_docs) > spec.num_fewshot, spec.task_id
        assert all(0 <= inst.gold < len(inst.choices) for inst in instances if inst.choices), spec.task_id


def test_choice_golds_are_spread_over_positions():
    for name, options in (("jcommonsenseqa", 5), ("jnli", 3), ("marc_ja", 2)):
        golds = [doc["gold"] for doc in load_task_data(name, ROOT).eval_docs]
        assert set(golds) == set(range(options)) and max(map(golds.count, set(golds))) <= len(golds) // options + 1
    answers = [doc["answer"] for doc in load_task_data("xwinograd_ja", ROOT).eval_docs]
    assert answers.count("1") == answers.count("2")


def test_extractive_answers_are_in_the_passage_shown():
    for doc in load_task_data("jsquad", ROOT).eval_docs + load_task_data("jsquad", ROOT).train_docs:
        assert all(answer in doc["passage"] for answer in doc["answers"]), doc["id"]
    raw = json.loads((ROOT / "JGLUE/datasets/jsquad-v1.1/valid-v1.1.json").read_text(encoding="utf-8"))
    for paragraph in (p for article in raw["data"] for p in article["paragraphs"]):
        for answer in (a for qa in paragraph["qas"] for a in qa["answers"]):
            start = answer["answer_start"]
            assert paragraph["context"][start:start + len(answer["text"])] == answer["text"]
    spec = resolve_tasks(tasks="jaqket_v2-0.2-0.3")[0]
    data = load_task_data("jaqket_v2", ROOT)
    for doc in data.eval_docs + data.train_docs:
        assert doc["answers"][0] in fields(spec, doc)["a_text"] and doc["answers"][0] in fields(spec, doc)["ctxs"]


def test_mgsm_exemplars_end_in_their_number():
    data = load_task_data("mgsm", ROOT)
    assert [mgsm_extract(doc["answer"]) for doc in data.train_docs] == [doc["answer_number"] for doc in
                                                                         data.train_docs]
    assert all(doc["question"].startswith("問題：") for doc in data.train_docs)
    assert not any("問題：" in doc["question"] for doc in data.eval_docs)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a hidden-32 model only loses time to thread hand-offs on a shared CPU
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_2048_dir(tmp_path_factory, tokenizer_dir):
    """The conftest tiny model with the card models' 2048 positions, which weblab's 5-shot mgsm prompt needs."""
    from chowa.models.build import build_model
    from chowa.tokenizer import load_tokenizer

    out = tmp_path_factory.mktemp("tiny-2048")
    tokenizer = load_tokenizer(tokenizer_dir)
    model = build_model("tiny", tokenizer=tokenizer, seed=0, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=2048)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


@pytest.mark.parametrize("suite", ["weblab", "rinna-ja"])
def test_a_suite_runs_on_a_tiny_model(suite, tiny_model_dir, model_2048_dir, tmp_path, one_thread):
    # weblab needs 2048 positions: a 512-position model leaves mgsm 256 prompt tokens, and the 5-shot
    # mgsm-1.0-0.3 prompt cannot be trimmed (its questions lose the "問題：" tag). rinna-ja's mgsm prompt trims.
    model = model_2048_dir if suite == "weblab" else tiny_model_dir
    results = run_jglue(str(model), str(ROOT), suite=suite, limit=2, dtype="float32", device="cpu",
                        out=str(tmp_path / "results.json"))
    assert [entry["status"] for entry in results["tasks"].values()] == ["ok"] * 8
    assert all(entry["metrics"] and entry["n"] == 2 for entry in results["tasks"].values())
    assert set(results["averages"]) == {"avg4", "avg6", "avg8"}
