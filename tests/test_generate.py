"""Generation and chat: batched equals one-at-a-time, streaming equals batch output, chat runs from stdin."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import pytest
import sentencepiece as spm

from chowa import chat
from chowa.data.prompts import read_prompts
from chowa.errors import ChowaError
from chowa.formats import encode_prompt
from chowa.generate import Sampling, generate_replies, load_chat_model, stream_reply
from chowa.tokenizer.load import SentencePieceTokenizer

PROMPTS = ["猫を2回書いてください。", "Write 'tea' 3 times.", "こんにちは", "What is 3 plus 4?", "雨"]
GREEDY = Sampling(greedy=True, max_new_tokens=12)


def _conversations(texts: list[str]) -> list[list[dict]]:
    return [[{"role": "user", "content": text}] for text in texts]


def test_batched_generation_equals_one_at_a_time(tiny_model_dir):
    model = load_chat_model(tiny_model_dir, "rinna")
    batched = generate_replies(model, _conversations(PROMPTS), GREEDY, batch_size=5)
    single = [generate_replies(model, _conversations([text]), GREEDY, batch_size=1)[0] for text in PROMPTS]
    assert batched == single and any(batched)


def test_sampled_replies_do_not_depend_on_the_batch(tiny_model_dir):
    """Each prompt samples from its own seeded stream (#13: a seeded comparison must not change with --batch-size)."""
    model = load_chat_model(tiny_model_dir, "rinna")
    sampled = Sampling(max_new_tokens=12, temperature=1.0, seed=5)
    runs = [generate_replies(model, _conversations(PROMPTS), sampled, batch_size=size) for size in (1, 2, 5)]
    assert runs[0] == runs[1] == runs[2] and len(set(runs[0])) > 1
    assert generate_replies(model, _conversations(PROMPTS), Sampling(max_new_tokens=12, seed=6)) != runs[0]
    streamed: list[str] = []  # the terminal's reply is the first prompt's stream too
    assert stream_reply(model, _conversations(PROMPTS[:1])[0], sampled, streamed.append) == runs[0][0]
    model.model.generation_config.min_p = 1.0  # a model's own filter still applies: only the likeliest token is left
    try:
        assert generate_replies(model, _conversations(PROMPTS), sampled) == generate_replies(
            model, _conversations(PROMPTS), GREEDY)
    finally:
        model.model.generation_config.min_p = None


def test_each_row_samples_from_its_own_distribution():
    """The per-prompt sampler's draws follow the row's probabilities and never pick an impossible token."""
    import torch

    from chowa.generate import _RowSampler

    probs = torch.tensor([[0.5, 0.3, 0.2, 0.0, 0.0], [0.0, 0.0, 0.1, 0.0, 0.9]])
    sampler, counts = _RowSampler([11, 12]), torch.zeros_like(probs)
    for _ in range(20000):
        counts += (sampler(None, probs.log()) == 0).float()
    assert torch.allclose(counts / 20000, probs, atol=0.015) and counts[probs == 0].sum() == 0
    pair, alone = _RowSampler([11, 12]), _RowSampler([12])  # row 2's stream in a batch and alone: the same draws
    batched = [int(pair(None, probs.log())[1].argmax()) for _ in range(200)]
    assert batched == [int(alone(None, probs[1:].log())[0].argmax()) for _ in range(200)] and len(set(batched)) == 2


def test_chat_drops_the_oldest_turns_that_no_longer_fit(tiny_model_dir, capsys):
    model = load_chat_model(tiny_model_dir, "rinna")
    context = model.model.config.max_position_embeddings
    history = []
    for turn in range(8):
        history += [{"role": "user", "content": f"質問{turn} " + "猫" * (context // 12)},
                    {"role": "assistant", "content": "はい"}]
    history.append({"role": "user", "content": "最後の質問"})
    reply = stream_reply(model, history, GREEDY, lambda text: None)
    assert isinstance(reply, str) and history[-1]["content"] == "最後の質問" and len(history) < 17
    assert capsys.readouterr().err.count(" no longer fit the model's context") == 1
    too_long = [*history, {"role": "assistant", "content": "はい"}, {"role": "user", "content": "猫" * context}]
    with pytest.raises(ChowaError, match="fills the model's context"):
        stream_reply(model, too_long, GREEDY, lambda text: None)
    assert len(too_long) == len(history) + 2  # nothing dropped by a turn that is refused


@pytest.fixture(scope="module")
def short_context_model(tmp_path_factory, tokenizer_dir):
    """A random GPT-NeoX that reads 64 positions, so replies run into the end of the context."""
    from chowa.models.build import build_model
    from chowa.tokenizer import load_tokenizer

    out = tmp_path_factory.mktemp("short-context")
    tokenizer = load_tokenizer(tokenizer_dir)
    build_model("tiny", tokenizer=tokenizer, seed=1, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=64).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return load_chat_model(out, "rinna")


def test_replies_stop_at_the_end_of_the_context_whatever_the_batch(short_context_model):
    """The rinna card's 512 new tokens on a smaller model: each reply gets what its own prompt leaves (#13)."""
    model, texts = short_context_model, ["猫", "What is 3 plus 4?", "こんにちは、元気ですか"]
    unbounded = Sampling(greedy=True, max_new_tokens=512)
    batched = generate_replies(model, _conversations(texts), unbounded, batch_size=3)
    assert batched == [generate_replies(model, _conversations([t]), unbounded)[0] for t in texts]
    for text, reply in zip(texts, batched, strict=True):
        room = 64 - len(encode_prompt(_conversations([text])[0], model.format, model.tokenizer))
        assert 0 < room < 64
        exact = Sampling(greedy=True, max_new_tokens=room)
        assert reply == generate_replies(model, _conversations([text]), exact)[0]
    sampled = Sampling(max_new_tokens=512, seed=3)
    assert generate_replies(model, _conversations(texts), sampled, batch_size=3) == generate_replies(
        model, _conversations(texts), sampled, batch_size=1)
    with pytest.raises(ChowaError, match=r"prompts.jsonl:2: \d+ tokens fill the model's context of 64 positions"):
        generate_replies(model, _conversations(["猫", "猫" * 100]), unbounded, names=["prompts.jsonl:1",
                                                                                       "prompts.jsonl:2"])


def test_streamed_reply_equals_batch_reply(tiny_model_dir):
    model = load_chat_model(tiny_model_dir, "rinna")
    pieces: list[str] = []
    reply = stream_reply(model, _conversations(PROMPTS[:1])[0], GREEDY, pieces.append)
    assert "".join(pieces) == reply == generate_replies(model, _conversations(PROMPTS[:1]), GREEDY)[0]


def test_format_defaults_and_overrides():
    from chowa.formats import get_format

    assert Sampling().resolve(get_format("rinna-nl"))["repetition_penalty"] == 1.1
    bilingual = Sampling().resolve(get_format("rinna"))
    assert (bilingual["temperature"], bilingual["top_p"]) == (1.0, 0.85)
    weblab = Sampling(top_p=0.5).resolve(get_format("alpaca-ja"))
    assert (weblab["temperature"], weblab["top_p"]) == (0.7, 0.5)
    assert "temperature" not in Sampling(greedy=True).resolve(get_format("rinna"))
    assert "ユーザー:" in Sampling(stop=["END"]).resolve(get_format("rinna"))["stop_strings"]


def test_chat_reads_turns_and_commands_from_stdin(tiny_model_dir):
    stdout = io.StringIO()
    code = chat.run_session(load_chat_model(tiny_model_dir, "rinna"), GREEDY,
                     io.StringIO("こんにちは\n/reset\n/help\nhello\n/quit\n"), stdout)
    text = stdout.getvalue()
    assert code == 0 and text.count("> ") == 5 and "(new conversation)" in text and "unknown command '/help'" in text


def test_chat_command_in_a_subprocess(tiny_model_dir):
    result = subprocess.run([sys.executable, "-m", "chowa", "chat", "--model", str(tiny_model_dir), "--format",
                             "rinna", "--greedy", "--max-new-tokens", "6"], input="こんにちは\nhello\n",
                            capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("chowa chat (rinna format)") and result.stdout.count("> ") == 3


def test_library_noise_only_with_verbose(tiny_model_dir):
    """transformers' load report stays off the terminal unless --verbose (#13)."""
    quiet = ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY", "TRANSFORMERS_NO_ADVISORY_WARNINGS",
             "HF_HUB_DISABLE_PROGRESS_BARS")  # (in-process CLI calls of other tests set them in this process)
    env = {k: v for k, v in os.environ.items() if k not in quiet} | {"HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-m", "chowa", "generate", "--model", str(tiny_model_dir), "--format", "rinna",
            "--prompt", "hi", "--greedy", "--max-new-tokens", "2"]
    plain = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    verbose = subprocess.run([*argv, "--verbose"], capture_output=True, text=True, timeout=300, env=env)
    assert plain.returncode == verbose.returncode == 0 and plain.stdout == verbose.stdout
    assert "Loading weights" in verbose.stderr and "Loading weights" not in plain.stderr


def test_generate_input_file_writes_a_reply_per_record(tmp_path, tiny_model_dir):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"instruction": "猫を2回書いてください。", "id": 1},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "drop me"}], "id": 2},
        {"prompt": "雨", "id": 3}]) + "\n", encoding="utf-8")
    out = tmp_path / "replies.jsonl"
    from chowa.cli import main as cli_main

    assert cli_main(["generate", "--model", str(tiny_model_dir), "--format", "rinna", "--input", str(prompts),
                     "--out", str(out), "--greedy", "--max-new-tokens", "5", "--batch-size", "2"]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == [1, 2, 3] and all(isinstance(r["reply"], str) for r in records)
    prompts.write_text('{"text": "no prompt here"}\n', encoding="utf-8")
    with pytest.raises(ChowaError, match=rf"{prompts}:1: expected a field 'messages', 'instruction' or 'prompt'"):
        read_prompts([str(prompts)])


def test_rinna_layout_folder_gets_sentencepiece_tokenizer_and_format(tmp_path, tiny_model_dir, tokenizer_dir):
    """GPT-NeoX config + spiece.model + a T5Tokenizer config, as the rinna checkpoints ship."""
    folder = tmp_path / "rinna-layout"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, folder / name)
    shutil.copy(tokenizer_dir / "spiece.model", folder / "spiece.model")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "[PAD]",
        "bos_token": "<s>", "extra_ids": 0}))
    model = load_chat_model(folder)
    assert model.format.name == "rinna"  # no <NL> piece in this vocabulary
    assert isinstance(model.tokenizer, SentencePieceTokenizer)
    processor = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    text = "  吾輩は  猫である   "
    assert model.tokenizer(text, add_special_tokens=False).input_ids == processor.encode(text)
    assert generate_replies(model, _conversations(PROMPTS[:2]), GREEDY) is not None


class _Pieces:
    """A stand-in tokenizer whose ids index text pieces (decode joins them)."""

    eos_token = "</s>"

    def __init__(self, pieces: list[str]):
        self.pieces = pieces

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return "".join(self.pieces[i] for i in ids)


def test_streamed_text_shows_at_once_holds_what_may_become_a_stop_and_joins_into_the_whole_reply():
    from chowa.formats import FORMATS, clean_reply
    from chowa.generate import ReplyText, reply_watch

    fmt = FORMATS["rinna-nl"]
    pieces = ["猫", "です", "   ", "\n\n", "ね", "<N", "L>", "ユー", "ザー", "さん", "</", "s>"]
    tokenizer = _Pieces(pieces)
    text = ReplyText(tokenizer, lambda raw: clean_reply(raw, fmt, "</s>"), reply_watch(fmt, tokenizer))
    shown = [text.update(list(range(n)), False) for n in range(1, len(pieces))]
    shown.append(text.update(list(range(len(pieces))), True))
    assert shown[:2] == ["猫", "です"]  # no fixed hold-back: text shows as soon as it is settled
    assert shown[2:4] == ["", ""] and shown[4] == "   \n\nね"  # trailing spaces wait for what follows them
    assert shown[5:9] == [""] * 4  # "<N" might start <NL>; "\n" is trailing; "ユーザー" might become "ユーザー:"
    assert shown[9] == "\nユーザーさん" and shown[10:] == ["", ""]  # "</" might start EOS, which is cut
    assert "".join(shown) == clean_reply("".join(pieces), fmt, "</s>") == "猫です   \n\nね\nユーザーさん"
