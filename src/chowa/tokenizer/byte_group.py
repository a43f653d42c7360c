"""`chowa tokenizer bytes`: write the byte-group tokenizer of the byGPT-JP-style model (nothing to train).

Run as:
    chowa tokenizer bytes --codec f4-utf8 --out runs/bytes-tokenizer
    chowa tokenizer stats --tokenizer runs/bytes-tokenizer --input text.txt
"""

from __future__ import annotations

from pathlib import Path

from chowa.config.tokenizer import TokenizerBytesConfig
from chowa.errors import ChowaError
from chowa.files import check_writable


def main(cfg: TokenizerBytesConfig) -> Path:
    from chowa.bytegroup.model import ByteGroupTokenizer, save_folder

    check_writable(cfg.out, "tokenizer output", folder=True)
    clashes = [s for s in cfg.specials if s in ("<pad>", "<s>", "</s>", "<unk>") or not s]
    if clashes or len(set(cfg.specials)) < len(cfg.specials):
        raise ChowaError(f"tokenizer bytes: specials must be new, distinct and non-empty; got {cfg.specials}")
    tokenizer = ByteGroupTokenizer(codec=cfg.codec, extra_specials=cfg.specials, model_max_length=cfg.model_max_length)
    out = save_folder(None, tokenizer, cfg.out)
    print(f"tokenizer: wrote {out}: byte-group tokenizer, codec {cfg.codec}, {len(tokenizer.special_names)} special "
          f"groups ({' '.join(tokenizer.special_names)})")
    return out
