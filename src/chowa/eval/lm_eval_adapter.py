"""chowa checkpoints as an lm-evaluation-harness model named "chowa" (needs the `lm-eval` extra).

A model folder loads as chowa loads it everywhere (`chowa.tokenizer.load_tokenizer`: SentencePiece-exact for
rinna folders; `AutoModelForCausalLM`). `loglikelihood` is `chowa.eval.models.HFCausalLM`'s, so scores equal
`chowa eval jglue`'s: context and continuation tokenized separately, an empty context conditioned on EOS, inputs
left-truncated to the model's context, requests sharing a context batched over one KV cache. (lm-eval's own `hf`
model tokenizes context + continuation together; the two agree unless a token spans the boundary.)
`loglikelihood_rolling` scores lm-eval's disjoint rolling windows (EOS prefix, one forward per window).
`generate_until` follows lm-eval's `hf` semantics rather than the JGLUE harness's stop-token quirk: requests
are grouped by their generation kwargs (normalised by lm-eval), left-padded in batches, decoded greedily unless
the task asks for `do_sample`, stopped at EOS, any `until` string or `max_gen_toks` new tokens, and cut at
every `until` string. `--apply_chat_template` renders with the folder's chowa chat format.

lm-eval 0.4 has no plugin entry point for models, so the `lm-eval` command cannot find "chowa" by itself:
importing this module registers it, and running it as a module is the `lm-eval` command with "chowa" known
(same arguments; `--include_path DIR` adds local YAML tasks). On the command line give the device with
`--device`, not in `--model_args` (lm-eval passes both and the model would receive it twice).

Run as:
    python -m chowa.eval.lm_eval_adapter run --model chowa --model_args pretrained=runs/demo/sft \
        --tasks my_task --include_path tasks/ --batch_size 8
    import chowa.eval.lm_eval_adapter; lm_eval.simple_evaluate(model="chowa", model_args="pretrained=DIR", ...)
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F

from chowa.errors import ChowaError
from chowa.eval.models import HFCausalLM
from chowa.formats import ChatFormat, detect_format, get_format, render_prompt
from chowa.formats import chat_template as jinja_chat_template
from chowa.padding import pad_rows

try:
    import lm_eval.models  # noqa: F401  (built-in models first: lm-eval imports them only into an empty registry)
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
    from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
except ModuleNotFoundError as exc:
    raise ChowaError(f"the lm-eval adapter needs lm-eval: pip install 'chowa[lm-eval]' ({exc})") from None

log = logging.getLogger(__name__)


@register_model("chowa")
class ChowaLM(LM):
    """model_args: pretrained=DIR (required), dtype (auto, float32, bfloat16, ...), device, batch_size, format."""

    def __init__(self, pretrained: str, dtype: str = "auto", device: str | None = None,
                 batch_size: int | str | None = 8, max_batch_size: int | None = None, format: str | None = None,
                 max_gen_toks: int = 256):
        super().__init__()
        self.folder = str(pretrained)
        self.lm = HFCausalLM.from_folder(self.folder, dtype=dtype, device=device, batch_size=_batch_size(batch_size))
        self.tokenizer = self.lm.tokenizer
        self.max_gen_toks = int(max_gen_toks)
        self._format_name = format
        self._device = self.lm.device

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        self.lm.progress = not disable_tqdm
        results = self.lm.loglikelihood([request.args for request in requests])
        for request, result in zip(requests, results, strict=True):
            self.cache_hook.add_partial("loglikelihood", request.args, result)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        results = []
        for request in requests:
            (text,) = request.args
            windows = get_rolling_token_windows(self.lm.encode(text), prefix_token=self.lm.eos_token_id,
                                                max_seq_len=self.lm.max_length, context_len=1)
            total = sum(self._window_logprob(*make_disjoint_window(w)) for w in windows)
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
            results.append(total)
        return results

    @torch.no_grad()
    def _window_logprob(self, context: list[int], targets: list[int]) -> float:
        """Sum of log p(targets) after context; len(context) + len(targets) <= max_length + 1."""
        input_ids = torch.tensor([(context + targets)[:-1]], device=self.lm.device)
        logprobs = F.log_softmax(self.lm.model(input_ids).logits[0, -len(targets):].float(), dim=-1)
        return logprobs.gather(1, torch.tensor(targets, device=self.lm.device)[:, None]).sum().item()

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(repr(sorted(request.args[1].items())), []).append(i)
        outputs: list[str | None] = [None] * len(requests)
        for indices in groups.values():
            kwargs = normalize_gen_kwargs(requests[indices[0]].args[1], self.max_gen_toks)
            # Longest context first, so each batch pads little.
            indices = sorted(indices, key=lambda i: -len(requests[i].args[0]))
            for start in range(0, len(indices), self.lm.batch_size):
                chunk = indices[start:start + self.lm.batch_size]
                texts = self._generate([requests[i].args[0] for i in chunk], dict(kwargs))
                for i, text in zip(chunk, texts, strict=True):
                    outputs[i] = text
                    self.cache_hook.add_partial("generate_until", requests[i].args, text)
        return outputs

    @torch.no_grad()
    def _generate(self, contexts: list[str], kwargs: dict) -> list[str]:
        eos_text = self.tokenizer.decode([self.lm.eos_token_id], skip_special_tokens=False)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
        max_gen_toks = kwargs.pop("max_gen_toks")
        if not kwargs.get("do_sample"):
            kwargs = {k: v for k, v in kwargs.items() if k not in ("temperature", "top_p", "top_k")}
        max_context = max(1, self.lm.max_length - max_gen_toks)
        rows = [(self.lm.encode(c) or [self.lm.eos_token_id])[-max_context:] for c in contexts]
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.lm.eos_token_id
        input_ids, attention_mask = pad_rows(rows, pad_id, "left", self.lm.device)
        stop_strings = [s for s in until if s != eos_text] or None
        output = self.lm.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                        max_new_tokens=max_gen_toks, stop_strings=stop_strings,
                                        tokenizer=self.tokenizer, pad_token_id=pad_id,
                                        eos_token_id=self.lm.eos_token_id, **kwargs)
        texts = []
        for ids in output[:, input_ids.shape[1]:].tolist():
            ids = ids[:ids.index(self.lm.eos_token_id)] if self.lm.eos_token_id in ids else ids
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            for stop in until:
                text = text.split(stop)[0]
            texts.append(text)
        return texts

    # --- chat templates (`--apply_chat_template`) -----------------------------------------------------------

    @property
    def chat_format(self) -> ChatFormat:
        return get_format(self._format_name) if self._format_name else detect_format(self.folder)

    @property
    def tokenizer_name(self) -> str:
        return self.folder.replace(os.sep, "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return jinja_chat_template(self.chat_format)

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        if not add_generation_prompt:
            raise ChowaError("lm-eval adapter: a prefilled assistant turn (add_generation_prompt=False) is not "
                             "supported; chowa prompts end with the assistant cue")
        return render_prompt(chat_history, self.chat_format, self.tokenizer.eos_token or "")


def _batch_size(value: int | str | None) -> int:
    """lm-eval passes batch_size as given on its command line: a number, "auto" or "auto:N"."""
    if value is None:
        return 8
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    log.warning("batch_size %r: chowa has no automatic batch size; using 8", value)
    return 8


def main() -> None:
    """The `lm-eval` command with the "chowa" model registered."""
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
