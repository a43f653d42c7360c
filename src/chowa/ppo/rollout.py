"""PPO rollouts: prompt files, sampling from the policy in its chat format, and the ids-in-ids-out response.

A response is the list of **sampled token ids**, never a re-tokenisation of decoded text (trlx's defect, spec §8.1):
it ends at the first EOS (kept, and trained), or at the first stop string of the chat format — cut before the
token that starts it, with the EOS id appended, so the policy learns to end its turn there — or after
`max_new_tokens` with no EOS. Everything after the end is padding under a 0 mask.

Prompt files are JSONL (or a .json array) of OpenAI `{"messages": [...]}` records, whose last message is the
user's (a final assistant message is kept as the reference reply), or Alpaca `{"instruction", "input", "output"}`
records; every other field (`family`, `answer`, `lang`) is passed to rule-based rewards as the record.

Run as (from Python):
    prompts = read_prompts(["builtin:sft/heldout.jsonl"])
    rollout = sample(policy, [encode_prompt(p.messages, fmt, tok) for p in prompts[:8]], tok, fmt, 64)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel

from chowa.data.text import expand_inputs, read_file_text
from chowa.errors import ChowaError
from chowa.formats import ChatFormat, Message, clean_reply, conversation_problem
from chowa.padding import pad_rows


@dataclass(frozen=True)
class PromptRecord:
    source: str
    """"file:line"."""
    messages: list[Message]
    """The conversation so far, ending with the user's message."""
    reference: str | None
    """A reference reply (Alpaca `output`, or a final assistant message), for reward shaping."""
    record: dict = field(default_factory=dict)
    """The raw record (`family`, `answer`, `lang`, ...), for rule-based rewards."""


def read_prompts(patterns: list[str]) -> list[PromptRecord]:
    """Every record of the files or globs; a malformed one raises ChowaError naming file and line."""
    prompts = []
    for path in expand_inputs(patterns):
        text = read_file_text(path).replace("\r\n", "\n")
        if path.name.removesuffix(".gz").endswith(".json"):
            try:
                rows = list(enumerate(json.loads(text), start=1))
            except json.JSONDecodeError as exc:
                raise ChowaError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        else:
            rows = [(n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
        for line, row in rows:
            prompts.append(_prompt_record(row, f"{path}:{line}"))
    if not prompts:
        raise ChowaError(f"prompts: no records in {', '.join(patterns)}")
    return prompts


def _prompt_record(row: str | dict, source: str) -> PromptRecord:
    try:
        record = json.loads(row) if isinstance(row, str) else row
    except json.JSONDecodeError as exc:
        raise ChowaError(f"{source}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise ChowaError(f"{source}: expected a JSON object with `messages` or `instruction`")
    if "messages" in record:
        messages, reference = list(record["messages"]), None
        if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
            reference = messages.pop()["content"]
    elif isinstance(record.get("instruction"), str):
        messages = [{"role": "user", "content": record["instruction"]}]
        if record.get("input"):
            messages[0]["input"] = str(record["input"])
        reference = record.get("output") if isinstance(record.get("output"), str) else None
    else:
        raise ChowaError(f"{source}: a prompt record needs `messages` (OpenAI style) or `instruction` (Alpaca)")
    problem = conversation_problem(messages, ends_with="user")
    if problem:
        raise ChowaError(f"{source}: messages[{problem[0]}]: {problem[1]}")
    return PromptRecord(source, messages, reference, record)


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

    The first EOS ends it (kept). Otherwise the first stop string does: the kept ids are the longest prefix whose
    text stops before the stop string begins, plus the EOS id. Otherwise all ids are kept and `ended` is False.
    """
    if eos_id in ids:
        return ids[:ids.index(eos_id) + 1], True
    if stop:
        text = tokenizer.decode(ids, skip_special_tokens=False)
        starts = [text.find(s) for s in stop if s and s in text]
        if starts:
            begin = min(starts)
            keep = 0
            while keep < len(ids) and len(tokenizer.decode(ids[:keep + 1], skip_special_tokens=False)) <= begin:
                keep += 1
            return ids[:keep] + [eos_id], True
    return ids, False


@torch.no_grad()
def sample(policy: PreTrainedModel, prompt_ids: list[list[int]], tokenizer, fmt: ChatFormat, max_new_tokens: int,
           temperature: float = 1.0, greedy: bool = False, stop: tuple[str, ...] | None = None) -> Rollout:
    """Sample one response per prompt (pure sampling at `temperature`: no top-k, top-p or repetition penalty, so
    the log-probs PPO computes are those of the distribution the tokens came from; spec §8.7)."""
    device = policy.device
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    queries, query_mask = pad_rows(prompt_ids, pad_id, "left", device)
    options = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature, "top_k": 0,
                                                   "top_p": 1.0}
    was_training = policy.training
    policy.eval()
    generated = policy.generate(input_ids=queries, attention_mask=query_mask, max_new_tokens=max_new_tokens,
                                eos_token_id=eos_id, pad_token_id=pad_id, repetition_penalty=1.0,
                                min_new_tokens=0, **options)
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
