"""JGLUE task IDs, prompt rendering, few-shot draws and the trimming rules, joined into per-document instances.

A task ID is `name-VERSION-PROMPT` ("jsquad-1.1-0.3"; `xwinograd_ja` has none); bare names are the reference's
aliases. `build_instances` reproduces the reference's evaluation order and few-shot draws exactly: one
`random.Random(42)` shuffles the eval documents, then draws each document's shots from the full few-shot list.

Run as (from Python):
    spec = parse_task("jsquad-1.1-0.3")
    for inst in build_instances(spec, load_task_data("jsquad", root), limit=2): print(inst.prompt)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from chowa.errors import ChowaError
from chowa.eval.jglue.data import JNLI_LABELS, TaskData
from chowa.eval.jglue.prompts import PROMPTS

# name -> (VERSIONs, prompt versions, kind); "ll" scores choices, "gen" generates greedily.
TASKS = {
    "jcommonsenseqa": (("1.1",), ("0.1", "0.2", "0.3", "0.4", "0.5"), "ll"),
    "jnli": (("1.1",), ("0.2", "0.3", "0.4", "0.5"), "ll"),
    "marc_ja": (("1.1",), ("0.2", "0.3", "0.4", "0.5"), "ll"),
    "jsquad": (("1.1",), ("0.1", "0.2", "0.3", "0.4", "0.5"), "gen"),
    "jaqket_v2": (("0.2", "0.1"), ("0.1", "0.2", "0.3", "0.4", "0.5"), "gen"),
    "xlsum_ja": (("1.0",), ("0.0", "0.3", "0.4", "0.5"), "gen"),
    "xwinograd_ja": ((), (), "ll"),
    "mgsm": (("1.0",), ("0.0", "0.3", "0.4", "0.5"), "gen"),
}
ALIASES = {"jcommonsenseqa": "1.1-0.1", "jnli": "1.1-0.2", "marc_ja": "1.1-0.2", "jsquad": "1.1-0.1",
           "jaqket_v2": "0.2-0.1", "xlsum_ja": "1.0-0.0", "mgsm": "1.0-0.0"}
# The model cards' few-shot counts, used unless a task is given as "ID:k".
DEFAULT_SHOTS = {"jcommonsenseqa": 3, "jnli": 3, "marc_ja": 3, "jsquad": 2, "jaqket_v2": 1, "xlsum_ja": 1,
                 "xwinograd_ja": 0, "mgsm": 5}
_CARD_ORDER = ("jcommonsenseqa-1.1-{v}", "jnli-1.1-{v}", "marc_ja-1.1-{v}", "jsquad-1.1-{v}", "jaqket_v2-{j}-{v}",
               "xlsum_ja-1.0-{v}", "xwinograd_ja", "mgsm-1.0-{v}")
SUITES = {
    "weblab": [t.format(v="0.3", j="0.2") for t in _CARD_ORDER],
    "rinna-ja": [t.format(v="0.4", j="0.1") for t in _CARD_ORDER],
    "rinna-bilingual": [t.format(v="0.5", j="0.1") for t in _CARD_ORDER],
}
MGSM_BUDGET = 256


@dataclass(frozen=True)
class TaskSpec:
    name: str
    version: str | None
    prompt_version: str | None
    num_fewshot: int

    @property
    def task_id(self) -> str:
        return self.name if self.version is None else f"{self.name}-{self.version}-{self.prompt_version}"

    @property
    def kind(self) -> str:
        return TASKS[self.name][2]

    @property
    def prompt(self) -> dict:
        return PROMPTS[self.name][self.prompt_version] if self.prompt_version else {}


@dataclass
class Instance:
    """One evaluated document: the prompt exactly as the model sees it and what is asked of the model."""

    doc_id: int  # position in the evaluation order
    doc: dict
    prompt: str
    gold: Any
    choices: list[str] | None = None  # log-likelihood tasks: the continuations scored after `prompt`
    until: list[str] | None = None  # generation tasks: stop strings, and the token budget
    max_new_tokens: int | None = None


def parse_task(text: str) -> TaskSpec:
    """"jsquad-1.1-0.3", "jsquad" (alias) or "jsquad-1.1-0.3:2" (few-shot count) -> TaskSpec."""
    text, _, shots = text.strip().partition(":")
    name, _, rest = text.partition("-")
    if name not in TASKS:
        raise ChowaError(f"unknown JGLUE task {text!r}; known: {', '.join(TASKS)}")
    versions, prompt_versions, _ = TASKS[name]
    if versions:
        version, _, prompt_version = (rest or ALIASES[name]).partition("-")
        if version not in versions or prompt_version not in prompt_versions:
            raise ChowaError(f"unknown JGLUE task {text!r}: {name} has versions {', '.join(versions)} and prompt "
                             f"versions {', '.join(prompt_versions)}")
    elif rest:
        raise ChowaError(f"unknown JGLUE task {text!r}: {name} takes no version suffix")
    else:
        version = prompt_version = None
    try:
        num_fewshot = int(shots) if shots else DEFAULT_SHOTS[name]
    except ValueError:
        raise ChowaError(f"task {text!r}: few-shot count {shots!r} is not an integer") from None
    if name == "xwinograd_ja" and num_fewshot:
        raise ChowaError("xwinograd_ja is 0-shot only (it has no few-shot pool)")
    return TaskSpec(name, version, prompt_version, num_fewshot)


def resolve_tasks(tasks: str | list[str] | None = None, suite: str | None = None) -> list[TaskSpec]:
    if (tasks is None) == (suite is None):
        raise ChowaError("give either a task list or a suite (weblab, rinna-ja, rinna-bilingual)")
    if suite is not None:
        if suite not in SUITES:
            raise ChowaError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
        tasks = SUITES[suite]
    if isinstance(tasks, str):
        tasks = [t for t in tasks.split(",") if t.strip()]
    return [parse_task(t) for t in tasks]


# --- rendering ---------------------------------------------------------------------------------------------

def fields(spec: TaskSpec, doc: dict) -> dict:
    """The template fields of a document (the raw doc plus derived ones)."""
    if spec.name == "jaqket_v2":
        answer = doc["has_answer"].index(True)
        titled = "\n".join("[題名]:" + t + "\n[問題]:" + x for t, x in zip(doc["titles"], doc["texts"]))
        return {**doc, "ctxs": spec.prompt["SEP"].join(doc["texts"]), "titled": titled,
                "a_title": doc["titles"][answer], "a_text": doc["texts"][answer]}
    if spec.name == "mgsm":
        return {**doc, "q": doc["question"].replace("問題：", "")}
    return doc


def doc_text(spec: TaskSpec, doc: dict) -> str:
    return spec.prompt["T"].format(**fields(spec, doc))


def shot_text(spec: TaskSpec, doc: dict) -> str:
    # JAQKET 0.2 shows a shot only its answer passage; legacy 0.1 shows all passages, like the test doc.
    template = spec.prompt["T_SHOT"] if spec.name == "jaqket_v2" and spec.version == "0.2" else spec.prompt["T"]
    return template.format(**fields(spec, doc))


def target(spec: TaskSpec, doc: dict) -> str:
    name, p = spec.name, spec.prompt
    if name == "jcommonsenseqa":
        # Quirk of 0.2: the shot shows the choice number, though scoring still compares choice texts.
        return str(doc["gold"]) if spec.prompt_version == "0.2" else doc["choices"][doc["gold"]]
    if name == "jnli":
        return JNLI_LABELS[doc["gold"]]
    if name == "marc_ja":
        return p["C"][doc["gold"]]
    if name in ("jsquad", "jaqket_v2"):
        return doc["answers"][0]
    if name == "xlsum_ja":
        return doc["summary"]
    if name == "mgsm":
        return doc["answer"].replace("ステップごとの答え：", "")
    raise ChowaError(f"{name} has no few-shot target")


def build_context(spec: TaskSpec, doc: dict, shots: list[dict]) -> str:
    """Description, then the shots joined by the few-shot separator (and one after the last), then the doc."""
    p = spec.prompt
    context = p.get("D", "")
    if shots:
        context += p["S"].join(shot_text(spec, shot) + target(spec, shot) for shot in shots) + p["S"]
    return context + doc_text(spec, doc)


def choices_and_gold(spec: TaskSpec, doc: dict) -> tuple[list[str], int]:
    if spec.name == "jcommonsenseqa":
        return doc["choices"], doc["gold"]
    if spec.name == "jnli":
        return list(JNLI_LABELS), doc["gold"]
    if spec.name == "marc_ja":
        return list(spec.prompt["C"]), doc["gold"]
    return [doc["sentence1"], doc["sentence2"]], int(doc["answer"]) - 1  # xwinograd_ja


# --- evaluation order --------------------------------------------------------------------------------------

def build_instances(spec: TaskSpec, data: TaskData, limit: int | None = None, tokenizer=None,
                    max_length: int | None = None) -> list[Instance]:
    """Instances in evaluation order. With a tokenizer and max_length, prompts are trimmed as the model sees them.

    Without a tokenizer, prompts are untrimmed and token budgets that depend on the tokenizer are None.
    """
    docs = list(data.eval_docs)
    rnd = random.Random()
    rnd.seed(42)
    rnd.shuffle(docs)
    train = list(data.train_docs)
    if spec.num_fewshot > len(train):
        raise ChowaError(f"{spec.task_id}: {spec.num_fewshot} shots asked, the few-shot pool has {len(train)}")
    instances = []
    for doc_id, doc in enumerate(docs[:limit] if limit is not None else docs):
        # The draw happens for every evaluated document, in order: it advances the shared generator.
        shots = rnd.sample(train, spec.num_fewshot) if spec.num_fewshot > 0 else []
        if spec.name == "xwinograd_ja":
            instances.append(Instance(doc_id, doc, "", int(doc["answer"]) - 1, choices=[doc["sentence1"],
                                                                                         doc["sentence2"]]))
            continue
        context = build_context(spec, doc, shots)
        if spec.kind == "ll":
            choices, gold = choices_and_gold(spec, doc)
            instances.append(Instance(doc_id, doc, context, gold, choices=choices))
        else:
            instances.append(_generation_instance(spec, doc_id, doc, context, tokenizer, max_length))
    return instances


def _generation_instance(spec: TaskSpec, doc_id: int, doc: dict, context: str, tokenizer,
                         max_length: int | None) -> Instance:
    from chowa.eval.jglue import trim  # trimming needs only the tokenizer; kept apart for readability

    p = spec.prompt
    enc = (lambda s: tokenizer.encode(s, add_special_tokens=False)) if tokenizer is not None else None
    if spec.name in ("jsquad", "jaqket_v2"):
        gold, until = doc["answers"], [p["SEP"]]
        budget = max(len(enc(a)) for a in gold) if enc else None
    elif spec.name == "xlsum_ja":
        gold, until = doc["summary"], [p["SEP"]]
        budget = len(enc(doc["summary"])) + 10 if enc else None
    else:  # mgsm stops at the tokenizer's EOS text or a newline, in every prompt version
        gold, budget = doc["answer_number"], MGSM_BUDGET
        until = [tokenizer.eos_token if tokenizer is not None else None, "\n"]
    instance = Instance(doc_id, doc, context, gold, until=until, max_new_tokens=budget)
    if tokenizer is None or max_length is None:
        return replace(instance, prompt=_collapse_nl(spec, context))
    limit = max_length - budget
    try:
        if spec.name == "jaqket_v2" and spec.version == "0.2":
            context = trim.jaqket_trim(context, limit, spec.prompt_version, tokenizer)
        elif spec.name == "xlsum_ja":
            context = _collapse_nl(spec, trim.xlsum_trim(context, limit, p, tokenizer))
        elif spec.name == "mgsm":
            context = trim.mgsm_trim(context, limit, tokenizer)
    except ValueError as exc:
        raise ChowaError(f"{spec.task_id} document {doc.get('id')!r}: cannot trim the prompt to {limit} tokens "
                         f"(max_length {max_length} - budget {budget}): {exc}") from None
    return replace(instance, prompt=context)


def _collapse_nl(spec: TaskSpec, context: str) -> str:
    # xlsum 0.4/0.5 always get this replace, trimmed or not; for 0.5 it finds nothing (its turns end in "\n").
    if spec.name == "xlsum_ja" and spec.prompt_version in ("0.4", "0.5"):
        return context.replace("<NL><NL>", "<NL>")
    return context
