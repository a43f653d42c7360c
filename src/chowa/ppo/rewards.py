"""Reward sources for PPO: a reward-model folder, a reward model served by `chowa serve` (`reward.url`), or a Python
function for rule-based rewards.

A reward model is a plain HF `AutoModelForSequenceClassification` folder (num_labels 1, `pad_token_id` set; what
`chowa reward` writes) sharing the policy's tokenizer: it scores prompt ids + sampled response ids + EOS directly,
with no re-tokenisation, reading `.logits[:, 0]` where the model's own pooling puts it.

A rule is `module:function(samples: list[str], prompts: list[str], **meta) -> list[float]`, where `samples` are
the cleaned replies (`chowa.formats.clean_reply`), `prompts` the rendered prompt texts, and `meta` holds
`records` (the prompt records' raw fields: `family`, `answer`, `lang`, ...), `response_ids` (sampled ids,
EOS included when emitted) and `tokenizer`. Built in: `chowa.answers:checked_answer` (the right answer) and
`chowa.answers:preferred_reply` (the right answer, plus the style the preference data prefers).

A served reward model (`reward.url`) receives each sample as text, its prompt's messages and the cleaned reply, and
renders it in its own chat format (OpenRLHF's remote reward model likewise scores decoded text): it need not share
the policy's tokenizer, and its scores equal `chowa reward score` on the same conversations.

Run as (from Python):
    source = RewardSource(RewardSourceConfig(function="chowa.answers:checked_answer"), tokenizer, fmt, device)
    scores = source.score(prompts, prompt_ids, response_ids, replies)   # (B,) float tensor
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import torch

# The rule rewards lived here before chowa.answers; configs that name chowa.ppo.rewards:preferred_reply still work.
from chowa.answers import checked_answer, preferred_reply  # noqa: F401
from chowa.config import load_callable
from chowa.config.ppo import RewardSourceConfig
from chowa.data.prompts import PromptRecord
from chowa.errors import ChowaError
from chowa.formats import ChatFormat, encode_prompt, render_training
from chowa.padding import pad_rows


class RuleReward:
    """Scores replies with a Python function (see the module docstring for its arguments)."""

    def __init__(self, spec: str, tokenizer, fmt: ChatFormat):
        self.spec, self.tokenizer, self.fmt = spec, tokenizer, fmt
        self.function = load_callable(spec, "reward.function")

    def __call__(self, samples: list[str], prompts: list[str], records: list[dict],
                 response_ids: list[list[int]]) -> list[float]:
        scores = self.function(samples, prompts, records=records, response_ids=response_ids,
                               tokenizer=self.tokenizer)
        if not hasattr(scores, "__len__") or len(scores) != len(samples):
            raise ChowaError(f"reward.function {self.spec}: must return one float per sample ({len(samples)})")
        return [float(s) for s in scores]


class ModelReward:
    """Scores prompt + response ids with a `chowa reward` model sharing the policy's tokenizer."""

    def __init__(self, folder: str, tokenizer, device: torch.device, batch_size: int = 16):
        from chowa.reward.score import load_reward_model

        self.scorer = load_reward_model(folder, device)
        self.scorer.model.requires_grad_(False)
        if self.scorer.model.get_input_embeddings().num_embeddings < len(tokenizer):
            raise ChowaError(f"reward.model: {folder} has fewer embeddings than the policy's tokenizer has tokens; "
                             "PPO scores sampled ids directly, so both must share one tokenizer")
        self.eos_id, self.batch_size = tokenizer.eos_token_id, batch_size

    def __call__(self, sequences: list[list[int]]) -> list[float]:
        """One score per id sequence (an EOS is appended where it is missing, as the model was trained)."""
        sequences = [ids if ids and ids[-1] == self.eos_id else [*ids, self.eos_id] for ids in sequences]
        scores: list[float] = []
        for start in range(0, len(sequences), self.batch_size):
            scores += self.scorer.score_ids(*pad_rows(sequences[start:start + self.batch_size],
                                                      self.scorer.pad_id)).tolist()
        return scores


class RemoteReward:
    """Scores from a reward model served by `chowa serve` (`POST URL/v1/rewards`), in batches; a busy or restarting
    server (503, refused connection) is retried with backoff before the run stops with the server's message."""

    RETRIES = 4

    def __init__(self, url: str, model: str, key_env: str, batch_size: int, timeout: float = 600.0):
        self.url = url.rstrip("/") if url.rstrip("/").endswith("/v1/rewards") else url.rstrip("/") + "/v1/rewards"
        self.model, self.batch_size, self.timeout = model or None, batch_size, timeout
        self.headers = {"Content-Type": "application/json"}
        if key_env:
            if not os.environ.get(key_env):
                raise ChowaError(f"reward.url_key_env: the environment variable {key_env} is unset or empty")
            self.headers["Authorization"] = f"Bearer {os.environ[key_env]}"

    def __call__(self, conversations: list[list[dict]]) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(conversations), self.batch_size):
            items = [{"messages": messages} for messages in conversations[start:start + self.batch_size]]
            answer = self._post({"model": self.model, "input": items})
            scores += [row["score"] for row in sorted(answer["data"], key=lambda row: row["index"])]
        return scores

    def _post(self, body: dict) -> dict:
        data = json.dumps(body, ensure_ascii=False).encode()
        for attempt in range(self.RETRIES + 1):
            request = urllib.request.Request(self.url, data=data, headers=self.headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code not in (429, 502, 503, 504) or attempt == self.RETRIES:
                    raise ChowaError(f"reward.url {self.url}: {exc.code} {message}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.RETRIES:
                    raise ChowaError(f"reward.url {self.url}: {getattr(exc, 'reason', exc)}") from None
            time.sleep(2 ** attempt)
        raise AssertionError("unreachable")


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return json.loads(exc.read())["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return exc.reason


class RewardSource:
    """What PPO asks for: raw scores (B,) for sampled responses, optionally minus the reference reply's score."""

    def __init__(self, cfg: RewardSourceConfig, tokenizer, fmt: ChatFormat, device: torch.device):
        cfg.check()
        self.cfg, self.tokenizer, self.fmt = cfg, tokenizer, fmt
        self.rule = RuleReward(cfg.function, tokenizer, fmt) if cfg.function else None
        self.model = ModelReward(cfg.model, tokenizer, device, cfg.batch_size) if cfg.model else None
        self.remote = RemoteReward(cfg.url, cfg.url_model, cfg.url_key_env, cfg.batch_size) if cfg.url else None
        self._reference_scores: dict[str, float] = {}

    def score(self, prompts: list[PromptRecord], prompt_ids: list[list[int]], response_ids: list[list[int]],
              replies: list[str]) -> torch.Tensor:
        """(B,) float scores. `replies` are the cleaned texts of `response_ids`."""
        scores = self._score(prompts, prompt_ids, response_ids, replies)
        if self.cfg.reference_reply:
            scores = [s - r for s, r in zip(scores, self.reference_scores(prompts), strict=True)]
        return torch.tensor(scores, dtype=torch.float32)

    def reference_scores(self, prompts: list[PromptRecord]) -> list[float]:
        """Scores of the prompts' reference replies, computed once per prompt."""
        missing = [p for p in prompts if p.source not in self._reference_scores]
        for p in missing:
            if p.reference is None:
                raise ChowaError(f"{p.source}: reward.reference_reply needs a reference reply (Alpaca `output` or "
                                 "a final assistant message)")
        if missing:
            prompt_ids = [encode_prompt(p.messages, self.fmt, self.tokenizer) for p in missing]
            reply_ids = []
            for p, ids in zip(missing, prompt_ids, strict=True):
                full = render_training([*p.messages, {"role": "assistant", "content": p.reference}], self.fmt,
                                       self.tokenizer)[0]
                reply_ids.append(full[len(ids):])
            scores = self._score(missing, prompt_ids, reply_ids, [p.reference for p in missing])
            self._reference_scores.update(zip([p.source for p in missing], scores, strict=True))
        return [self._reference_scores[p.source] for p in prompts]

    def _score(self, prompts: list[PromptRecord], prompt_ids: list[list[int]], response_ids: list[list[int]],
               replies: list[str]) -> list[float]:
        if self.model is not None:
            return self.model([p + r for p, r in zip(prompt_ids, response_ids, strict=True)])
        if self.remote is not None:
            return self.remote([[*p.messages, {"role": "assistant", "content": reply}]
                                for p, reply in zip(prompts, replies, strict=True)])
        texts = [self.tokenizer.decode(ids, skip_special_tokens=False) for ids in prompt_ids]
        return self.rule(replies, texts, [p.record for p in prompts], response_ids)
