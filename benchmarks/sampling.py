"""Per-prompt sampling streams against `generate`'s own sampling: the price of replies that do not depend on the batch.

chowa samples each prompt from its own seeded generator (`chowa.generate.per_prompt_sampling`: the filters and the
draw run as logits processors, one multinomial per row), so a reply is the same at any batch size; `generate`'s own
sampling draws the whole batch from the global RNG, so a reply depends on its neighbours. Both run here on the same
loaded model, the same left-padded batches and the same filters (the format's card settings), every row generating
exactly `--max-new-tokens` tokens (EOS suppressed until then), alternating `--pairs` times. Reported: generated tokens
per second (median over pairs) for both and their ratio, and the share of prompts whose reply at `--batch-size`
equals its reply at batch size 1.

Run as:
    python benchmarks/sampling.py --model runs/demo/sft --prompts builtin:prompts/heldout.jsonl --batch-size 16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from chowa.config.generate import Sampling
from chowa.data.prompts import read_prompts
from chowa.formats import encode_prompt
from chowa.generate import load_chat_model, per_prompt_sampling, prompt_seed
from chowa.padding import pad_rows


def generate_all(chat, prompts: list[list[int]], options: dict, batch_size: int, per_prompt: bool,
                 seed: int) -> tuple[float, list[list[int]]]:
    """Seconds and the generated ids of every prompt, in batches of `batch_size`."""
    pad = chat.tokenizer.pad_token_id if chat.tokenizer.pad_token_id is not None else chat.tokenizer.eos_token_id
    torch.manual_seed(seed)
    replies, start = [], time.perf_counter()
    for first in range(0, len(prompts), batch_size):
        batch = prompts[first:first + batch_size]
        input_ids, attention_mask = pad_rows(batch, pad, "left", chat.model.device)
        settings = (per_prompt_sampling(chat.model, options, [prompt_seed(seed, first + i) for i in range(len(batch))])
                    if per_prompt else options)
        with torch.no_grad():
            output = chat.model.generate(input_ids=input_ids, attention_mask=attention_mask, pad_token_id=pad,
                                         min_new_tokens=options["max_new_tokens"], **settings)
        replies += output[:, input_ids.shape[1]:].tolist()
    return time.perf_counter() - start, replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="A chat model folder.")
    parser.add_argument("--prompts", default="builtin:prompts/heldout.jsonl", help="Prompt records.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=3, help="Alternating timed runs of each mode.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    chat = load_chat_model(args.model)
    prompts = [encode_prompt(p.messages, chat.format, chat.tokenizer) for p in read_prompts([args.prompts])]
    options = Sampling(max_new_tokens=args.max_new_tokens, seed=args.seed).resolve(chat.format)
    options.pop("stop_strings", None)  # fixed-length replies: every row generates max_new_tokens tokens
    tokens = len(prompts) * args.max_new_tokens
    rates: dict[str, list[float]] = {"generate's sampling": [], "per-prompt streams": []}
    for _ in range(args.pairs):
        for name, per_prompt in (("generate's sampling", False), ("per-prompt streams", True)):
            seconds, _ = generate_all(chat, prompts, options, args.batch_size, per_prompt, args.seed)
            rates[name].append(tokens / seconds)
    same = {}
    for name, per_prompt in (("generate's sampling", False), ("per-prompt streams", True)):
        batched = generate_all(chat, prompts, options, args.batch_size, per_prompt, args.seed)[1]
        alone = generate_all(chat, prompts, options, 1, per_prompt, args.seed)[1]
        same[name] = sum(a == b for a, b in zip(batched, alone, strict=True)) / len(prompts)
    base = statistics.median(rates["generate's sampling"])
    print(f"{len(prompts)} prompts x {args.max_new_tokens} new tokens, batch size {args.batch_size}, "
          f"format {chat.format.name}, {torch.get_num_threads()} threads\n")
    print("| sampling | tokens/s (median) | ratio | replies equal to batch size 1 |\n|---|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} | {median / base:.2f} | {same[name]:.1%} |")


if __name__ == "__main__":
    main()
