"""Scoring with a trained reward model: the Python API the `ppo` stage uses, and `chowa reward score`.

A reward folder (written by `chowa reward`) is a plain `*ForSequenceClassification` model with one label, its
tokenizer (whose `chat_template` is the chat format) and `chat_format.json`. The score of a conversation that
ends with an assistant reply is the head's value at the last non-pad token of the rendered conversation: the
prompt in the chat format, the reply and EOS, tokenized by `chowa.formats.render_training`. The tokenizer's pad
token is never a real token (the stage adds `[PAD]` if the base model pads with EOS), so transformers' own
read-out (the rightmost id that is not `config.pad_token_id`) is the last non-pad token for right- and
left-padded batches alike, and plain transformers reproduces chowa's scores:

    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompt = tokenizer.apply_chat_template(context, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False).input_ids
    ids += tokenizer(reply_prefix + reply, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    score = model(input_ids=torch.tensor([ids])).logits[0, 0]

(tokenizing the prompt and the reply separately, as chowa does; `reply_prefix` is "" for the rinna formats,
"\\n" for alpaca-ja and " " for vicuna-v1.1. Tokenizing `apply_chat_template(context + [reply])` as one string
differs wherever a tokenizer piece spans the cue and the reply: a third of the built-in pairs with the demo's
tokenizer, enough to move scores.) Left padding shifts position ids;
rotary and ALiBi models score the same up to float rounding, absolute-position models (GPT-2) need right padding.

`chowa reward score` adds `score` to each conversation record (any SFT data format ending with a reply) and
`chosen_score` / `rejected_score` to each preference record.

Run as:
    chowa reward score --model runs/demo/reward --input pairs.jsonl --out scored.jsonl
    rm = load_reward_model("runs/demo/reward"); rm.score_conversations([messages])   # from Python
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel

from chowa.config.reward import RewardScoreConfig
from chowa.data.conversations import PARSERS, detect_data_format
from chowa.data.preferences import PARSERS as PAIR_PARSERS
from chowa.data.preferences import preference_format
from chowa.data.records import BadRecord, ReadOptions, expand_sources, parse_records
from chowa.errors import ChowaError
from chowa.files import atomic_write_text, check_writable, json_line
from chowa.formats import ChatFormat, Message, detect_format, render_training
from chowa.models.load import default_device, has_weights, load_model
from chowa.padding import pad_rows
from chowa.tokenizer import load_tokenizer


def sequence_scores(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    pad_id: int) -> torch.Tensor:
    """The head's value at each row's last non-pad token. input_ids, attention_mask: (B, T) -> (B,) float32.

    Masked positions are set to `pad_id` first, so ids padded with another token (a policy padding with EOS)
    are read at the right place by transformers' read-out, which looks at the ids, not the mask.
    """
    input_ids = input_ids.masked_fill(attention_mask == 0, pad_id)
    return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0].float()


@dataclass
class RewardModel:
    model: PreTrainedModel
    tokenizer: object
    format: ChatFormat

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def pad_id(self) -> int:
        return self.model.config.pad_token_id

    def encode(self, messages: list[Message]) -> list[int]:
        """The ids scored for a conversation ending with an assistant reply (prompt, reply, EOS)."""
        return render_training(messages, self.format, self.tokenizer)[0]

    @torch.no_grad()
    def score_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Scores of a padded batch (either side). input_ids, attention_mask: (B, T) -> (B,) float32 on the
        model's device. The ids must come from this model's tokenizer (or one with the same vocabulary)."""
        return sequence_scores(self.model, input_ids.to(self.device), attention_mask.to(self.device), self.pad_id)

    def score_conversations(self, conversations: list[list[Message]], batch_size: int = 8) -> list[float]:
        """One score per conversation; each ends with the assistant reply being judged."""
        scores: list[float] = []
        for start in range(0, len(conversations), batch_size):
            rows = [self.encode(messages) for messages in conversations[start:start + batch_size]]
            scores += self.score_ids(*pad_rows(rows, self.pad_id)).tolist()
        return scores


def load_reward_model(folder: str | os.PathLike, device: str | torch.device | None = None) -> RewardModel:
    """A reward folder written by `chowa reward`, in eval mode on `device` (default: CUDA if present)."""
    folder = Path(folder)
    if not has_weights(folder):
        raise ChowaError(f"reward model: {folder} holds no model weights")
    model = load_model(folder, "sequence-classification", device=device or default_device())
    if model.config.num_labels != 1 or model.config.pad_token_id is None:
        raise ChowaError(f"reward model: {folder}/config.json needs num_labels 1 and a pad_token_id (found "
                         f"{model.config.num_labels} and {model.config.pad_token_id}); was it written by chowa reward?")
    return RewardModel(model.eval(), load_tokenizer(folder), detect_format(folder))


def score_file(model_dir: str | os.PathLike, input_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
               batch_size: int = 8, options: ReadOptions | None = None) -> str:
    """`chowa reward score`: the JSONL text of the input's records with scores added (also written to `out_path`).
    The input is any data source of `chowa.data.records` (JSONL, Parquet, a datasets folder, hf:...)."""
    reward_model = load_reward_model(model_dir)
    parsed = [item for source in expand_sources([str(input_path)])
              for item in parse_records(source, lambda record: (record, _scored_conversations(record)),
                                        options=options)[0]]
    records = [record for _, (record, _) in parsed]
    slots = [(index, key) for index, (_, (_, scored)) in enumerate(parsed) for key, _ in scored]
    conversations = [messages for _, (_, scored) in parsed for _, messages in scored]
    try:
        scores = reward_model.score_conversations(conversations, batch_size)
    except ChowaError as exc:
        raise ChowaError(f"{input_path}: {exc}") from None
    for (index, key), score in zip(slots, scores, strict=True):
        records[index][key] = round(score, 6)
    text = "".join(json_line(record) for record in records)
    if out_path is not None:
        atomic_write_text(out_path, text)
    return text


def _scored_conversations(record: object) -> list[tuple[str, list[Message]]]:
    """(key to write, conversation) for a record: one for a conversation, two for a preference pair."""
    pair_format = preference_format(record)
    if pair_format is not None:
        chosen, rejected = PAIR_PARSERS[pair_format](record).conversations()
        return [("chosen_score", chosen), ("rejected_score", rejected)]
    data_format = detect_data_format(record)
    if data_format is None:
        raise BadRecord("", "not a conversation ending with a reply, nor a chosen/rejected pair")
    return [("score", PARSERS[data_format](record))]


def main(cfg: RewardScoreConfig) -> Path | None:
    """`chowa reward score`: the scored records to `out`, or to stdout."""
    if cfg.out:
        check_writable(cfg.out, "--out")
    text = score_file(cfg.model, cfg.input, cfg.out or None, cfg.batch_size, ReadOptions.of(cfg))
    if cfg.out:
        return Path(cfg.out)
    print(text, end="")
    return None
