"""Loading and saving tokenizer folders so Hugging Face ids always equal SentencePiece ids.

A chowa folder (`tokenizer.json` + `tokenizer_config.json` + `spiece.model`) loads with plain
`transformers.AutoTokenizer.from_pretrained`; its scores are quantized at training time so the fast tokenizer
matches SentencePiece exactly (see `convert.quantize_scores`). A rinna-format folder (`spiece.model` + a
`T5Tokenizer` config) does not load correctly in transformers 5.x, which converts it with T5's dummy prefix and
whitespace collapsing; `load_tokenizer` wraps the folder's SentencePiece model itself (`SentencePieceTokenizer`),
keeping the folder's special tokens, so the ids are SentencePiece's for any such folder.

Run as (from Python):
    tok = load_tokenizer("rinna/japanese-gpt-neox-3.6b-local-copy")
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import sentencepiece as spm
from transformers import AutoTokenizer, PreTrainedTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from chowa.errors import ChowaError
from chowa.files import check_folder
from chowa.folders import finish_folder
from chowa.tokenizer.convert import parse_model, sentencepiece_to_tokenizers, special_pieces

SENTENCEPIECE_FILES = ("spiece.model", "tokenizer.model", "sentencepiece.bpe.model")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "merges.txt",
                    *SENTENCEPIECE_FILES)
# Classes whose folders carry only a SentencePiece model and get the Llama/T5 conventions when converted.
_FAST_CLASSES = {None, "TokenizersBackend", "PreTrainedTokenizerFast"}


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    """A tokenizer for a local folder or hub name; SentencePiece folders give SentencePiece's exact ids;
    `bytes:CODEC` is the byte-group tokenizer with that codec (e.g. bytes:f4-utf8), no folder needed."""
    if str(path).startswith("bytes:"):
        from chowa.bytegroup.hf.codec_bytegroup import CODECS
        from chowa.bytegroup.hf.tokenization_bytegroup import ByteGroupTokenizer

        codec = str(path).removeprefix("bytes:")
        if codec not in CODECS:
            raise ChowaError(f"tokenizer: {path}: unknown byte codec {codec!r}; known: {', '.join(CODECS)}")
        return ByteGroupTokenizer(codec=codec)
    folder = Path(path)
    if not check_folder(path, "tokenizer"):
        try:
            return AutoTokenizer.from_pretrained(str(path))  # a hub name, for users with hub access
        except (OSError, ValueError) as exc:
            raise ChowaError(f"tokenizer: cannot load {path}: {str(exc).splitlines()[0]}") from None
    config = _read_json(folder / "tokenizer_config.json")
    if config.get("tokenizer_class") == "ByteGroupTokenizer":  # chowa's own byte-group tokenizer, without remote code
        from chowa.bytegroup.hf.tokenization_bytegroup import ByteGroupTokenizer

        return ByteGroupTokenizer.from_pretrained(str(folder))
    model_file = next((folder / name for name in SENTENCEPIECE_FILES if (folder / name).is_file()), None)
    if (folder / "tokenizer.json").is_file() and config.get("tokenizer_class") in _FAST_CLASSES:
        return AutoTokenizer.from_pretrained(str(folder))
    if model_file is not None:
        extra = {k: config[k] for k in ("model_max_length", "chat_template") if config.get(k)}
        return SentencePieceTokenizer(str(model_file), **_special_tokens_of(folder, config), **extra)
    if not any(folder.iterdir()):
        raise ChowaError(f"tokenizer: {folder} is empty")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise ChowaError(f"tokenizer: {folder} has no tokenizer files ({', '.join(_TOKENIZER_FILES[:3])}, ...); is it "
                         "a finished model folder? (A run still in progress has only checkpoints/ there.)")
    return AutoTokenizer.from_pretrained(str(folder))


def tokenizer_from_sentencepiece(model_bytes: bytes, special_tokens: dict[str, str] | None = None,
                                 model_max_length: int | None = None) -> PreTrainedTokenizerFast:
    """A transformers tokenizer for a SentencePiece model; roles default to the model's own reserved pieces."""
    pieces = special_pieces(parse_model(model_bytes))
    roles = {"unk_token": pieces.unk, "bos_token": pieces.bos, "eos_token": pieces.eos, "pad_token": pieces.pad}
    roles = {role: piece for role, piece in roles.items() if piece is not None}
    roles.update(special_tokens or {})
    extra = {"model_max_length": model_max_length} if model_max_length else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=sentencepiece_to_tokenizers(model_bytes),
        clean_up_tokenization_spaces=False,  # the default cleanup ("a ." -> "a.") would make decoding lossy
        **roles,
        **extra,
    )


def save_tokenizer_folder(model_bytes: bytes, out_dir: str | os.PathLike, model_max_length: int | None = None) -> Path:
    """Write a folder that plain `AutoTokenizer.from_pretrained` loads: tokenizer.json, config, spiece.model."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer_from_sentencepiece(model_bytes, model_max_length=model_max_length).save_pretrained(str(out))
    finish_folder(out)
    tmp = out / ".spiece.model.tmp"
    tmp.write_bytes(model_bytes)
    os.replace(tmp, out / "spiece.model")
    return out


def _special_tokens_of(folder: Path, config: dict) -> dict[str, str]:
    """The folder's own special-token strings (tokenizer_config.json, then special_tokens_map.json)."""
    merged = {**_read_json(folder / "special_tokens_map.json"), **config}
    tokens = {}
    for role in ("unk_token", "bos_token", "eos_token", "pad_token"):
        value = merged.get(role)
        if isinstance(value, dict):  # the AddedToken form {"content": "<s>", ...}
            value = value.get("content")
        if isinstance(value, str):
            tokens[role] = value
    return tokens


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ChowaError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None



class SentencePieceTokenizer(PreTrainedTokenizer):
    """A transformers tokenizer whose pieces come from SentencePiece itself: its ids by construction.

    Special tokens are split out first (the transformers convention, as in every fast tokenizer); the text
    between them goes to `SentencePieceProcessor.encode`, and decoding goes through SentencePiece too.
    """

    vocab_files_names = {"vocab_file": "spiece.model"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str, **kwargs):
        self.vocab_file = vocab_file
        self.sp_model = spm.SentencePieceProcessor(model_file=vocab_file)
        pieces = special_pieces(parse_model(Path(vocab_file).read_bytes()))
        defaults = {"unk_token": pieces.unk, "bos_token": pieces.bos, "eos_token": pieces.eos, "pad_token": pieces.pad}
        for role, piece in defaults.items():
            if piece is not None:
                kwargs.setdefault(role, piece)
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        kwargs.setdefault("special_tokens_pattern", "none")
        super().__init__(**kwargs)

    @property
    def vocab_size(self) -> int:
        return self.sp_model.get_piece_size()

    def get_vocab(self) -> dict[str, int]:
        vocab = {self.sp_model.id_to_piece(i): i for i in range(self.vocab_size)}
        vocab.update(self.added_tokens_encoder)
        return vocab

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return self.sp_model.encode(text, out_type=str)

    def _convert_token_to_id(self, token: str) -> int:
        return self.sp_model.piece_to_id(token)

    def _convert_id_to_token(self, index: int) -> str:
        return self.sp_model.id_to_piece(index)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """SentencePiece decodes runs of ordinary pieces; special tokens are written as their text."""
        out, run = [], []
        for token in tokens:
            if token in self.all_special_tokens:
                out.append(self.sp_model.decode_pieces(run) + token)
                run = []
            else:
                run.append(token)
        out.append(self.sp_model.decode_pieces(run))
        return "".join(out)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        target = Path(save_directory) / f"{filename_prefix + '-' if filename_prefix else ''}spiece.model"
        if Path(self.vocab_file).resolve() != target.resolve():
            target.write_bytes(Path(self.vocab_file).read_bytes())
        return (str(target),)
