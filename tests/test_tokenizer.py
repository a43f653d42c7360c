"""Tokenizer training, exact Hugging Face conversion, rinna-format loading, input encodings."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import sentencepiece as spm
from transformers import AutoTokenizer

from chowa.cli import main as cli_main
from chowa.config import load_config
from chowa.data.records import read_documents
from chowa.errors import ChowaError
from chowa.tokenizer import load_tokenizer
from chowa.tokenizer.stats import tokenizer_stats
from chowa.tokenizer.train import TokenizerTrainConfig
from chowa.tokenizer.train import main as train_tokenizer
from conftest import HARD_STRINGS


def _train(inputs: list[Path], out: Path, **overrides) -> Path:
    settings = [f"{key}={value}" for key, value in overrides.items()]
    cfg = load_config(TokenizerTrainConfig, overrides=[f"out={out}", *settings],
                      flags={"input": [str(p) for p in inputs]})
    return train_tokenizer(cfg)


def _assert_exact(folder: Path, texts: list[str]) -> None:
    """Plain transformers (no chowa) gives SentencePiece's ids and decodes every text losslessly."""
    processor = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    plain = AutoTokenizer.from_pretrained(str(folder))
    for text in texts:
        ids = plain(text, add_special_tokens=False, verbose=False)["input_ids"]
        assert ids == processor.encode(text), repr(text)
        assert plain.decode(ids) == text, repr(text)


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_project_corpus_tokenizer_is_exact_in_plain_transformers(tmp_path, project_corpus, model_type):
    folder = _train(project_corpus, tmp_path / "tok", vocab_size=420, model_type=model_type)
    texts = [doc for _, _, doc in read_documents([str(p) for p in project_corpus])]
    _assert_exact(folder, texts + HARD_STRINGS)
    assert {"<unk>", "<s>", "</s>", "[PAD]"} <= set(AutoTokenizer.from_pretrained(str(folder)).all_special_tokens)
    assert (folder / "config.yaml").is_file()
    assert json.loads((folder / "metrics.jsonl").read_text())["hf_sentencepiece_mismatches"] == 0


def test_nl_token_mode_keeps_nl_whole(tmp_path, project_corpus):
    folder = _train(project_corpus, tmp_path / "tok", vocab_size=420, newline="nl-token")
    plain = AutoTokenizer.from_pretrained(str(folder))
    nl_id = plain.convert_tokens_to_ids("<NL>")
    texts = ["ユーザー: こんにちは<NL>システム: ", "<NL><NL>a<NL", "x <NL> y", "<NL>" + "-" * 20]
    _assert_exact(folder, texts + HARD_STRINGS)
    assert plain("a<NL>b", add_special_tokens=False)["input_ids"].count(nl_id) == 1


def test_crlf_is_not_trained_as_carriage_return(tmp_path):
    corpus = tmp_path / "crlf.txt"
    corpus.write_bytes(("吾輩は猫である。名前はまだ無い。\r\n" * 50 + "The cat has no name yet.\r\n" * 50).encode())
    folder = _train([corpus], tmp_path / "tok", vocab_size=288)
    vocab = AutoTokenizer.from_pretrained(str(folder)).get_vocab()
    assert not any("\r" in piece for piece in vocab)
    _assert_exact(folder, ["名前はまだ無い。\r\n次の行\r\n"])


def test_shift_jis_input_needs_encoding(tmp_path, capsys):
    sjis = tmp_path / "sjis.txt"
    sjis.write_bytes("吾輩は猫である。\n名前はまだ無い。\n".encode("cp932") * 40)
    code = cli_main(["tokenizer", "train", "--input", str(sjis), "--vocab-size", "274", "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(sjis) in err and "byte offset 0" in err and "--encoding shift_jis" in err
    assert "Traceback" not in err
    for encoding in ("shift_jis", "auto"):
        folder = _train([sjis], tmp_path / encoding, vocab_size=274, encoding=encoding)
        assert "猫" in AutoTokenizer.from_pretrained(str(folder)).decode(
            AutoTokenizer.from_pretrained(str(folder))("猫")["input_ids"])


def test_rinna_format_folder_gives_sentencepiece_ids(tmp_path, project_corpus):
    """A folder with spiece.model + a T5Tokenizer config, as the rinna checkpoints ship, scores left raw."""
    model = io.BytesIO()
    texts = [doc for _, _, doc in read_documents([str(p) for p in project_corpus])]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=420, byte_fallback=True,
        add_dummy_prefix=False, remove_extra_whitespaces=False, split_digits=True, character_coverage=0.9995,
        normalization_rule_name="identity", pad_id=0, pad_piece="[PAD]", unk_id=1, bos_id=2, eos_id=3,
        user_defined_symbols=["<NL>"], minloglevel=2,
    )
    folder = tmp_path / "rinna"
    folder.mkdir()
    (folder / "spiece.model").write_bytes(model.getvalue())
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "T5Tokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "[PAD]", "extra_ids": 0, "do_lower_case": False}))
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    tokenizer = load_tokenizer(folder)
    for text in HARD_STRINGS + ["ユーザー: 猫<NL>システム: ", "-" * 31 + "." * 9] + texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids == processor.encode(text), repr(text)
        assert tokenizer.decode(ids) == processor.decode(ids) == text, repr(text)
    assert tokenizer.eos_token_id == 3 and tokenizer.pad_token_id == 0
    assert tokenizer.convert_ids_to_tokens(tokenizer("  吾輩は")["input_ids"]) == processor.encode("  吾輩は",
                                                                                                  out_type=str)


def test_real_japanese_and_english_text_8k_vocab(tmp_path, shared_data):
    inputs = [shared_data / name for name in ("wagahaiwa_nekodearu.txt", "botchan.txt",
                                               "tatoeba.jpn-eng.ja", "tatoeba.jpn-eng.en")]
    folder = _train(inputs, tmp_path / "tok", vocab_size=8000)
    report = tokenizer_stats(str(folder), [str(p) for p in inputs])
    assert report["lines"] > 8000
    assert report["round_trip_all"] and report["sentencepiece_ids_equal_all"]
    assert report["unknown_rate"] == 0.0


def test_missing_input_file_is_named(tmp_path):
    with pytest.raises(ChowaError, match="no such file: .*nope.txt"):
        _train([tmp_path / "nope.txt"], tmp_path / "tok")


def test_a_folder_without_tokenizer_files_is_named(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ChowaError, match="no tokenizer files"):
        load_tokenizer(tmp_path)
