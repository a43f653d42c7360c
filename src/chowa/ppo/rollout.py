"""PPO rollouts: prompt files, sampling from the policy in its chat format, and the ids-in-ids-out response.

A response is the list of **sampled token ids**, never a re-tokenisation of decoded text (trlx's defect, spec §8.1):
it ends at the first EOS (kept, and trained) or at the first stop string of the chat format, whichever comes
first — a stop string is cut before the token that starts it, with the EOS id appended, so the policy learns to
end its turn there — or after `max_new_tokens` with neither. Everything after the end is padding under a 0 mask.

Prompt files are read by `chowa.data.prompts`; each record's extra fields (`family`, `answer`,
`lang`) are passed to rule-based rewards.

Run as (from Python):
    prompts = chowa.data.prompts.read_prompts(["builtin:sft/heldout.jsonl"])
    rollout = sample(policy, [encode_prompt(p.messages, fmt, tok) for p in prompts[:8]], tok, fmt, 64)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from chowa.formats import ChatFormat, clean_reply
from chowa.generate import per_prompt_sampling
from chowa.padding import pad_rows


@dataclass
class Rollout:
    """Sampled responses for a chunk of prompts.

    queries: (B, Q) left-padded prompt ids with query_mask; responses: (B, T) right-padded sampled ids (EOS
    included when the response ended) with response_mask; has_eos: (B,) bool, whether it ended (EOS or a stop
    string) rather than running out of tokens.
    """

    queries: torch.Tensor
    query_mask: torch.Tensor
    responses: torch.Tensor
    response_mask: torch.Tensor
    has_eos: torch.Tensor

    def response_ids(self) -> list[list[int]]:
        return [row[mask.bool()].tolist() for row, mask in zip(self.responses, self.response_mask, strict=True)]


def end_response(ids: list[int], tokenizer, eos_id: int, stop: tuple[str, ...]) -> tuple[list[int], bool]:
    """Cut sampled ids where the response ends: `(kept ids, ended)`.

    It ends at whichever comes first, the first EOS (kept) or the first stop string: for a stop string the kept
    ids are the longest prefix whose text stops before the stop string begins, plus the EOS id. With neither, all
    ids are kept and `ended` is False.
    """
    head = ids[:ids.index(eos_id)] if eos_id in ids else ids
    if stop:
        text = tokenizer.decode(head, skip_special_tokens=False)
        starts = [text.find(s) for s in stop if s and s in text]
        if starts:
            begin = min(starts)
            keep = 0
            while keep < len(head) and len(tokenizer.decode(head[:keep + 1], skip_special_tokens=False)) <= begin:
                keep += 1
            return head[:keep] + [eos_id], True
    if len(head) < len(ids):
        return head + [eos_id], True
    return ids, False


@torch.no_grad()
def sample(policy: PreTrainedModel, prompt_ids: list[list[int]], tokenizer, fmt: ChatFormat, max_new_tokens: int,
           temperature: float = 1.0, greedy: bool = False, stop: tuple[str, ...] | None = None,
           seeds: list[int] | None = None) -> Rollout:
    """Sample one response per prompt (pure sampling at `temperature`: no top-k, top-p or repetition penalty, so
    the log-probs PPO computes are those of the distribution the tokens came from; spec §8.7). With `seeds`, row i
    draws from its own stream seeded `seeds[i]`, so its reply does not depend on the rows beside it."""
    device = policy.device
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    queries, query_mask = pad_rows(prompt_ids, pad_id, "left", device)
    options = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature, "top_k": 0,
                                                   "top_p": 1.0}
    if seeds is not None:
        options = per_prompt_sampling(policy, options, seeds)
    was_training = policy.training
    policy.eval()
    # Never synced across processes: under FSDP and ZeRO-3 PPO samples with the parameters gathered whole
    # (Runtime.whole_parameters), so each process generates alone, as many chunks and tokens as it has.
    generated = policy.generate(input_ids=queries, attention_mask=query_mask, max_new_tokens=max_new_tokens,
                                eos_token_id=eos_id, pad_token_id=pad_id, repetition_penalty=1.0,
                                min_new_tokens=0, synced_gpus=False, **options)
    policy.train(was_training)
    stop = fmt.stop if stop is None else stop
    kept = [end_response(row.tolist(), tokenizer, eos_id, stop) for row in generated[:, queries.shape[1]:]]
    responses, response_mask = pad_rows([ids for ids, _ in kept], pad_id, "right", device, min_width=1)
    has_eos = torch.tensor([ended for _, ended in kept], device=device)
    return Rollout(queries, query_mask, responses, response_mask, has_eos)


def decode_replies(rollout: Rollout, tokenizer, fmt: ChatFormat) -> list[str]:
    """The replies as a user reads them (`clean_reply`: EOS and turn tags cut, `<NL>` as newline, stripped)."""
    eos = tokenizer.eos_token or ""
    texts = tokenizer.batch_decode(rollout.response_ids(), skip_special_tokens=False)
    return [clean_reply(text, fmt, eos) for text in texts]
