"""SentencePiece model -> Hugging Face `tokenizers` pipeline with the same ids and lossless decoding.

transformers' own converters assume the Llama/T5 conventions (dummy prefix, whitespace collapsing), which is
why a rinna folder loads wrongly in transformers 5.x. This converter reads the options stored in the model
itself (normalizer rules, dummy prefix, byte fallback) and mirrors them:

    normalizer : SentencePiece's precompiled charsmap (if any), [prepend "▁"], " " -> "▁"
    model      : Unigram (scores as trained) or BPE (merges ordered by piece score), byte fallback as trained
    specials   : control pieces (<unk>, <s>, </s>, [PAD]) and user-defined pieces (<NL>) as added tokens
    decoder    : "▁" -> " ", byte pieces -> bytes, fuse; [strip the dummy prefix]

One known difference is shared with every Hugging Face fast tokenizer: text that literally spells a reserved
piece (`<s>`, `<0x41>`) is read as that piece, where SentencePiece reads its characters.

Run as (from Python):
    tok = sentencepiece_to_tokenizers(Path("spiece.model").read_bytes())
"""

from __future__ import annotations

from dataclasses import dataclass

from sentencepiece import sentencepiece_model_pb2 as sp_pb2
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers

from chowa.errors import ChowaError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM, BPE = 1, 2


@dataclass(frozen=True)
class SpecialPieces:
    """The reserved pieces of a SentencePiece model by role (None where the model has none)."""

    unk: str | None
    bos: str | None
    eos: str | None
    pad: str | None
    user_defined: tuple[str, ...]


SCORE_STEP = 1 / 32


def quantize_scores(model_bytes: bytes, step: float = SCORE_STEP) -> bytes:
    """Round every piece score to a multiple of `step`, so SentencePiece and `tokenizers` break ties alike.

    SentencePiece's Viterbi adds scores in float32, `tokenizers`' in float64. Segmentations that use the same
    pieces in another order ('--' + '---' vs '---' + '--') tie exactly in real arithmetic, and float32 rounding
    then picks one of them while float64 picks the other. With scores on a 1/32 grid every float32 partial sum
    below 2**19 in magnitude (tens of thousands of pieces) is exact, both sides see the same ties and resolve
    them the same way (earliest-starting piece). The rounding changes each score by at most 1/64 nat.
    """
    proto = parse_model(model_bytes)
    for piece in proto.pieces:
        if piece.type == NORMAL:
            piece.score = round(piece.score / step) * step
    return proto.SerializeToString()


def parse_model(model_bytes: bytes) -> sp_pb2.ModelProto:
    proto = sp_pb2.ModelProto()
    try:
        proto.ParseFromString(model_bytes)
    except Exception as exc:  # protobuf raises DecodeError; keep the message for the user
        raise ChowaError(f"not a SentencePiece model file: {exc}") from None
    if not proto.pieces:
        raise ChowaError("not a SentencePiece model file: it holds no pieces")
    return proto


def special_pieces(proto: sp_pb2.ModelProto) -> SpecialPieces:
    spec = proto.trainer_spec

    def piece_at(index: int) -> str | None:
        return proto.pieces[index].piece if 0 <= index < len(proto.pieces) else None

    user_defined = tuple(p.piece for p in proto.pieces if p.type == USER_DEFINED)
    return SpecialPieces(piece_at(spec.unk_id), piece_at(spec.bos_id), piece_at(spec.eos_id), piece_at(spec.pad_id),
                         user_defined)


def sentencepiece_to_tokenizers(model_bytes: bytes) -> Tokenizer:
    """A `tokenizers.Tokenizer` that encodes and decodes exactly as the given SentencePiece model."""
    proto = parse_model(model_bytes)
    spec, norm = proto.trainer_spec, proto.normalizer_spec
    if spec.treat_whitespace_as_suffix:
        raise ChowaError("SentencePiece models with treat_whitespace_as_suffix are not supported")
    tokenizer = Tokenizer(_model(proto))
    tokenizer.normalizer = _normalizer(norm)
    tokenizer.decoder = _decoder(norm)
    _add_reserved_tokens(tokenizer, proto)
    return tokenizer


def _model(proto: sp_pb2.ModelProto) -> models.Model:
    spec = proto.trainer_spec
    vocab = [(p.piece, p.score) for p in proto.pieces]
    if spec.model_type == UNIGRAM:
        return models.Unigram(vocab, unk_id=spec.unk_id, byte_fallback=spec.byte_fallback)
    if spec.model_type == BPE:
        return models.BPE(
            {piece: index for index, (piece, _) in enumerate(vocab)},
            _bpe_merges(proto),
            unk_token=proto.pieces[spec.unk_id].piece,
            byte_fallback=spec.byte_fallback,
            fuse_unk=True,
        )
    raise ChowaError(f"SentencePiece model type {spec.model_type} is not supported (only unigram and bpe)")


def _bpe_merges(proto: sp_pb2.ModelProto) -> list[tuple[str, str]]:
    """Every split of every mergeable piece into two mergeable pieces, best-scored result first.

    SentencePiece's BPE repeatedly merges the adjacent pair whose concatenation is the best-scored piece in the
    vocabulary; a merge list ordered by the score of the result reproduces that.
    """
    mergeable = {p.piece: (p.score, i) for i, p in enumerate(proto.pieces) if p.type in (NORMAL, USER_DEFINED)}
    merges = []
    for piece, (score, index) in mergeable.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in mergeable and right in mergeable:
                merges.append((-score, index, mergeable[left][1], mergeable[right][1], left, right))
    merges.sort()
    return [(left, right) for *_, left, right in merges]


def _normalizer(norm: sp_pb2.NormalizerSpec) -> normalizers.Normalizer:
    steps = []
    if norm.precompiled_charsmap:
        steps.append(normalizers.Precompiled(norm.precompiled_charsmap))
    if norm.remove_extra_whitespaces:
        steps += [normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " ")]
    if norm.add_dummy_prefix:
        steps.append(normalizers.Prepend(" "))
    if norm.escape_whitespaces:
        steps.append(normalizers.Replace(" ", "▁"))
    return normalizers.Sequence(steps)


def _decoder(norm: sp_pb2.NormalizerSpec) -> decoders.Decoder:
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if norm.add_dummy_prefix:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    return decoders.Sequence(steps)


def _add_reserved_tokens(tokenizer: Tokenizer, proto: sp_pb2.ModelProto) -> None:
    """Control and unknown pieces become special tokens; user-defined pieces (e.g. <NL>) plain added tokens.

    Added tokens are matched on the raw text before the model runs, as SentencePiece does for user-defined
    symbols, so `<NL>` is always one piece whatever surrounds it.
    """
    special = [p.piece for p in proto.pieces if p.type in (CONTROL, UNKNOWN)]
    user_defined = [p.piece for p in proto.pieces if p.type == USER_DEFINED]
    tokenizer.add_special_tokens([AddedToken(p, special=True, normalized=False) for p in special])
    tokenizer.add_tokens([AddedToken(p, special=False, normalized=False) for p in user_defined])
