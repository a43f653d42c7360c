"""The model contract evaluation harnesses call: `loglikelihood` and `generate_until` over a HF causal LM.

Tokenisation follows the reference harness: context and continuation are encoded separately with no special tokens,
an empty context becomes `[eos]`, long inputs are left-truncated to `max_length` (`config.n_ctx`, else
`max_position_embeddings`; lm-eval's 2048 for a model with neither, such as BLOOM). Generation is greedy with one
stop token (the last token of `until[0]`) and a per-request budget, then cut at every `until` string.

Two modes give the same scores. `sequential=True` runs one request at a time exactly as the reference did (HF
`generate` for generation). The default batches: log-likelihood requests sharing a long prefix (a context, or the
window a too-long context is cut to) run that prefix once and score every continuation from a copy of its KV cache,
the others (a short context) run as whole sequences in right-padded batches, and only scored positions are
projected onto the vocabulary; greedy decoding runs on the continuous-batching engine (`chowa.engine`) with a
per-row stop token and budget.

Run as (from Python):
    lm = HFCausalLM.from_folder("out/sft", batch_size=8)
    lm.loglikelihood([("質問：…\\n回答:", "東京")]); lm.generate_until([("問題：…", ["\\n"], 32)])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import GenerationConfig

from chowa.bytegroup import is_byte_model
from chowa.engine import Engine, Request
from chowa.errors import ChowaError
from chowa.eval.byte_lm import ByteGroupLM
from chowa.folders import context_length
from chowa.kvcache import accepts, cache_argument, output_cache
from chowa.models.load import default_device, load_causal_lm, load_model_tokenizer
from chowa.padding import pad_rows, position_ids_from_mask

log = logging.getLogger(__name__)
# What lm-eval assumes of a model without a fixed context (BLOOM's ALiBi): the harness needs a budget to trim to.
NO_CONTEXT_LENGTH = 2048

# Sampling and penalty settings a model folder may carry; the reference's HF `generate` would have applied them.
_GREEDY_SENSITIVE = ("do_sample", "temperature", "top_k", "top_p", "num_beams", "repetition_penalty",
                     "no_repeat_ngram_size", "bad_words_ids", "min_length", "min_new_tokens", "suppress_tokens",
                     "begin_suppress_tokens", "forced_bos_token_id", "forced_eos_token_id",
                     "encoder_repetition_penalty", "sequence_bias")


class HFCausalLM:
    """`batch_size` bounds the rows of one forward: continuations for log-likelihood, sequences for generation."""

    def __init__(self, model, tokenizer, batch_size: int = 8, sequential: bool = False, progress: bool = True):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.sequential, self.progress = max(1, batch_size), sequential, progress
        config = model.config
        self.max_length = context_length(config, as_lm_eval=True) or NO_CONTEXT_LENGTH
        if tokenizer.eos_token_id is None:
            raise ChowaError("tokenizer has no eos_token; the harness conditions empty contexts on it")
        self.eos_token_id = tokenizer.eos_token_id
        # transformers renamed `past_key_values` to `cache` within 5.x; pass whichever this version takes.
        self._cache_arg = cache_argument(model)
        # Models that can skip the vocabulary projection at positions nobody scores (most of a long context).
        self._keep = accepts(model, "logits_to_keep")
        self._warn_generation_config()

    @classmethod
    def from_folder(cls, path: str | os.PathLike, dtype: str = "auto", device: str | None = None,
                    **kwargs) -> HFCausalLM | ByteGroupLM:
        tokenizer = load_model_tokenizer(path)
        model = load_causal_lm(path, dtype=dtype, device=device or default_device())
        if is_byte_model(model):  # scores in bytes, 4 per position
            return ByteGroupLM(model, tokenizer, **kwargs)
        return cls(model, tokenizer, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    # --- log-likelihood ------------------------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """(sum of continuation log-probs, whether every continuation token is the argmax) per (context, cont).

        Batched two ways, each giving the reference's numbers. The model sees `(ctx + cont)[-(max_length + 1):][:-1]`
        and scores its last len(cont) positions; what comes before them (the context, or the part of it left by
        the cut) is the request's prefix. A prefix shared by several continuations whose tokens outnumber theirs
        runs once and each continuation reads a copy of its cache: continuations of one context, and those of a
        cut context with the same token count (the cut keeps the same window). Every other request (a short
        context such as XWinograd's [eos] before whole sentences) runs as one row of a batch of whole sequences.
        Only scored positions are projected onto the vocabulary."""
        items = [([self.eos_token_id] if ctx == "" else self.encode(ctx), self.encode(cont)) for ctx, cont in requests]
        bar = tqdm(total=len(items), desc="loglikelihood", disable=not self.progress, leave=False)
        results: list[tuple[float, bool] | None] = [None] * len(items)
        groups: dict[tuple[int, ...], list[int]] = {}
        whole: list[int] = []
        for i, (ctx_ids, cont_ids) in enumerate(items):
            if len(cont_ids) > self.max_length:  # the reference fails on it too (its slices disagree in length)
                raise ChowaError(f"loglikelihood request {i + 1}: a continuation of {len(cont_ids)} tokens does not "
                                 f"fit the model's context of {self.max_length}")
            if not cont_ids:
                results[i] = (0.0, True)
                bar.update(1)
            elif self.sequential:
                results[i] = self._loglikelihood_one(ctx_ids, cont_ids)
                bar.update(1)
            else:
                groups.setdefault(tuple(self._prefix(ctx_ids, cont_ids)), []).append(i)
        for ctx, idx in list(groups.items()):  # sharing pays when the context outweighs what it is shared by
            if len(ctx) * (len(idx) - 1) <= sum(len(items[i][1]) for i in idx):
                whole += groups.pop(ctx)
        for rows in _whole_batches(whole, items, self.max_length, self.batch_size):
            for i, result in zip(rows, self._loglikelihood_rows([items[i] for i in rows])):
                results[i] = result
            bar.update(len(rows))
        # Longest first, so each batch pads little and memory peaks at the start; a context shared by more
        # continuations than a batch holds is split into batch-size pieces.
        pieces = [(ctx, idx[k:k + self.batch_size]) for ctx, idx in groups.items()
                  for k in range(0, len(idx), self.batch_size)]
        ordered = sorted(pieces, key=lambda g: -(len(g[0]) + max(len(items[i][1]) for i in g[1])))
        for chunk in _chunks(ordered, self.batch_size):
            for i, result in zip((i for _, idx in chunk for i in idx), self._loglikelihood_shared(chunk, items)):
                results[i] = result
            bar.update(sum(len(idx) for _, idx in chunk))
        bar.close()
        return results

    def _inputs(self, ctx_ids: list[int], cont_ids: list[int]) -> list[int]:
        """What the reference feeds the model: `(ctx + cont)[-(max_length + 1):][:-1]`."""
        return (ctx_ids + cont_ids)[-(self.max_length + 1):][:-1]

    def _prefix(self, ctx_ids: list[int], cont_ids: list[int]) -> list[int]:
        """The model's input before the continuation: the context, or what the reference's cut leaves of it."""
        return ctx_ids[-(self.max_length + 1 - len(cont_ids)):]

    @torch.no_grad()
    def _loglikelihood_rows(self, rows: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """Requests as whole sequences in one right-padded batch; each scores its last len(cont) positions."""
        inputs = [self._inputs(ctx, cont) for ctx, cont in rows]
        input_ids, mask = pad_rows(inputs, self.eos_token_id, "right", self.device)
        # Project only the tail from the first position some row scores (rows of a batch have similar lengths); an int
        # `logits_to_keep`, which every model that takes the argument reads the same way.
        width = input_ids.shape[1]
        first = min(len(inp) - len(cont) for inp, (_, cont) in zip(inputs, rows)) if self._keep else 0
        keep = {"logits_to_keep": width - first} if self._keep else {}
        logits = self.model(input_ids, attention_mask=mask, **keep).logits
        results = []
        for r, (inp, (_, cont)) in enumerate(zip(inputs, rows, strict=True)):
            scored = logits[r, len(inp) - len(cont) - first:len(inp) - first]
            results.append(_score(F.log_softmax(scored.float(), dim=-1), cont))
        return results

    @torch.no_grad()
    def _loglikelihood_one(self, ctx_ids: list[int], cont_ids: list[int]) -> tuple[float, bool]:
        """The reference computation: one row, `(ctx + cont)[-(max_length + 1):][:-1]`."""
        inp = self._inputs(ctx_ids, cont_ids)
        logits = self.model(torch.tensor([inp], device=self.device)).logits[0, -len(cont_ids):]
        return _score(F.log_softmax(logits.float(), dim=-1), cont_ids)

    @torch.no_grad()
    def _loglikelihood_shared(self, chunk, items) -> list[tuple[float, bool]]:
        """Contexts run once (left-padded batch, cached); every continuation then reads its context's cache.

        chunk: [(ctx_ids, [request index, ...]), ...]; returns results in chunk order.
        """
        contexts = [list(ctx) for ctx, _ in chunk]
        input_ids, mask = self._left_pad(contexts)
        positions = position_ids_from_mask(mask)
        keep = {"logits_to_keep": 1} if self._keep else {}
        out = self.model(input_ids, attention_mask=mask, position_ids=positions, use_cache=True, **keep)
        first = F.log_softmax(out.logits[:, -1].float(), dim=-1)  # (G, V): predicts each continuation's 1st token
        rows = [(g, items[i][1]) for g, (_, idx) in enumerate(chunk) for i in idx]
        rest_len = max(len(cont) - 1 for _, cont in rows)
        rest = None
        if rest_len > 0:
            owner = torch.tensor([g for g, _ in rows], device=self.device)
            cache = output_cache(out)
            cache.reorder_cache(owner)  # one cache row per continuation (index_select along the batch)
            # Right padding is safe here: padded positions come after every real token and are never read.
            rest_ids = torch.tensor([cont[:-1] + [self.eos_token_id] * (rest_len - len(cont) + 1) for _, cont in rows],
                                    device=self.device)
            rest_mask = torch.cat([mask[owner], torch.ones_like(rest_ids)], dim=1)
            lengths = torch.tensor([len(contexts[g]) for g, _ in rows], device=self.device)
            rest_pos = lengths[:, None] + torch.arange(rest_len, device=self.device)[None, :]
            # A cut prefix fills the window, so a shorter continuation's padding would run past it: padding is never
            # read, but a learned position table has no row there and dynamic RoPE would rescale the whole batch.
            rest_pos.clamp_(max=self.max_length - 1)
            logits = self.model(rest_ids, attention_mask=rest_mask, position_ids=rest_pos,
                                **{self._cache_arg: cache}).logits
            rest = F.log_softmax(logits.float(), dim=-1)  # (R, rest_len, V)
        results = []
        for r, (g, cont) in enumerate(rows):
            logprobs = first[g:g + 1] if len(cont) == 1 else torch.cat([first[g:g + 1], rest[r, :len(cont) - 1]])
            results.append(_score(logprobs, cont))
        return results

    def _left_pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_rows(sequences, self.eos_token_id, "left", self.device)

    # --- greedy generation ---------------------------------------------------------------------------------

    def generate_until(self, requests: Sequence[tuple[str, list[str], int]]) -> list[str]:
        """Greedy continuation of each (context, until, max_new_tokens), cut at every `until` string."""
        prepared = []
        for ctx, until, budget in requests:
            stop = self.encode(until[0])
            stop_id = stop[-1] if stop else self.eos_token_id
            # Quirk kept: a budget equal to max_length slices [0:], keeping the whole context.
            prepared.append((self.encode(ctx)[budget - self.max_length:], stop_id, budget))
        outputs: list[list[int] | None] = [None] * len(prepared)
        bar = tqdm(total=len(prepared), desc="generate_until", disable=not self.progress, leave=False)
        if self.sequential:
            for i, (ctx_ids, stop_id, budget) in enumerate(prepared):
                outputs[i] = self._generate_one(ctx_ids, stop_id, budget)
                bar.update(1)
        else:  # the continuous-batching engine: a row leaves at its stop token, the next prompt takes its place
            jobs = [Request(ctx_ids, max_new_tokens=budget, stop_ids=frozenset({stop_id}))
                    for ctx_ids, stop_id, budget in prepared]
            Engine(self.model, self.tokenizer, max_batch=self.batch_size).run(jobs, bar.update)
            for i, job in enumerate(jobs):
                if job.error:
                    raise ChowaError(f"generate_until request {i + 1}: {job.error}")
                outputs[i] = job.output[:max(prepared[i][2], 0)]
        bar.close()
        texts = []
        for ids, (_, until, _) in zip(outputs, requests):
            text = self.tokenizer.decode(ids)  # special tokens kept, as the reference decoded
            for stop in until:
                text = text.split(stop)[0]
            texts.append(text)
        return texts

    @torch.no_grad()
    def _generate_one(self, ctx_ids: list[int], stop_id: int, budget: int) -> list[int]:
        """The reference call: HF `generate`, batch 1, plain greedy (the model's generation_config ignored)."""
        config = GenerationConfig(max_length=len(ctx_ids) + budget, eos_token_id=stop_id, pad_token_id=stop_id,
                                  do_sample=False)
        input_ids = torch.tensor([ctx_ids], device=self.device)
        out = self.model.generate(input_ids, attention_mask=torch.ones_like(input_ids), generation_config=config)
        return out[0, len(ctx_ids):].tolist()

    def _warn_generation_config(self) -> None:
        config = getattr(self.model, "generation_config", None)
        if config is None:
            return
        default = GenerationConfig()
        changed = [k for k in _GREEDY_SENSITIVE if getattr(config, k, None) != getattr(default, k, None)]
        if changed:
            log.warning("the model's generation_config sets %s; chowa decodes plain greedy (the reference's HF "
                        "generate applied them)", ", ".join(changed))


def _score(logprobs: torch.Tensor, cont_ids: list[int]) -> tuple[float, bool]:
    """logprobs: (len(cont_ids), V) log-softmax rows predicting each continuation token."""
    target = torch.tensor(cont_ids, device=logprobs.device)
    total = logprobs.gather(1, target[:, None]).sum().item()
    return float(total), bool((logprobs.argmax(dim=-1) == target).all())


def _whole_batches(indices: list[int], items: list[tuple[list[int], list[int]]], max_length: int,
                   batch_size: int):
    """Whole-sequence requests longest first, `batch_size` rows at a time (similar lengths pad little)."""
    ordered = sorted(indices, key=lambda i: -min(len(items[i][0]) + len(items[i][1]), max_length + 1))
    for start in range(0, len(ordered), batch_size):
        yield ordered[start:start + batch_size]


def _chunks(groups: list[tuple[tuple[int, ...], list[int]]], max_rows: int):
    """Consecutive groups holding at most `max_rows` continuations together.

    Each continuation row holds its own copy of its context's cache, so rows, not contexts, bound memory.
    """
    chunk, rows = [], 0
    for group in groups:
        if chunk and rows + len(group[1]) > max_rows:
            yield chunk
            chunk, rows = [], 0
        chunk.append(group)
        rows += len(group[1])
    if chunk:
        yield chunk
