"""Every prompt version of the JGLUE harness behind the rinna and weblab model cards, as data.

Each version is a dict: `D` description (absent means ""), `S` separator between few-shot examples, `T` the
`str.format` template of a document, `SEP` the stop string of generation tasks, `C` fixed choices, and for
JAQKET `T_SHOT` (the answer-passage-only shot template) and for xlsum_ja the `CTX_TAG`/`SUM_TAG` markers the
trimmer splits on. The strings are byte-exact copies of the reference's, quirks included (`"<NL>"` is four
literal characters; full-width and ASCII colons differ on purpose).

Run as (from Python):
    from chowa.eval.jglue.prompts import PROMPTS
    print(PROMPTS["jsquad"]["0.3"]["T"])
"""

from __future__ import annotations

# The Japanese-Alpaca preamble shared by every 0.3 prompt.
ALP = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"

JCQA = {
    "0.1": dict(
        D="[問題]に対する[答え]を[選択肢]の中から選んでください。\n\n",
        S="\n\n",
        T="[問題]:{question}\n[選択肢]:[{c0}, {c1}, {c2}, {c3}, {c4}]\n[答え]:",
    ),
    "0.2": dict(
        D="質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。"
            "なお、回答は選択肢の番号(例:0)でするものとします。 \n\n",
        S="\n\n",
        T="質問:{question}\n選択肢:0.{c0},1.{c1},2.{c2},3.{c3},4.{c4}\n回答:",
    ),
    "0.3": dict(
        D=ALP,
        S="\n\n",
        T="### 指示:\n与えられた選択肢の中から、最適な答えを選んでください。"
            "出力は以下から選択してください：\n- {c0}\n- {c1}\n- {c2}\n- {c3}\n- {c4}\n\n### 入力:\n"
            "{question}\n\n### 応答:\n",
    ),
    "0.4": dict(
        D="ユーザー: 与えられた選択肢の中から、最適な答えを選んでください。<NL>システム: 分かりました。<NL>",
        S="<NL>",
        T="ユーザー: 質問：{question}<NL>選択肢：<NL>- {c0}<NL>- {c1}<NL>- {c2}<NL>- {c3}<NL>- {c4}<NL>"
            "システム: ",
    ),
    "0.5": dict(
        D="ユーザー: 与えられた選択肢の中から、最適な答えを選んでください。\nシステム: 分かりました。\n",
        S="\n",
        T="ユーザー: 質問：{question}\n選択肢：\n- {c0}\n- {c1}\n- {c2}\n- {c3}\n- {c4}\nシステム: ",
    ),
}

JNLI = {
    "0.2": dict(
        D="前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。\n\n制約:\n"
            "- 前提から仮説が、論理的知識や常識的知識を用いて導出可能である場合はentailmentと出力\n"
            "- 前提と仮説が両立しえない場合はcontradictionと出力\n- そのいずれでもない場合はneutralと出力\n"
            "\n",
        S="\n\n",
        T="前提:{premise}\n仮説:{hypothesis}\n関係:",
    ),
    "0.3": dict(
        D=ALP,
        S="\n\n",
        T="### 指示:\n与えられた前提と仮説の関係を回答してください。\n\n出力は以下から選択してください："
            "\nentailment\ncontradiction\nneutral\n\n### 入力:\n前提：{premise}\n仮説：{hypothesis}\n\n"
            "### 応答:\n",
    ),
    "0.4": dict(
        D="ユーザー: 与えられた前提と仮説の関係を回答してください。出力は以下から選択してください：<NL>"
            "entailment<NL>contradiction<NL>neutral<NL>システム: 分かりました。<NL>",
        S="<NL>",
        T="ユーザー: 前提：{premise}<NL>仮説：{hypothesis}<NL>システム: ",
    ),
    "0.5": dict(
        D="ユーザー: 与えられた前提と仮説の関係を回答してください。出力は以下から選択してください：\n"
            "entailment\ncontradiction\nneutral\nシステム: 分かりました。\n",
        S="\n",
        T="ユーザー: 前提：{premise}\n仮説：{hypothesis}\nシステム: ",
    ),
}

MARC = {
    "0.2": dict(
        D="製品レビューをnegativeかpositiveのいずれかのセンチメントに分類してください。"
            "出力は小文字化してください。 \n\n",
        S="\n\n",
        T="製品レビュー:{sentence}\nセンチメント:",
        C=["positive", "negative"],
    ),
    "0.3": dict(
        D=ALP,
        S="\n\n",
        C=["ポジティブ", "ネガティブ"],
        T="### 指示:\n"
            "以下の製品レビューを、ポジティブまたはネガティブの感情クラスのいずれかに分類してください。\n\n"
            "### 入力:\n{sentence}\n\n### 応答:\n",
    ),
    "0.4": dict(
        D="ユーザー: 与えられた製品レビューを、ポジティブまたはネガティブの感情クラスのいずれかに分類してください。"
            "<NL>システム: 分かりました。<NL>",
        S="<NL>",
        T="ユーザー: {sentence}<NL>システム: ",
        C=["ポジティブ", "ネガティブ"],
    ),
    "0.5": dict(
        D="ユーザー: 与えられた製品レビューを、ポジティブまたはネガティブの感情クラスのいずれかに分類してください。"
            "\nシステム: 分かりました。\n",
        S="\n",
        T="ユーザー: {sentence}\nシステム: ",
        C=["ポジティブ", "ネガティブ"],
    ),
}

JSQUAD = {
    "0.1": dict(
        D="[題名]と[問題]から[質問]に対する[答え]を抜き出しなさい\n\n",
        SEP="\n",
        S="\n\n",
        T="[題名]:{title}\n[問題]:{passage}\n[質問]:{question}\n[答え]:",
    ),
    "0.2": dict(
        D="質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。\n\n",
        SEP="\n",
        S="\n\n",
        T="文章:{passage}\n質問:{question}\n回答:",
    ),
    "0.3": dict(
        D=ALP,
        SEP="\n",
        S="\n\n",
        T="### 指示:\n与えられた文脈から、質問に対する答えを抜き出してください。\n\n### 入力:\n文脈："
            "{passage}\n質問：{question}\n\n### 応答:\n",
    ),
    "0.4": dict(
        D="ユーザー: 与えられた文脈から、質問に対する答えを抜き出してください。<NL>"
            "システム: 分かりました。<NL>",
        SEP="<NL>",
        S="<NL>",
        T="ユーザー: 文脈：{passage}<NL>質問：{question}<NL>システム: ",
    ),
    "0.5": dict(
        D="ユーザー: 与えられた文脈から、質問に対する答えを抜き出してください。\nシステム: 分かりました。\n",
        SEP="\n",
        S="\n",
        T="ユーザー: 文脈：{passage}\n質問：{question}\nシステム: ",
    ),
}

JAQKET = {
    "0.1": dict(
        D="[題名]と[問題]から[質問]に対する[答え]を抜き出しなさい\n\n",
        SEP="\n",
        S="\n\n",
        T="{titled}\n[質問]:{question}\n[答え]:",
        T_SHOT="[題名]:{a_title}\n[問題]:{a_text}\n[質問]:{question}\n[答え]:",
    ),
    "0.2": dict(
        D="質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。\n\n",
        SEP="\n",
        S="\n\n",
        T="文章:{ctxs}\n質問:{question}\n回答:",
        T_SHOT="文章:{a_text}\n質問:{question}\n回答:",
    ),
    "0.3": dict(
        D=ALP,
        SEP="\n",
        S="\n\n",
        T="### 指示:\n与えられた文脈から、質問に対する答えを抜き出してください。\n\n### 入力:\n文脈："
            "{ctxs}\n質問：{question}\n\n### 応答:\n",
        T_SHOT="### 指示:\n与えられた文脈から、質問に対する答えを抜き出してください。\n\n### 入力:\n文脈："
            "{a_text}\n質問：{question}\n\n### 応答:\n",
    ),
    "0.4": dict(
        D="ユーザー: 与えられた文脈から、質問に対する答えを抜き出してください。<NL>"
            "システム: 分かりました。<NL>",
        SEP="<NL>",
        S="<NL>",
        T="ユーザー: 文脈：{ctxs}<NL>質問：{question}<NL>システム: ",
        T_SHOT="ユーザー: 文脈：{a_text}<NL>質問：{question}<NL>システム: ",
    ),
    "0.5": dict(
        D="ユーザー: 与えられた文脈から、質問に対する答えを抜き出してください。\nシステム: 分かりました。\n",
        SEP="\n",
        S="\n",
        T="ユーザー: 文脈：{ctxs}\n質問：{question}\nシステム: ",
        T_SHOT="ユーザー: 文脈：{a_text}\n質問：{question}\nシステム: ",
    ),
}

XLSUM = {
    "0.0": dict(
        D="与えられたニュース記事を要約してください。\n\n",
        SEP="\n",
        S="\n\n",
        T="ニュース記事:{text}\n要約:",
        CTX_TAG="ニュース記事:",
        SUM_TAG="要約:",
    ),
    "0.3": dict(
        D=ALP,
        SEP="\n",
        S="\n\n",
        T="### 指示:\n与えられたニュース記事を要約してください。\n\n### 入力:\nニュース記事:{text}\n\n"
            "### 応答:\n",
        CTX_TAG="### 指示:\n与えられたニュース記事を要約してください。\n\n### 入力:\n",
        SUM_TAG="### 応答:\n",
    ),
    "0.4": dict(
        D="ユーザー: 与えられたニュース記事を要約してください。<NL>システム: 分かりました。<NL>",
        SEP="<NL>",
        S="<NL>",
        T="ユーザー: ニュース記事:{text}<NL>システム: ",
        CTX_TAG="ユーザー: ",
        SUM_TAG="<NL>システム: ",
    ),
    "0.5": dict(
        D="ユーザー: 与えられたニュース記事を要約してください。\nシステム: 分かりました。\n",
        SEP="\n",
        S="\n",
        T="ユーザー: ニュース記事:{text}\nシステム: ",
        CTX_TAG="ユーザー: ",
        SUM_TAG="\nシステム: ",
    ),
}

MGSM = {
    "0.0": dict(
        SEP="\n",
        S="\n\n",
        T="問題：{q}\nステップごとの答え：",
    ),
    # 0.3 really lacks the blank line before "### 入力:" (fixed only after the pinned commit).
    "0.3": dict(
        D=ALP,
        SEP="\n",
        S="\n\n",
        T="### 指示:\n与えられた問題に対して、ステップごとに答えを導き出してください。### 入力:\n{q}\n\n"
            "### 応答:\n",
    ),
    "0.4": dict(
        D="ユーザー: 与えられた問題をステップごとに解説してください。<NL>システム: 分かりました。<NL>",
        SEP="\n",
        S="<NL>",
        T="ユーザー: 問題：{q}<NL>システム: ステップごとの答え：",
    ),
    # 0.5 keeps a literal "<NL>" in its template, as the reference does.
    "0.5": dict(
        D="ユーザー: 与えられた問題をステップごとに解説してください。\nシステム: 分かりました。\n",
        SEP="\n",
        S="\n",
        T="ユーザー: 問題：{q}<NL>システム: ステップごとの答え：",
    ),
}

PROMPTS: dict[str, dict[str, dict]] = {
    "jcommonsenseqa": JCQA, "jnli": JNLI, "marc_ja": MARC, "jsquad": JSQUAD,
    "jaqket_v2": JAQKET, "xlsum_ja": XLSUM, "mgsm": MGSM,
}
