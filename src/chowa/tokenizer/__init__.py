"""Tokenizers: SentencePiece training, exact Hugging Face conversion, loading rinna-format folders, stats."""

from chowa.tokenizer.load import load_tokenizer, tokenizer_from_sentencepiece

__all__ = ["load_tokenizer", "tokenizer_from_sentencepiece"]
