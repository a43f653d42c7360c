"""`POST /v1/rewards`: scores from a served reward model, with conversations from requests that arrive together
scored in shared batches by one worker thread.

Request: `{"model": NAME, "input": ITEM | [ITEM, ...]}` where an ITEM is `{"messages": [...]}` ending with the
assistant reply to score, or `{"prompt": USER_TEXT, "reply": ASSISTANT_TEXT}`. Response: `{"object": "list",
"model": NAME, "data": [{"object": "reward", "index": i, "score": s}], "usage": {"prompt_tokens", "total_tokens"}}`.
The score is `chowa reward score`'s: the conversation rendered in the reward model's chat format (prompt, reply, EOS).

Run as:
    curl -s localhost:8000/v1/rewards -d '{"model": "rm", "input": {"prompt": "3たす4は?", "reply": "7です。"}}'
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass

from chowa.errors import ChowaError
from chowa.folders import context_length
from chowa.padding import pad_rows
from chowa.reward.score import RewardModel
from chowa.serve.protocol import APIError


def read_items(body: dict) -> list[list[dict]]:
    """The conversations of a rewards request, checked (400 naming the item)."""
    items = body.get("input")
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list) or not items:
        raise APIError(400, "input must be an item or a non-empty list of items ({messages} or {prompt, reply})",
                       "input")
    conversations = []
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if isinstance(item, dict) and isinstance(item.get("messages"), list):
            messages = item["messages"]
            if not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                       for m in messages) or not messages or messages[-1].get("role") != "assistant":
                raise APIError(400, f"{where}.messages must be role/content messages ending with the assistant's "
                                    "reply to score", f"{where}.messages")
            conversations.append([{"role": m["role"], "content": m["content"]} for m in messages])
        elif isinstance(item, dict) and isinstance(item.get("prompt"), str) and isinstance(item.get("reply"), str):
            conversations.append([{"role": "user", "content": item["prompt"]},
                                  {"role": "assistant", "content": item["reply"]}])
        else:
            raise APIError(400, f"{where} must be {{\"messages\": [...]}} or {{\"prompt\": str, \"reply\": str}}",
                           where)
    return conversations


@dataclass(eq=False)
class _Batch:
    rows: list[list[int]]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class RewardWorker:
    """Scores tokenized conversations on one thread, taking every waiting request into the next batches."""

    def __init__(self, name: str, scorer: RewardModel, batch_size: int):
        self.name, self.scorer, self.batch_size = name, scorer, batch_size
        self._queue: queue.Queue[_Batch | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=f"chowa-reward-{name}", daemon=True)

    def encode(self, conversations: list[list[dict]]) -> list[list[int]]:
        """Each conversation's ids as `chowa reward score` reads them; 400 naming one that does not fit."""
        context = context_length(self.scorer.model.config)
        rows = []
        for index, messages in enumerate(conversations):
            try:
                rows.append(self.scorer.encode(messages))
            except ChowaError as exc:
                raise APIError(400, f"input[{index}]: {exc}", f"input[{index}]") from None
            if context and len(rows[-1]) > context:
                raise APIError(400, f"input[{index}] is {len(rows[-1])} tokens, more than the reward model's context "
                                    f"of {context}", f"input[{index}]")
        return rows

    async def score(self, rows: list[list[int]]) -> list[float]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Batch(rows, future, loop))
        return await future

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            waiting = [self._queue.get()]
            while not self._queue.empty():
                waiting.append(self._queue.get())
            batches = [b for b in waiting if b is not None]
            if batches:
                self._score(batches)
            if None in waiting:
                return

    def _score(self, batches: list[_Batch]) -> None:
        """Score the waiting requests' rows together; if that fails, each request on its own, so only the one
        that breaks the model fails."""
        try:
            scores = self._scores([row for batch in batches for row in batch.rows])
        except Exception as exc:  # noqa: BLE001 - retried request by request below
            if len(batches) == 1:
                batches[0].loop.call_soon_threadsafe(_settle, batches[0].future, None, exc)
                return
            for batch in batches:
                self._score([batch])
            return
        for batch in batches:
            batch.loop.call_soon_threadsafe(_settle, batch.future, scores[:len(batch.rows)], None)
            scores = scores[len(batch.rows):]

    def _scores(self, rows: list[list[int]]) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start:start + self.batch_size]
            scores += self.scorer.score_ids(*pad_rows(chunk, self.scorer.pad_id)).tolist()
        return scores


def _settle(future: asyncio.Future, result, exc) -> None:
    if future.done():  # the client went away
        return
    future.set_exception(exc) if exc is not None else future.set_result(result)
