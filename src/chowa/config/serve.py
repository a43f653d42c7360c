"""The config of `chowa serve`: which folders to serve, where to listen, and the limits that keep the server safe.

Run as:
    chowa serve --model sft=runs/demo/sft --reward-model rm=runs/demo/reward --port 8000
"""

from __future__ import annotations

from dataclasses import dataclass

from chowa.config import named_folders, option
from chowa.errors import ChowaError
from chowa.formats import FORMATS

_LIMITS = "limits"


@dataclass
class ServeConfig:
    model: list[str] = option([], "A chat or base model to serve as [NAME=]DIR (repeatable; NAME defaults to the "
                                  "folder's name); requests pick one by `model`.", metavar="[NAME=]DIR", repeat=True)
    reward_model: list[str] = option([], "A reward model (chowa reward output) to serve on POST /v1/rewards as "
                                         "[NAME=]DIR (repeatable).", metavar="[NAME=]DIR", repeat=True)
    host: str = option("127.0.0.1", "Address to listen on; the default answers this machine only (0.0.0.0 opens "
                                    "the server to the network: set --api-key-env too).")
    port: int = option(8000, "Port (0 picks a free one; the line 'listening on …' says which).", minimum=0,
                       maximum=65535)
    api_key_env: str = option("", "Environment variable holding the API key every /v1 route then requires as "
                                  "`Authorization: Bearer KEY` (default: no key).", metavar="VAR")
    format: str = option("", "Chat format for every served model (default: each folder's own).",
                         choices=tuple(FORMATS))
    trust_remote_code: bool = option(False, "Run Python code shipped in a model folder (`auto_map`). Off: such a "
                                            "folder is refused. Byte-group folders need no flag: chowa loads them "
                                            "with its own copy of their code.")
    device: str = option("", "Device (default: CUDA when present).")
    dtype: str = option("auto", "Weights dtype (auto: the checkpoint's).",
                        choices=("auto", "float32", "float16", "bfloat16"))
    max_batch: int = option(32, "Rows decoded together per model (requests and their `n` choices).", minimum=1,
                            group=_LIMITS)
    max_queue: int = option(256, "Requests waiting per model; more are answered 503 with Retry-After.", minimum=1,
                            group=_LIMITS)
    max_body_bytes: int = option(4 * 1024 * 1024, "Largest request body; larger ones get 413.", minimum=1024,
                                 group=_LIMITS)
    max_tokens_cap: int = option(4096, "Largest `max_tokens` a request may ask for (400 above it).", minimum=1,
                                 group=_LIMITS)
    max_n: int = option(16, "Largest `n` (choices per request).", minimum=1, group=_LIMITS)
    reward_batch_size: int = option(16, "Conversations per reward-model forward pass (requests arriving together "
                                        "share one).", minimum=1, group=_LIMITS)

    def __post_init__(self):
        if not self.model and not self.reward_model:
            raise ChowaError("serve: give at least one --model [NAME=]DIR or --reward-model [NAME=]DIR")
        self.model_folders()
        self.reward_folders()

    def model_folders(self) -> dict[str, str]:
        """Name -> folder of the causal LMs, in the order given."""
        return named_folders(self.model, "serve: --model")

    def reward_folders(self) -> dict[str, str]:
        """Name -> folder of the reward models; no name is shared with a causal LM."""
        return named_folders(self.reward_model, "serve: --reward-model", self.model_folders())
