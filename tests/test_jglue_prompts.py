"""JGLUE prompt rendering, few-shot draws, evaluation order and trimming, against hand-written expectations."""

from __future__ import annotations

import io
import json
import random

import pytest

from chowa.errors import ChowaError
from chowa.eval.jglue import trim
from chowa.eval.jglue.data import TaskData, load_task_data
from chowa.eval.jglue.prompts import PROMPTS
from chowa.eval.jglue.runner import write_prompts
from chowa.eval.jglue.tasks import SUITES, TASKS, build_instances, parse_task, resolve_tasks
from test_jglue_data import write_jglue_root

ALP = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"


class CharTokenizer:
    """One token per character, so token counts in trimming tests can be worked out by hand."""

    eos_token, eos_token_id = "</s>", 0

    def __init__(self, appends_eos: bool = False):
        self.appends_eos = appends_eos  # like rinna's slow T5Tokenizer, whose default encode adds </s>

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) for c in text] + ([0] if add_special_tokens and self.appends_eos else [])

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids if not (skip_special_tokens and i == 0))


def _one(task: str, doc: dict, shot: dict | None, **kwargs):
    spec = parse_task(task if shot is None else f"{task}:1")
    if shot is None:
        spec = parse_task(f"{task}:0")
    return build_instances(spec, TaskData([doc], [shot] if shot else []), **kwargs)[0]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_jglue_root(tmp_path_factory.mktemp("jglue"))


JCQA_DOC = {"id": 1, "question": "雨の日に差すものは？", "choices": ["傘", "靴", "鍋", "窓", "本"], "gold": 0,
            "c0": "傘", "c1": "靴", "c2": "鍋", "c3": "窓", "c4": "本"}
JCQA_SHOT = {"id": 2, "question": "寝る場所は？", "choices": ["台所", "寝室", "庭", "駅", "海"], "gold": 1,
             "c0": "台所", "c1": "寝室", "c2": "庭", "c3": "駅", "c4": "海"}


def test_every_listed_version_exists_and_nothing_else():
    for name, (_, prompt_versions, _) in TASKS.items():
        assert tuple(PROMPTS.get(name, {})) == prompt_versions, name


def test_aliases_and_suites():
    assert parse_task("jaqket_v2").task_id == "jaqket_v2-0.2-0.1"
    assert parse_task("xlsum_ja").task_id == "xlsum_ja-1.0-0.0" and parse_task("jnli").task_id == "jnli-1.1-0.2"
    assert [s.num_fewshot for s in resolve_tasks(suite="weblab")] == [3, 3, 3, 2, 1, 1, 0, 5]
    assert SUITES["rinna-ja"][4] == "jaqket_v2-0.1-0.4" and SUITES["rinna-bilingual"][7] == "mgsm-1.0-0.5"
    assert parse_task("jsquad-1.1-0.3:4").num_fewshot == 4
    for bad in ("jnli-1.1-0.1", "jnli-1.2-0.2", "xwinograd_ja-1.0", "jcola", "xwinograd_ja:1"):
        with pytest.raises(ChowaError):
            parse_task(bad)


def test_jcqa_02_shot_target_is_the_choice_number():
    prompt = _one("jcommonsenseqa-1.1-0.2", JCQA_DOC, JCQA_SHOT).prompt
    assert prompt == ("質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。"
                      "なお、回答は選択肢の番号(例:0)でするものとします。 \n\n"
                      "質問:寝る場所は？\n選択肢:0.台所,1.寝室,2.庭,3.駅,4.海\n回答:1\n\n"
                      "質問:雨の日に差すものは？\n選択肢:0.傘,1.靴,2.鍋,3.窓,4.本\n回答:")
    assert _one("jcommonsenseqa-1.1-0.2", JCQA_DOC, JCQA_SHOT).choices == ["傘", "靴", "鍋", "窓", "本"]


def test_jcqa_04_uses_nl_markers_and_the_choice_text():
    prompt = _one("jcommonsenseqa-1.1-0.4", JCQA_DOC, JCQA_SHOT).prompt
    assert prompt == ("ユーザー: 与えられた選択肢の中から、最適な答えを選んでください。<NL>システム: 分かりました。<NL>"
                      "ユーザー: 質問：寝る場所は？<NL>選択肢：<NL>"
                      "- 台所<NL>- 寝室<NL>- 庭<NL>- 駅<NL>- 海<NL>システム: 寝室<NL>"
                      "ユーザー: 質問：雨の日に差すものは？<NL>選択肢：<NL>"
                      "- 傘<NL>- 靴<NL>- 鍋<NL>- 窓<NL>- 本<NL>システム: ")


def test_jnli_03_and_marc_05():
    doc = {"id": "1", "premise": "猫が寝ている。", "hypothesis": "猫がいる。", "gold": 0}
    shot = {"id": "2", "premise": "犬が走る。", "hypothesis": "犬は寝ている。", "gold": 1}
    inst = _one("jnli-1.1-0.3", doc, shot)
    body = ("### 指示:\n与えられた前提と仮説の関係を回答してください。\n\n出力は以下から選択してください："
            "\nentailment\ncontradiction\nneutral\n\n### 入力:\n")
    assert inst.prompt == (ALP + body + "前提：犬が走る。\n仮説：犬は寝ている。\n\n### 応答:\ncontradiction\n\n"
                           + body + "前提：猫が寝ている。\n仮説：猫がいる。\n\n### 応答:\n")
    assert inst.choices == ["entailment", "contradiction", "neutral"]
    marc = _one("marc_ja-1.1-0.5", {"id": "a", "sentence": "良い。", "gold": 0},
                {"id": "b", "sentence": "悪い。", "gold": 1})
    assert marc.prompt == ("ユーザー: 与えられた製品レビューを、"
                           "ポジティブまたはネガティブの感情クラスのいずれかに分類してください。\n"
                           "システム: 分かりました。\nユーザー: 悪い。\nシステム: ネガティブ\n"
                           "ユーザー: 良い。\nシステム: ")
    assert marc.choices == ["ポジティブ", "ネガティブ"] and marc.gold == 0


def test_jsquad_01_uses_title_and_the_passage_after_sep(root):
    data = load_task_data("jsquad", root)
    spec = parse_task("jsquad-1.1-0.1:1")
    inst = build_instances(spec, TaskData(data.eval_docs[:1], data.train_docs[:1]))[0]
    assert inst.prompt == ("[題名]と[問題]から[質問]に対する[答え]を抜き出しなさい\n\n"
                           "[題名]:架空雨市\n[問題]:架空雨市は雨の町。人口は0人。\n[質問]:架空雨市には何がある？0\n[答え]:雨\n\n"
                           "[題名]:架空雨市\n[問題]:架空雨市は雨の町。人口は0人。\n[質問]:架空雨市には何がある？0\n[答え]:")
    assert inst.until == ["\n"] and inst.gold == ["雨", "雨の町"] and inst.max_new_tokens is None


JAQKET_DOC = {"id": "q1", "question": "架空の山は？", "answers": ["架空山"], "titles": ["A", "B"],
              "texts": ["文A。", "文B。"], "has_answer": [False, True]}
JAQKET_SHOT = {"id": "q2", "question": "架空の川は？", "answers": ["架空川", "川"], "titles": ["C", "D"],
               "texts": ["文C。", "文D。"], "has_answer": [True, True]}


def test_jaqket_02_shots_show_only_the_answer_passage():
    inst = _one("jaqket_v2-0.2-0.2", JAQKET_DOC, JAQKET_SHOT)
    assert inst.prompt == ("質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。\n\n"
                           "文章:文C。\n質問:架空の川は？\n回答:架空川\n\n文章:文A。\n文B。\n質問:架空の山は？\n回答:")
    titled = _one("jaqket_v2-0.2-0.1", JAQKET_DOC, JAQKET_SHOT).prompt
    assert titled.endswith("[題名]:C\n[問題]:文C。\n[質問]:架空の川は？\n[答え]:架空川\n\n"
                           "[題名]:A\n[問題]:文A。\n[題名]:B\n[問題]:文B。\n[質問]:架空の山は？\n[答え]:")


def test_jaqket_legacy_01_shots_show_all_passages_joined_by_sep():
    inst = _one("jaqket_v2-0.1-0.4", JAQKET_DOC, JAQKET_SHOT)
    assert inst.prompt == ("ユーザー: 与えられた文脈から、質問に対する答えを抜き出してください。<NL>"
                           "システム: 分かりました。<NL>"
                           "ユーザー: 文脈：文C。<NL>文D。<NL>質問：架空の川は？<NL>システム: 架空川<NL>"
                           "ユーザー: 文脈：文A。<NL>文B。<NL>質問：架空の山は？<NL>システム: ")
    assert inst.until == ["<NL>"]


MGSM_DOC = {"id": "1", "question": "りんごが3個。2個食べると？", "answer": None, "answer_number": 1}
MGSM_SHOT = {"id": "1", "question": "問題：猫が2匹。", "answer": "ステップごとの答え：2匹。答えは2。",
             "answer_number": 2}


def test_mgsm_versions_keep_their_quirks():
    assert _one("mgsm-1.0-0.0", MGSM_DOC, MGSM_SHOT).prompt == (
        "問題：猫が2匹。\nステップごとの答え：2匹。答えは2。\n\n問題：りんごが3個。2個食べると？\nステップごとの答え：")
    assert _one("mgsm-1.0-0.3", MGSM_DOC, None).prompt == (
        ALP + "### 指示:\n与えられた問題に対して、ステップごとに答えを導き出してください。"
        "### 入力:\nりんごが3個。2個食べると？\n\n### 応答:\n")
    assert _one("mgsm-1.0-0.5", MGSM_DOC, MGSM_SHOT).prompt == (
        "ユーザー: 与えられた問題をステップごとに解説してください。\nシステム: 分かりました。\n"
        "ユーザー: 問題：猫が2匹。<NL>システム: ステップごとの答え：2匹。答えは2。\n"
        "ユーザー: 問題：りんごが3個。2個食べると？<NL>システム: ステップごとの答え：")
    inst = _one("mgsm-1.0-0.4", MGSM_DOC, None, tokenizer=CharTokenizer(), max_length=1000)
    assert inst.until == ["</s>", "\n"] and inst.max_new_tokens == 256 and inst.gold == 1


def test_xlsum_00_and_budget():
    doc, shot = {"id": "0", "text": "本文。", "summary": "要約。"}, {"id": "1", "text": "例。", "summary": "例の要約。"}
    inst = _one("xlsum_ja-1.0-0.0", doc, shot, tokenizer=CharTokenizer(), max_length=1000)
    assert inst.prompt == ("与えられたニュース記事を要約してください。\n\n"
                           "ニュース記事:例。\n要約:例の要約。\n\nニュース記事:本文。\n要約:")
    assert inst.max_new_tokens == 3 + 10 and inst.until == ["\n"]


@pytest.mark.parametrize("task_id", [f"{name}-{version}-{pv}" if versions else name
                                     for name, (versions, pvs, _) in TASKS.items()
                                     for version in (versions or (None,)) for pv in (pvs or (None,))])
def test_every_task_and_version_renders_from_real_layout_files(root, task_id):
    lines = io.StringIO()
    assert write_prompts(task_id, str(root), lines, limit=3) == 3
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    spec = parse_task(task_id)
    for record in records:
        assert "{" not in record["prompt"] and "}" not in record["prompt"]  # every field filled
        assert record["prompt"].startswith(spec.prompt.get("D", ""))
        assert ("choices" in record) == (spec.kind == "ll")
    assert [r["doc_id"] for r in records] == [0, 1, 2]


def test_shuffle_and_draws_follow_one_random_42(root):
    spec = parse_task("jcommonsenseqa-1.1-0.1")
    data = load_task_data("jcommonsenseqa", root)
    rnd = random.Random(42)
    order = list(range(len(data.eval_docs)))
    rnd.shuffle(order)
    draws = [rnd.sample(range(len(data.train_docs)), 3) for _ in order]
    instances = build_instances(spec, data)
    assert [inst.doc["id"] for inst in instances] == [data.eval_docs[i]["id"] for i in order]
    for inst, drawn in zip(instances, draws):
        shown = [line for line in inst.prompt.split("\n") if line.startswith("[問題]:")][:-1]
        assert shown == [f"[問題]:{data.train_docs[i]['question']}" for i in drawn]
    # --limit keeps the first documents of the same order, with the same shots.
    assert [i.prompt for i in build_instances(spec, data, limit=2)] == [i.prompt for i in instances[:2]]


def test_xwinograd_is_zero_shot_with_empty_context(root):
    inst = build_instances(parse_task("xwinograd_ja"), load_task_data("xwinograd_ja", root))
    assert all(i.prompt == "" and len(i.choices) == 2 for i in inst) and len(inst) == 5


# --- trimming --------------------------------------------------------------------------------------------

def test_jaqket_trim_drops_shot_blocks_counting_special_tokens():
    ctx = "D\n\nshot1\n\nshot2\n\ntest"
    assert trim.jaqket_trim(ctx, 100, "0.2", CharTokenizer()) == ctx
    assert trim.jaqket_trim(ctx, len("D\n\nshot2\n\ntest"), "0.2", CharTokenizer()) == "D\n\nshot2\n\ntest"
    # An appended </s> counts: one more block goes.
    assert trim.jaqket_trim(ctx, len("D\n\nshot2\n\ntest"), "0.2", CharTokenizer(appends_eos=True)) == "D\n\ntest"
    with pytest.raises(ValueError):
        trim.jaqket_trim("D\n\ntest", 3, "0.1", CharTokenizer())


def test_jaqket_trim_03_can_eat_the_test_prompts_own_sections():
    ctx = ALP + "### 指示:\nI\n\n### 入力:\nX\n\n### 応答:\n"
    out = trim.jaqket_trim(ctx, len(ctx) - 5, "0.3", CharTokenizer())
    assert out == ALP + "### 入力:\nX\n\n### 応答:\n"


def test_jaqket_trim_04_deletes_first_shot_and_05_fails():
    end, start = "システム: 分かりました。<NL>", "ユーザー: 文脈："
    ctx = "ユーザー: 指示<NL>" + end + start + "s1<NL>システム: a<NL>" + start + "t<NL>システム: "
    out = trim.jaqket_trim(ctx, len(ctx) - 1, "0.4", CharTokenizer())
    assert out == "ユーザー: 指示<NL>" + end + start + "t<NL>システム: "
    with pytest.raises(ValueError):
        trim.jaqket_trim(ctx.replace("<NL>", "\n"), 10, "0.5", CharTokenizer())


def test_xlsum_trim_splits_budget_per_article_and_cuts_sentences():
    p = PROMPTS["xlsum_ja"]["0.0"]
    ctx = ("与えられたニュース記事を要約してください。\n\n"
           "ニュース記事:あい。うえ。\n要約:S\n\nニュース記事:かき。くけ。こさ。\n要約:")
    head = "与えられたニュース記事を要約してください。\n\n"
    # limit 28 over 2 articles: 14 tokens each. "ニュース記事:あい。うえ。\n" is 14 characters: kept whole.
    # "ニュース記事:かき。くけ" is 12 and "…。こさ" 15 > 14, so "。" + SEP closes the kept part there.
    assert trim.xlsum_trim(ctx, 28, p, CharTokenizer()) == (
        head + "ニュース記事:あい。うえ。\n要約:S\n\nニュース記事:かき。くけ。\n要約:")
    # limit 10: 5 each; a first sentence longer than the share is cut to its first 5 tokens, then SEP.
    assert trim.xlsum_trim(ctx, 10, p, CharTokenizer()) == head + "ニュース記\n要約:S\n\nニュース記\n要約:"


def test_xlsum_05_keeps_its_doubled_newline_after_trimming():
    p = PROMPTS["xlsum_ja"]["0.5"]
    ctx = p["D"] + "ユーザー: ニュース記事:あ。い。う。え。お。か。\nシステム: "
    # 2 pieces (the description turn counts as one), 20 tokens each; SEP "\n" + SUM_TAG "\nシステム: " doubles.
    assert trim.xlsum_trim(ctx, 40, p, CharTokenizer()) == (
        "ユーザー: 与えられたニュース記事を要約\n\nシステム: 分かりました。\n"
        "ユーザー: ニュース記事:あ。い。う。え。\n\nシステム: ")


def test_mgsm_trim_drops_oldest_exemplar_and_03_cannot_trim():
    ctx = "問題：一\n答1\n\n問題：二\n答2\n\n問題：三\n"
    assert trim.mgsm_trim(ctx, len(ctx) - 1, CharTokenizer()) == "問題：二\n答2\n\n問題：三\n"
    with pytest.raises(ValueError):
        trim.mgsm_trim("### 入力:\n一\n", 3, CharTokenizer())


def test_untrimmable_prompt_names_the_document(root):
    spec = parse_task("mgsm-1.0-0.3")
    with pytest.raises(ChowaError, match=r"mgsm-1.0-0.3 document .*cannot trim"):
        build_instances(spec, load_task_data("mgsm", root), limit=1, tokenizer=CharTokenizer(), max_length=300)


def test_long_xlsum_prompts_are_trimmed_to_fit(tmp_path):
    root = write_jglue_root(tmp_path / "long", long_texts=True)
    tok = CharTokenizer()
    spec, data = parse_task("xlsum_ja-1.0-0.3"), load_task_data("xlsum_ja", root)
    # The rule budgets article bodies only (not the description or summaries), so it shortens without
    # guaranteeing a fit; generation's left truncation does the rest, as in the reference.
    for full, cut in zip(build_instances(spec, data), build_instances(spec, data, tokenizer=tok, max_length=400)):
        assert len(cut.prompt) < len(full.prompt) and cut.prompt.startswith(ALP) and cut.prompt.endswith("### 応答:\n")
        assert cut.prompt.count("### 指示:") == 2 and "第39文" in full.prompt and "第39文" not in cut.prompt


def test_only_jaqket_02_is_trimmed_and_mgsm_drops_whole_exemplars(root):
    data, tok = load_task_data("jaqket_v2", root), CharTokenizer()
    legacy = parse_task("jaqket_v2-0.1-0.1")
    assert [i.prompt for i in build_instances(legacy, data, tokenizer=tok, max_length=200)] == \
        [i.prompt for i in build_instances(legacy, data)]  # legacy 0.1: only generation's left truncation
    current = parse_task("jaqket_v2-0.2-0.2")
    full = build_instances(current, data)[0].prompt
    cut = build_instances(current, data, tokenizer=tok, max_length=len(full) + 1)[0]
    assert cut.prompt == full.split("\n\n")[0] + "\n\n" + full.split("\n\n", 2)[2]  # the one shot block went
    mgsm = parse_task("mgsm-1.0-0.4")
    full = build_instances(mgsm, load_task_data("mgsm", root))[0].prompt
    cut = build_instances(mgsm, load_task_data("mgsm", root), tokenizer=tok, max_length=256 + len(full) - 1)[0]
    assert cut.prompt.count("問題：") == full.count("問題：") - 1 and cut.prompt.endswith(full[-60:])
