"""Chat formats: the model cards' strings, HF chat_template parity, loss masks, reply clean-up, format detection."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from chowa.config import load_config
from chowa.errors import ChowaError
from chowa.formats import (
    FORMATS,
    chat_template,
    clean_reply,
    detect_format,
    encode_prompt,
    render_conversation_file,
    render_prompt,
    render_segments,
    render_text,
    render_training,
    save_format,
)
from chowa.inspection import mark_trained
from chowa.tokenizer.train import TokenizerTrainConfig
from chowa.tokenizer.train import main as train_tokenizer


def _conversation(*texts: str, system: str | None = None) -> list[dict]:
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(texts)]


CARD_RINNA_NL = _conversation(
    "コンタクトレンズを慣れるにはどうすればよいですか?",
    "これについて具体的に説明していただけますか?何が難しいのでしょうか?",
    "目が痛いのです。",
    "分かりました、コンタクトレンズをつけると目がかゆくなるということですね。思った以上にレンズを外す必要があるでしょうか?",
    "いえ、レンズは外しませんが、目が赤くなるんです。",
)
SINGLE = _conversation("猫の名前を\n考えてください。", "タマはどうでしょう。\nSure, how about Tama?")
MULTI = _conversation("こんにちは", "こんにちは!ご用件は?", "VRとは何ですか。",
                      "仮想現実のことです。\n- 例: VRゴーグル", "ありがとう", "どういたしまして。")
WITH_INPUT = [{"role": "user", "content": "次の文を英訳してください。", "input": "今日は雨です。"},
              {"role": "assistant", "content": "It is raining today."}]
WITH_SYSTEM = _conversation("Hi!", "Hello, how can I help?", "Tell me a joke.", "Why did the cat sit on the laptop?",
                            system="You are a cheerful assistant.\nAnswer briefly.")


def _cases(name: str) -> list[list[dict]]:
    cases = [SINGLE, MULTI, WITH_INPUT, CARD_RINNA_NL + [{"role": "assistant", "content": "それは大変ですね。"}]]
    return cases + ([WITH_SYSTEM] if FORMATS[name].preamble is not None else [])


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory, project_corpus) -> dict[str, object]:
    """A byte-newline tokenizer (rinna, alpaca-ja, vicuna) and an <NL> one (rinna-nl), trained in process."""
    out = {}
    for newline in ("byte", "nl-token"):
        folder = tmp_path_factory.mktemp(newline)
        cfg = load_config(TokenizerTrainConfig, overrides=[f"out={folder}", "vocab_size=400", f"newline={newline}"],
                          flags={"input": [str(p) for p in project_corpus]})
        out[newline] = AutoTokenizer.from_pretrained(str(train_tokenizer(cfg)))
    return out


def _tokenizer_for(name: str, tokenizers: dict):
    return tokenizers["nl-token" if name == "rinna-nl" else "byte"]


def test_rinna_nl_card_prompt_exactly():
    assert render_prompt(CARD_RINNA_NL, "rinna-nl") == (
        "ユーザー: コンタクトレンズを慣れるにはどうすればよいですか?<NL>"
        "システム: これについて具体的に説明していただけますか?何が難しいのでしょうか?<NL>"
        "ユーザー: 目が痛いのです。<NL>"
        "システム: 分かりました、コンタクトレンズをつけると目がかゆくなるということですね。"
        "思った以上にレンズを外す必要があるでしょうか?<NL>"
        "ユーザー: いえ、レンズは外しませんが、目が赤くなるんです。<NL>"
        "システム: ")


def test_rinna_bilingual_card_prompt_exactly():
    conversation = _conversation("Hello, you are an assistant that helps me learn Japanese.",
                                 "Sure, what can I do for you?", "VRはなんですか。")
    assert render_prompt(conversation, "rinna") == (
        "ユーザー: Hello, you are an assistant that helps me learn Japanese.\nシステム: Sure, what can I do for you?\n"
        "ユーザー: VRはなんですか。\nシステム: ")


def test_alpaca_ja_card_prompts_exactly():
    assert render_prompt(_conversation("猫について教えて"), "alpaca-ja") == (
        "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。\n\n"
        "### 指示:\n猫について教えて\n\n### 応答:")
    assert render_prompt(WITH_INPUT[:1], "alpaca-ja") == (
        "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"
        "### 指示:\n次の文を英訳してください。\n\n### 入力:\n今日は雨です。\n\n### 応答:")


def test_vicuna_card_prompt_exactly():
    assert render_prompt(_conversation("What is VR?"), "vicuna-v1.1") == (
        "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the human's questions. USER: What is VR?\nASSISTANT:")
    assert render_prompt(WITH_SYSTEM[:4], "vicuna-v1.1").startswith(
        "You are a cheerful assistant.\nAnswer briefly. USER: Hi!\nASSISTANT: Hello, how can I help?</s>USER: ")


@pytest.mark.parametrize("name", list(FORMATS))
def test_saved_chat_template_renders_like_chowa(tmp_path, tokenizers, name):
    tokenizer = _tokenizer_for(name, tokenizers)
    tokenizer.chat_template = chat_template(name)
    tokenizer.save_pretrained(str(tmp_path))
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path))
    for conversation in _cases(name):
        assert reloaded.apply_chat_template(conversation[:-1], add_generation_prompt=True, tokenize=False) == \
            render_prompt(conversation[:-1], name)
        assert reloaded.apply_chat_template(conversation, tokenize=False) == \
            render_text(conversation, name, eos_token=reloaded.eos_token)
    assert detect_format(tmp_path) is FORMATS[name]


def test_rinna_formats_reject_system_messages(tmp_path, tokenizers):
    with pytest.raises(ChowaError, match="no place for a system message"):
        render_prompt(WITH_SYSTEM[:2], "rinna-nl")
    tokenizer = tokenizers["byte"]
    tokenizer.chat_template = chat_template("rinna")
    with pytest.raises(Exception, match="no place for a system message"):
        tokenizer.apply_chat_template(WITH_SYSTEM[:2], tokenize=False)


@pytest.mark.parametrize("name", list(FORMATS))
def test_loss_mask_covers_exactly_the_replies_and_eos(tokenizers, name):
    tokenizer = _tokenizer_for(name, tokenizers)
    fmt = FORMATS[name]
    for conversation in _cases(name):
        ids, mask = render_training(conversation, name, tokenizer)
        assert len(ids) == len(mask)
        replies = [m["content"].replace("\n", fmt.newline) for m in conversation if m["role"] == "assistant"]
        trained = [i for i, keep in zip(ids, mask) if keep]
        assert tokenizer.decode(trained) == "".join(fmt.reply_prefix + r + tokenizer.eos_token for r in replies)
        assert tokenizer.decode(ids) == render_text(conversation, name, eos_token=tokenizer.eos_token)
        assert trained.count(tokenizer.eos_token_id) == len(replies)
        # The prompt before the last reply is tokenized as at generation time.
        prompt_ids = encode_prompt(conversation[:-1], name, tokenizer)
        if fmt.eos_in_history:
            assert ids[:len(prompt_ids)] == prompt_ids
        if len(replies) == 1:
            assert prompt_ids == tokenizer.encode(render_prompt(conversation[:-1], name), add_special_tokens=False)
            assert mask == [0] * len(prompt_ids) + [1] * (len(ids) - len(prompt_ids))


def test_inspect_marks_trained_tokens(tokenizers):
    marked = mark_trained(SINGLE, "rinna-nl", tokenizers["nl-token"])
    assert marked == ("ユーザー: 猫の名前を<NL>考えてください。<NL>システム: "
                      "⟦タマはどうでしょう。<NL>Sure, how about Tama?</s>⟧")


def test_eos_after_every_reply_is_trained(tokenizers):
    tokenizer = tokenizers["byte"]
    ids, mask = render_training(MULTI, "rinna", tokenizer)
    eos_positions = [i for i, token in enumerate(ids) if token == tokenizer.eos_token_id]
    assert len(eos_positions) == 3 and all(mask[i] == 1 for i in eos_positions)
    assert mask[eos_positions[0] + 1] == 0  # the next user turn is not trained


def test_training_needs_a_final_reply_and_prompts_a_final_question():
    with pytest.raises(ChowaError, match="must end with an assistant"):
        render_text(MULTI[:-1], "rinna")
    with pytest.raises(ChowaError, match="message 1: expected an assistant"):
        render_prompt([MULTI[0], MULTI[0]], "rinna")


@pytest.mark.parametrize(("name", "raw", "clean"), [
    ("rinna-nl", "はい。<NL>一行目<NL>二行目</s>ユーザー: 次", "はい。\n一行目\n二行目"),
    ("rinna-nl", "分かりました。<NL>ユーザー: ありがとう", "分かりました。"),
    ("rinna", " Sure!\nシステム: again", "Sure!"),
    ("alpaca-ja", "\n猫は動物です。\n\n### 指示:\n次の質問", "猫は動物です。"),
    ("vicuna-v1.1", " VR is virtual reality.</s>USER: thanks", "VR is virtual reality."),
    ("vicuna-v1.1", " Fine.\nUSER: and you?", "Fine."),
])
def test_clean_reply(name, raw, clean):
    assert clean_reply(raw, name) == clean


def test_generation_defaults_and_stops_are_data():
    assert FORMATS["rinna-nl"].generation == {"do_sample": True, "max_new_tokens": 128, "temperature": 0.7,
                                              "repetition_penalty": 1.1}
    assert FORMATS["rinna"].generation["top_p"] == 0.85 and FORMATS["alpaca-ja"].generation["top_p"] == 0.95
    assert all(fmt.stop for fmt in FORMATS.values())


def test_segments_keep_prompt_text_together():
    segments = render_segments(SINGLE, "vicuna-v1.1")
    assert [s.trained for s in segments] == [False, True] and segments[1].eos
    assert segments[1].text.startswith(" タマ")


def test_detect_format(tmp_path):
    (tmp_path / "a").mkdir()
    save_format(tmp_path / "a", "alpaca-ja")
    assert detect_format(tmp_path / "a").name == "alpaca-ja"
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "chat_format.json").write_text(json.dumps({"format": "llama"}))
    with pytest.raises(ChowaError, match="chat_format.json: field 'format'"):
        detect_format(tmp_path / "bad")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChowaError, match="pass --format"):
        detect_format(tmp_path / "empty")


def test_detect_rinna_layout(tmp_path, project_corpus):
    import io

    import sentencepiece as spm

    lines = [line for line in project_corpus[0].read_text(encoding="utf-8").splitlines() if line.isascii()]
    for name, extra in (("rinna-nl", ["<NL>"]), ("rinna", [])):
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=320,
                                       byte_fallback=True, user_defined_symbols=extra, minloglevel=2)
        folder = tmp_path / name
        folder.mkdir()
        (folder / "spiece.model").write_bytes(model.getvalue())
        (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}))
        assert detect_format(folder).name == name


def test_render_conversation_file(tmp_path):
    path = tmp_path / "conversation.json"
    path.write_text(json.dumps({"messages": CARD_RINNA_NL}, ensure_ascii=False), encoding="utf-8")
    assert render_conversation_file(path, "rinna-nl") == render_prompt(CARD_RINNA_NL, "rinna-nl")
    path.write_text(json.dumps(SINGLE, ensure_ascii=False), encoding="utf-8")
    assert render_conversation_file(path, "rinna").endswith("Sure, how about Tama?</s>")
    path.write_text(json.dumps([{"role": "user", "content": 1}]), encoding="utf-8")
    with pytest.raises(ChowaError, match=r"conversation.json: messages\[0\]: content must be a string"):
        render_conversation_file(path, "rinna")
