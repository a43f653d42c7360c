"""Sampling options, and the configs of `chowa generate` and `chowa chat`.

`Sampling` is what every command that generates replies takes (generate, chat, compare, eval heldout): each option
left unset (None) takes the chat format's model-card default (`chowa.formats`), and what the user sets wins.

Run as:
    chowa generate --model runs/demo/sft --prompt "3たす4は?" --greedy
"""

from __future__ import annotations

from dataclasses import dataclass

from chowa.config import REQUIRED, option
from chowa.config.reading import ReadConfig
from chowa.errors import ChowaError
from chowa.formats import FORMATS, ChatFormat

_SAMPLING = "sampling (Hugging Face semantics; unset = the format's model-card default)"
# Used when a format's card gives no reply length.
DEFAULT_MAX_NEW_TOKENS = 128


@dataclass
class Sampling:
    """Sampling options; None means "the chat format's default" (see `resolve`)."""

    temperature: float | None = option(None, "Softmax temperature; 0 means greedy decoding.", group=_SAMPLING,
                                       minimum=0)
    top_p: float | None = option(None, "Nucleus sampling mass.", group=_SAMPLING, above=0, maximum=1)
    top_k: int | None = option(None, "Sample among the k most likely tokens (0 = all).", group=_SAMPLING, minimum=0)
    repetition_penalty: float | None = option(None, "Divide logits of tokens already present (>1 discourages "
                                                    "repeats).", group=_SAMPLING, above=0)
    max_new_tokens: int | None = option(None, "Longest reply in tokens.", group=_SAMPLING, minimum=1)
    greedy: bool = option(False, "Greedy decoding instead of sampling.", group=_SAMPLING)
    stop: list[str] = option([], "Extra stop string (repeatable); the format's speaker tags always stop.",
                             metavar="TEXT", repeat=True, group=_SAMPLING)
    seed: int = option(0, "Sampling seed.", group=_SAMPLING)
    valid_groups: bool = option(False, "Byte-group models only: emit only groups the codec allows (whole "
                                       "characters and specials), the best (or a drawn) valid group of the four "
                                       "heads; off, as on the byGPT-JP card.", group=_SAMPLING)

    def resolve(self, fmt: ChatFormat | None) -> dict:
        """`model.generate` keyword arguments: the format's card defaults (transformers' for a base model without a
        format) overridden by what is set here."""
        options = {"do_sample": True, "max_new_tokens": DEFAULT_MAX_NEW_TOKENS} | dict(fmt.generation if fmt else {})
        for key in ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens"):
            if getattr(self, key) is not None:
                options[key] = getattr(self, key)
        if self.greedy or self.temperature == 0:  # temperature 0 is greedy, as OpenAI, vLLM and TRL read it
            options["do_sample"] = False
        if not options["do_sample"]:
            for key in ("temperature", "top_p", "top_k"):
                options.pop(key, None)
        options["stop_strings"] = list(dict.fromkeys([*(fmt.stop if fmt else ()), *self.stop])) or None
        return options

    def sampling(self) -> Sampling:
        """Just the sampling options of a config that extends this class."""
        return Sampling(**{name: getattr(self, name) for name in Sampling.__dataclass_fields__})


@dataclass
class ChatConfig(Sampling):
    model: str = option(REQUIRED, "Chat model folder (chowa's or rinna layout).", metavar="DIR")
    format: str = option("", "Chat format (default: the folder's chat_format.json, chat_template or rinna layout).",
                         choices=tuple(FORMATS))


@dataclass
class GenerateConfig(ChatConfig, ReadConfig):
    prompt: str | None = option(None, "One user message.", metavar="TEXT")
    input: str = option("", "Prompt records (JSONL with `messages`, Alpaca `instruction`/`input`, or `prompt`); each "
                            "is written back with a `reply` field.", metavar="FILE.jsonl")
    out: str = option("", "Where to write records with replies (default: stdout).", metavar="FILE.jsonl")
    batch_size: int = option(8, "Prompts generated together.", minimum=1)

    def __post_init__(self):
        if (self.prompt is None) == (not self.input):
            raise ChowaError("generate: give exactly one of --prompt TEXT and --input FILE.jsonl")
