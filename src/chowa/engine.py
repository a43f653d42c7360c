"""Continuous batching: generation requests share one model, each joining the running batch at the next decoding
step and leaving as soon as it is done, over one key/value cache.

Every step (`Engine.step`): cancelled requests leave; waiting requests join while there is room (their prompts run
in groups of similar length, left-padded, and give each its first token) and their cache is appended to the
running one (`chowa.kvcache`); then every running row decodes one token (one 4-byte group for a byte-group model). A
padded position is masked and positions count from a row's first real token, so what a row generates does not
depend on the rows beside it: greedy output alone equals greedy output among 15 others, and a sampled row draws
from its own seeded stream (`chowa.decoding`).

Not transformers' own continuous batching (`generate_batch`, `transformers serve --continuous-batching`): its
paged cache serves its own attention kernels, its per-request settings are temperature, top-k and top-p only (no
repetition penalty, stop strings, seeds or log-probabilities), and it has no byte-group model. This scheduler uses
the model's ordinary forward with a `DynamicCache`, so every architecture chowa trains runs on it unchanged.

Run as (from Python):
    engine = Engine(model, tokenizer, max_batch=16)
    finished = engine.run([Request(prompt_ids, DecodeSettings(), max_new_tokens=64, stop_ids={eos_id})])
    engine.start(); engine.submit(request); ...; engine.stop()     # a server: the loop runs in its own thread
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from chowa.bytegroup import is_byte_model
from chowa.decoding import DecodeSettings, RowStream, choose_token, group_logprob, token_logprobs
from chowa.errors import ChowaError
from chowa.kvcache import BatchCache, accepts, cache_argument, output_cache
from chowa.padding import pad_rows, position_ids_from_mask

log = logging.getLogger(__name__)


class QueueFull(ChowaError):
    """The engine already holds `max_queue` waiting requests."""


@dataclass(eq=False)
class Request:
    """One generation: its prompt and settings, and (filled by the engine) its output.

    Lengths count tokens, or bytes for a byte-group model (which generates whole 4-byte groups)."""

    prompt: list[int]
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    max_new_tokens: int = 128
    min_new_tokens: int = 0
    stop_ids: frozenset[int] = frozenset()
    """A reply ends after one of these tokens (kept in `output`)."""
    stop_strings: tuple[str, ...] = ()
    """A reply ends once its text holds one of these (the text is cut by the caller)."""
    seed: int = 0
    logprobs: int | None = None
    """None: no log-probabilities; k: the chosen token's and the k most likely, per step."""
    on_update: Callable[[Request], None] | None = None
    """Called from the engine's thread after each new token and once when the request finishes."""

    output: list[int] = field(default_factory=list)
    step_logprobs: list[tuple[float, list[tuple[int, float]]]] = field(default_factory=list)
    finish_reason: str | None = None
    """"stop" (a stop token or string), "length", "cancelled" or "error" (then `error` says why)."""
    error: str | None = None
    cancelled: bool = False
    """Set by the caller (a client went away): the request leaves at the next step."""

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


@dataclass(eq=False)
class _Row:
    request: Request
    steps: int
    """How many tokens (groups) the request may still generate."""
    stream: RowStream | torch.Generator | None
    pending: list[int] = field(default_factory=list)
    """The ids chosen last, fed at the next step."""


class Engine:
    """Runs requests on `model` in a continuously refilled batch of at most `max_batch` rows; a step prefills at
    most `max_prefill_tokens` prompt tokens of newcomers (at least one prompt), so running rows keep decoding."""

    def __init__(self, model: torch.nn.Module, tokenizer, max_batch: int = 16, max_queue: int = 1024,
                 max_prefill_tokens: int = 2048):
        self.model, self.tokenizer = model, tokenizer
        self.max_batch, self.max_queue, self.max_prefill_tokens = max_batch, max_queue, max_prefill_tokens
        self.byte_group = is_byte_model(model)
        self.unit = 4 if self.byte_group else 1  # ids per step
        self.pad = list(tokenizer.pad_group) if self.byte_group else _pad_id(tokenizer)
        self._cache_arg = cache_argument(model)
        self._positions = accepts(model, "position_ids") and not self.byte_group
        self._keep_last = accepts(model, "logits_to_keep")
        self._allowed = None
        self._byte_stops: dict[tuple[str, ...], list[list[int]]] = {}
        self.waiting: collections.deque[Request] = collections.deque()
        self.rows: list[_Row] = []
        self.batch: BatchCache | None = None  # the running rows' cache; its mask counts steps (groups)
        self.on_step: Callable[[int], None] | None = None
        """Called with the batch size of every decoding step (a server's metrics)."""
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._admitting: list[Request] = []  # this step's newcomers (failed with the step if it breaks)

    # --- submitting ------------------------------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        """Queue `request`; QueueFull when `max_queue` requests already wait."""
        with self._wake:
            if len(self.waiting) >= self.max_queue:  # requests whose clients left do not hold places
                self.waiting = collections.deque(r for r in self.waiting if not r.cancelled)
            if len(self.waiting) >= self.max_queue:
                raise QueueFull(f"the queue holds {self.max_queue} waiting requests")
            self.waiting.append(request)
            self._wake.notify()

    def run(self, requests: list[Request], progress: Callable[[int], None] | None = None) -> list[Request]:
        """Generate every request in this thread (no server loop); `progress(1)` as each finishes."""
        self.waiting.extend(requests)
        finished = 0
        while self.waiting or self.rows:
            self.step()
            now = len(requests) - self.busy  # what is neither waiting nor running has finished
            if progress is not None and now > finished:
                progress(now - finished)
            finished = now
        return requests

    def check_batching(self) -> None:
        """Run two prompts of unequal length through a join, a decoding step and a row leaving, so a model whose
        cache cannot be batched this way is refused before it serves (ChowaError)."""
        probe = [Request([self._probe_id()] * self.unit * 2, max_new_tokens=self.unit),
                 Request([self._probe_id()] * self.unit, max_new_tokens=3 * self.unit)]
        waiting, self.waiting = self.waiting, collections.deque()
        self.submit(probe[0])
        self.step()
        self.submit(probe[1])
        while self.rows or self.waiting:
            self.step()
        self.waiting = waiting
        for request in probe:
            if request.error:
                raise ChowaError(f"this model cannot be served with continuous batching: {request.error}")

    def _probe_id(self) -> int:
        return self.pad[0] if self.byte_group else self.tokenizer.eos_token_id or 0

    @property
    def busy(self) -> int:
        """Requests being generated or waiting."""
        return len(self.rows) + len(self.waiting)

    # --- the server loop -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Run steps in a background thread while there is work, until `stop`."""
        self._thread = threading.Thread(target=self._loop, name="chowa-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish every queued and running request, then end the loop."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not (self.waiting or self.rows or self._stopping):
                    self._wake.wait()
                if self._stopping and not (self.waiting or self.rows):
                    return
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - whatever broke, fail what it touched and keep serving
                for request in [*(row.request for row in self.rows), *self._admitting]:
                    if not request.done:
                        _fail(request, exc)
                self.rows, self.batch = [], None

    # --- one step --------------------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self) -> None:
        """Let cancelled rows go, admit waiting requests, decode one token for every running row."""
        cancelled = [i for i, row in enumerate(self.rows) if row.request.cancelled]
        for index in cancelled:
            _finish(self.rows[index].request, "cancelled")
        self._keep([i for i in range(len(self.rows)) if i not in cancelled])
        newcomers = self._admitting = self._take_waiting()
        for group in _similar_lengths(newcomers):
            self._prefill(group)
        if self.rows:
            self._decode()

    def _take_waiting(self) -> list[Request]:
        """Waiting requests, first come first served, up to the free rows and the prefill budget."""
        taken: list[Request] = []
        tokens = 0
        with self._wake:
            while self.waiting and len(self.rows) + len(taken) < self.max_batch:
                request = self.waiting[0]
                if request.cancelled:
                    _finish(self.waiting.popleft(), "cancelled")
                    continue
                if taken and tokens + len(request.prompt) > self.max_prefill_tokens:
                    break
                tokens += len(request.prompt)
                taken.append(self.waiting.popleft())
        return taken

    def _prefill(self, requests: list[Request]) -> None:
        """Run the newcomers' prompts together, give each its first token and add the rows that go on."""
        input_ids, mask = pad_rows([r.prompt for r in requests], self.pad, "left", self.model.device)
        mask = mask[:, ::self.unit]
        try:
            scores, cache = self._forward(input_ids, mask, None)
        except Exception as exc:  # noqa: BLE001 - a prompt that breaks the model fails alone, the server goes on
            for request in requests:
                _fail(request, exc)
            return
        rows = [_Row(r, math.ceil(r.max_new_tokens / self.unit), self._stream(r)) for r in requests]
        keep = self._choose(rows, scores)
        if not keep:
            return
        joined = BatchCache(cache, mask)
        if len(keep) < len(rows):
            joined.keep(keep)
        if self.batch is None:
            self.batch = joined
        else:
            self.batch.join(joined)
        self.rows += [rows[i] for i in keep]

    def _decode(self) -> None:
        step_ids = torch.tensor([row.pending for row in self.rows], device=self.model.device)
        mask = torch.cat([self.batch.mask, self.batch.mask.new_ones(len(self.rows), 1)], 1)
        try:
            scores, self.batch.cache = self._forward(step_ids, mask, self.batch.cache)
        except Exception as exc:  # noqa: BLE001 - the running rows fail; the engine keeps serving
            for row in self.rows:
                _fail(row.request, exc)
            self.rows, self.batch = [], None
            return
        self.batch.mask = mask
        if self.on_step is not None:
            self.on_step(len(self.rows))
        self._keep(self._choose(self.rows, scores))

    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor, cache) -> tuple[torch.Tensor, object]:
        """The last position's scores, (B, V) or (B, 4, 256), and the cache. mask: (B, L) per step, cache + new."""
        if self.byte_group:
            out = self.model(input_ids, attention_mask=mask.repeat_interleave(self.unit, 1), cache=cache,
                             use_cache=True)
            return out.logits[:, -1], out.cache
        kwargs = {"attention_mask": mask, "use_cache": True, self._cache_arg: cache}
        if self._positions:
            kwargs["position_ids"] = position_ids_from_mask(mask)[:, -input_ids.shape[1]:]
        if self._keep_last:
            kwargs["logits_to_keep"] = 1
        out = self.model(input_ids=input_ids, **kwargs)
        return out.logits[:, -1], output_cache(out)

    def _choose(self, rows: list[_Row], scores: torch.Tensor) -> list[int]:
        """Give each row its next token; the indices of the rows that go on (the others finished or failed)."""
        keep = []
        plain = None
        if not self.byte_group:  # every plain greedy row's token at once, with one transfer from the device
            best = scores.max(-1)
            plain = torch.where(torch.isfinite(best.values), best.indices, -1).tolist()
        for index, row in enumerate(rows):
            request = row.request
            try:
                unit = self._next_unit(row, scores[index], plain[index] if plain else None)
                request.output += unit
                row.pending, row.steps = unit, row.steps - 1
                reason = "stop" if self._stopped(request, unit) else "length" if row.steps <= 0 else None
            except Exception as exc:  # noqa: BLE001 - this row alone fails (NaN scores, an id it cannot decode)
                _fail(request, exc)
                continue
            if reason is None:
                keep.append(index)
                _notify(request)
            else:
                _finish(request, reason)
        return keep

    def _next_unit(self, row: _Row, scores: torch.Tensor, argmax: int | None) -> list[int]:
        """scores: the row's (V,) or (4, 256); `argmax`: its best token (−1 if not finite), which a plain greedy
        row takes."""
        request, settings = row.request, row.request.settings
        banned = sorted(request.stop_ids) if len(request.output) < request.min_new_tokens else None
        if argmax is not None and argmax >= 0 and not (settings.do_sample or banned
                                                       or settings.repetition_penalty != 1.0):
            token = argmax
        else:  # the repetition penalty's input; the other filters do not read it
            seen = torch.tensor(request.prompt + request.output if settings.repetition_penalty != 1.0 else [],
                                dtype=torch.long, device=scores.device)
            if self.byte_group:
                return self._next_group(row, scores, seen)
            token = choose_token(scores, seen, settings, row.stream, banned)
        if request.logprobs is not None:
            request.step_logprobs.append(token_logprobs(scores, token, request.logprobs))
        return [token]

    def _next_group(self, row: _Row, scores: torch.Tensor, seen: torch.Tensor) -> list[int]:
        from chowa.bytegroup.hf.modeling_bytegroup import allowed_bytes, pick_groups

        settings = row.request.settings
        if settings.valid_groups and self._allowed is None:
            self._allowed = allowed_bytes(self.model.config, scores.device)
        group = pick_groups(scores[None], seen[None], torch.ones_like(seen)[None], settings.do_sample,
                            settings.temperature, settings.top_k, settings.top_p, settings.repetition_penalty,
                            self._allowed if settings.valid_groups else None, row.stream)[0].tolist()
        if row.request.logprobs is not None:
            row.request.step_logprobs.append((group_logprob(scores, group), []))
        return group

    def _stopped(self, request: Request, unit: list[int]) -> bool:
        """Whether the reply ends here: a stop token, or (once `min_new_tokens` are out) a stop string."""
        if self.byte_group:
            return self._byte_stopped(request)
        if unit[0] in request.stop_ids:
            return True
        if not request.stop_strings or len(request.output) < request.min_new_tokens:
            return False
        longest = max(len(stop) for stop in request.stop_strings)
        tail = self.tokenizer.decode(request.output[-(4 * longest + 4):], skip_special_tokens=False)
        return any(stop in tail for stop in request.stop_strings)

    def _byte_stopped(self, request: Request) -> bool:
        from chowa.bytegroup.hf.modeling_bytegroup import ends_with_stop, stop_bytes

        if request.stop_strings not in self._byte_stops:
            stops = [self.tokenizer.encode(stop, add_special_tokens=False) for stop in request.stop_strings]
            self._byte_stops[request.stop_strings] = stop_bytes(self.model.config,
                                                                [*stops, list(self.tokenizer.eos_token_ids)])
        return ends_with_stop(request.output, self._byte_stops[request.stop_strings])

    def _stream(self, request: Request) -> RowStream | torch.Generator | None:
        if not request.settings.do_sample:
            return None
        if self.byte_group:  # group_generate draws with torch.multinomial from one generator per prompt
            return torch.Generator(device=self.model.device).manual_seed(request.seed)
        return RowStream(request.seed, self.model.device)

    def _keep(self, keep: list[int]) -> None:
        """Keep only these running rows (the others finished, failed or were cancelled)."""
        if len(keep) == len(self.rows):
            return
        if keep:
            self.batch.keep(keep)
        else:
            self.batch = None
        self.rows = [self.rows[i] for i in keep]


def _similar_lengths(requests: list[Request], waste: float = 0.25) -> list[list[Request]]:
    """The newcomers in groups of similar prompt length, shortest first, so padding adds at most `waste` of a
    group's real tokens (one forward pass per group: a short prompt is not padded to the longest)."""
    groups: list[list[Request]] = []
    for request in sorted(requests, key=lambda r: len(r.prompt)):
        group = groups[-1] if groups else None
        if group and len(request.prompt) * (len(group) + 1) <= (1 + waste) * (
                sum(len(r.prompt) for r in group) + len(request.prompt)):
            group.append(request)
        else:
            groups.append([request])
    return groups


def _notify(request: Request) -> None:
    if request.on_update is not None:
        request.on_update(request)


def _finish(request: Request, reason: str) -> None:
    request.finish_reason = reason
    _notify(request)


def _fail(request: Request, exc: Exception) -> None:
    if not isinstance(exc, ChowaError):
        log.error("generation failed:\n%s", "".join(traceback.format_exception(exc)))
    request.error = str(exc) if isinstance(exc, ChowaError) else f"generation failed: {type(exc).__name__}: {exc}"
    _finish(request, "error")


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
