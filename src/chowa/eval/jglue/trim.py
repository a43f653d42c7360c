"""The reference's prompt-trimming rules for long JAQKET, xlsum_ja and mgsm prompts, quirks included.

Each rule runs before generation's own left truncation and raises ValueError where the reference fails (the
caller turns that into a ChowaError naming the document). Their odd edges are deliberate: 0.3 JAQKET trimming
can drop the test prompt's own sections, 0.5 JAQKET trimming always fails, and 0.5 xlsum keeps its doubled
newlines, because that is what produced the published numbers.

Run as (from Python):
    prompt = mgsm_trim(prompt, max_length - 256, tokenizer)
"""

from __future__ import annotations


def _n(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


def jaqket_trim(context: str, limit: int, prompt_version: str, tokenizer) -> str:
    """Drop whole few-shot blocks until the prompt fits. The count keeps the tokenizer's default special tokens."""
    while len(tokenizer.encode(context)) > limit:
        if prompt_version in ("0.1", "0.2", "0.3"):
            head, rest = context.split("\n\n", 1)
            parts = rest.split("\n\n")
            if len(parts) < 2:
                raise ValueError("prompt too long")
            context = "\n\n".join([head] + parts[1:])
        else:
            end, start = "システム: 分かりました。<NL>", "ユーザー: 文脈："
            pieces = context.split(end, 1)
            if len(pieces) != 2:  # always so for 0.5, whose turns end in "\n"
                raise ValueError(f"marker {end!r} not in the prompt")
            head, rest = pieces
            parts = rest.split(start)
            if len(parts) < 2:
                raise ValueError("prompt too long")
            del parts[1]
            context = end.join([head, start.join(parts)])
    return context


def xlsum_trim(context: str, limit: int, p: dict, tokenizer) -> str:
    """Cut every article (shots and test doc alike) to an equal token share, sentence by sentence."""
    if _n(tokenizer, context) <= limit:
        return context
    ctx_tag, sum_tag, sep = p["CTX_TAG"], p["SUM_TAG"], p["SEP"]
    pieces = [ctx_tag + x for x in context.split(ctx_tag)]
    out = ""
    if sum_tag not in pieces[0]:
        out = pieces[0].replace(ctx_tag, "")
        pieces = pieces[1:]
    per_piece = limit // len(pieces)
    for piece in pieces:
        split = piece.split(sum_tag)
        if len(split) != 2:
            raise ValueError(f"{sum_tag!r} occurs {len(split) - 1} times in one article")
        body, tail = split
        kept: list[str] = []
        for sentence in body.split("。"):
            if _n(tokenizer, "。".join(kept + [sentence])) > per_piece:
                if kept:
                    kept[-1] += "。" + sep
                else:
                    ids = tokenizer.encode(sentence, add_special_tokens=False)[:per_piece]
                    kept.append(tokenizer.decode(ids, skip_special_tokens=True) + sep)
                break
            kept.append(sentence)
        out += "。".join(kept) + sum_tag + tail
    return out


def mgsm_trim(context: str, limit: int, tokenizer) -> str:
    """Drop the oldest exemplar until the prompt fits (impossible for 0.3, whose questions lose the tag)."""
    while _n(tokenizer, context) > limit:
        parts = context.split("問題：")
        if len(parts) < 2:
            raise ValueError("prompt too long")
        del parts[1]
        context = "問題：".join(parts)
    return context
