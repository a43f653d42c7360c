"""Log-likelihood scoring of the byte-group model (spec §6): what `chowa eval jglue`'s multiple-choice tasks and the
lm-eval adapter ask of a model, `loglikelihood([(context, continuation), ...])`.

Each request is `BOS + context + continuation` in whole groups (encoded as one text, so an unaligned codec cuts
it as it would at generation), left-padded with PAD groups, one forward per batch; the score is the sum over the
continuation's bytes of log p_j(b) from the group before, and `is_greedy` says every byte is its slot's argmax.
A request longer than the context keeps its last whole groups.

Run as (from Python):
    lm = ByteGroupLM(model, tokenizer)
    lm.loglikelihood([("猫は", "にゃあ"), ("猫は", "わん")])   # [(logprob sum, is_greedy), ...]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm import tqdm

from chowa.errors import ChowaError
from chowa.folders import context_length
from chowa.padding import pad_rows

GROUP = 4


class ByteGroupLM:
    """`chowa.eval.models.HFCausalLM`'s contract for the byte-group model (what `HFCausalLM.from_folder` gives for
    such a folder): log-likelihoods in bytes; no generation tasks yet."""

    def __init__(self, model, tokenizer, batch_size: int = 8, sequential: bool = False, progress: bool = True):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.sequential, self.progress = max(1, batch_size), sequential, progress
        self.max_length = context_length(model.config)
        self.eos_token_id = tokenizer.eos_token_id

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _request(self, context: str, continuation: str) -> tuple[list[int], int, int]:
        """(BOS + context + continuation in whole groups, at most the context's last groups; bytes after the
        continuation (an unaligned codec's fill); continuation bytes)."""
        codec = self.tokenizer.byte_codec
        raw, head = codec.encode(context + continuation), codec.encode(context)
        start = next((i for i, (a, b) in enumerate(zip(head, raw, strict=False)) if a != b), len(head))
        ids = list(self.tokenizer.bos_group) + self.tokenizer.encode(context + continuation, add_special_tokens=False)
        after, length = len(ids) - GROUP - len(raw), len(raw) - start
        keep = min(len(ids), self.max_length) // GROUP * GROUP
        if after + length + GROUP > keep:
            raise ChowaError(f"byte-group scoring: a continuation of {length} bytes does not fit the context of "
                             f"{self.max_length} bytes")
        return ids[-keep:], after, length

    @torch.no_grad()
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        prepared = [self._request(context, continuation) for context, continuation in requests]
        results: list[tuple[float, bool]] = []
        step = 1 if self.sequential else self.batch_size
        for start in tqdm(range(0, len(prepared), step), desc="loglikelihood", disable=not self.progress,
                          leave=False):
            results += self._score_batch(prepared[start:start + step])
        return results

    def _score_batch(self, batch: list[tuple[list[int], int, int]]) -> list[tuple[float, bool]]:
        input_ids, mask = pad_rows([ids for ids, _, _ in batch], self.tokenizer.pad_group, "left", self.device)
        width = input_ids.shape[1]
        logprobs = self.model(input_ids, attention_mask=mask).logits.float().log_softmax(-1)  # (B, N, 4, 256)
        predicted = logprobs[:, :-1].flatten(1, 2)  # (B, T - 4, 256): row t predicts byte t + 4 (one group on)
        results = []
        for row, (_, after, length) in enumerate(batch):
            end = width - after
            targets = input_ids[row, end - length:end]
            scores = predicted[row, end - length - GROUP:end - GROUP]
            total = scores.gather(1, targets[:, None]).sum().item()
            results.append((float(total), bool((scores.argmax(-1) == targets).all())))
        return results

    def generate_until(self, requests):
        raise ChowaError("byte-group model: generation tasks of the harness are not supported yet; run the "
                         "multiple-choice tasks (log-likelihood)")
