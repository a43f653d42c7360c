"""A judge: any OpenAI-compatible chat-completions endpoint (OpenAI, Azure OpenAI, vLLM, SGLang, `chowa serve`), asked
many questions at once.

Requests run a few at a time (`concurrency`), are retried with exponential backoff on 429, 5xx, timeouts and refused
connections (honouring `Retry-After`), and every answer is appended to an on-disk cache keyed by (judge model,
messages, settings) the moment it arrives: a rerun, or a run resumed after a crash, never asks the same question
twice. An error that retrying cannot mend (401, 404, a bad request) stops the run with the endpoint's own message;
the answers already received stay in the cache. The API key comes from an environment variable, never from the
command line, and is never written anywhere.

Run as (from Python):
    judge = JudgeClient("http://127.0.0.1:8000", "gpt-4", cache=Path("runs/judge_cache.jsonl"))
    replies = judge.ask([{"messages": [...], "temperature": 0, "max_tokens": 2048}], desc="pairwise")
    judge.usage   # {"requests": 1, "cached": 0, "prompt_tokens": ..., "completion_tokens": ...}
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from chowa.errors import ChowaError
from chowa.files import atomic_write_text

RETRYABLE = (429, 500, 502, 503, 504)


class JudgeError(ChowaError):
    """The judge endpoint answered with an error retrying cannot mend, or could not be reached at all."""


def chat_url(url: str) -> str:
    """The chat-completions address of a base URL (`http://host:port`, `.../v1`) or of the full address itself."""
    if not url.startswith(("http://", "https://")):
        raise JudgeError(f"--judge-url {url!r}: expected an http:// or https:// address, e.g. https://api.openai.com")
    url, _, query = url.partition("?")  # Azure's deployment URLs carry ?api-version=...
    url = url.rstrip("/")
    if not url.endswith("/chat/completions"):
        direct = url.endswith("/v1") or "/deployments/" in url
        url = f"{url}/chat/completions" if direct else f"{url}/v1/chat/completions"
    return f"{url}?{query}" if query else url


class JudgeClient:
    def __init__(self, url: str, model: str, key_env: str = "OPENAI_API_KEY", cache: Path | None = None,
                 concurrency: int = 4, retries: int = 6, timeout: float = 600.0, backoff: float = 1.0,
                 key_header: str = "Authorization"):
        self.url, self.model, self.key_header = chat_url(url), model, key_header
        self.key_env, self.concurrency, self.retries = key_env, concurrency, retries
        self.timeout, self.backoff = timeout, backoff
        self.cache_file = Path(cache) if cache else None
        self.answers = self._read_cache()
        self.usage = {"requests": 0, "cached": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._lock = threading.Lock()

    def ask(self, calls: list[dict], desc: str = "judge") -> list[str]:
        """The judge's reply text to each call (`messages` plus settings such as temperature and max_tokens; a key
        starting with `_` is part of the cache key only, e.g. `_repeat` to ask the same question again)."""
        keys = [self._key(call) for call in calls]
        missing = {key: call for key, call in zip(keys, calls, strict=True) if key not in self.answers}
        self.usage["cached"] += len(calls) - sum(1 for key in keys if key in missing)
        if missing:
            self._ask_missing(missing, desc)
        return [self.answers[key] for key in keys]

    def usage_line(self) -> str:
        """What the judge was asked, for the end of a run."""
        usage = self.usage
        return (f"{usage['requests']} calls to {self.model} ({usage['cached']} answered from the cache), "
                f"{usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} completion tokens")

    def _ask_missing(self, missing: dict[str, dict], desc: str) -> None:
        """Ask concurrently; each answer is cached by its worker as it arrives. The first error that retrying did
        not mend cancels the calls not yet sent and is raised once the calls in flight are done."""
        pool = ThreadPoolExecutor(self.concurrency)
        futures = [pool.submit(self._ask_one, key, call) for key, call in missing.items()]
        failure = None
        try:
            with tqdm(total=len(missing), desc=desc, unit="call") as bar:
                for future in as_completed(futures):
                    bar.update(1)
                    if future.exception() is not None:
                        failure = future.exception()
                        break
        finally:  # the calls not yet sent are dropped; those in flight finish and are cached
            pool.shutdown(wait=True, cancel_futures=True)
        if failure is not None:
            answered = sum(key in self.answers for key in missing)
            kept = f"; the {answered} answered are kept in {self.cache_file}" if self.cache_file else ""
            raise failure if not isinstance(failure, JudgeError) else JudgeError(
                f"{failure} ({len(missing) - answered} of {len(missing)} calls unanswered{kept})")

    def _ask_one(self, key: str, call: dict) -> None:
        reply = self._post(call)
        if reply:  # an empty reply (a content filter, no tokens) is asked again next time, not kept
            self._remember(key, reply)
        else:
            self.answers[key] = reply

    def _key(self, call: dict) -> str:
        text = json.dumps({"model": self.model, **call}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def _read_cache(self) -> dict[str, str]:
        answers: dict[str, str] = {}
        if self.cache_file is None or not self.cache_file.is_file():
            return answers
        text = self.cache_file.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        for number, line in enumerate(list(lines), start=1):
            try:
                record = json.loads(line)
                answers[record["key"]] = record["reply"]
            except (json.JSONDecodeError, KeyError, TypeError):
                if number < len(lines):
                    raise JudgeError(f"{self.cache_file}:{number}: not a judge cache record") from None
                lines.pop()  # the last line was cut by a crash while it was written
        repaired = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        if repaired != text:  # so the next answer is appended on a line of its own
            atomic_write_text(self.cache_file, repaired)
        return answers

    def _remember(self, key: str, reply: str) -> None:
        with self._lock:
            self.answers[key] = reply
            if self.cache_file is not None:
                self.cache_file.parent.mkdir(parents=True, exist_ok=True)
                with self.cache_file.open("a", encoding="utf-8") as sink:
                    sink.write(json.dumps({"key": key, "model": self.model, "reply": reply}, ensure_ascii=False)
                               + "\n")

    def _post(self, call: dict) -> str:
        body = {"model": self.model, **{k: v for k, v in call.items() if not k.startswith("_")}}
        data = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if os.environ.get(self.key_env):  # OpenAI's Authorization: Bearer KEY, or the key alone (Azure's api-key)
            key = os.environ[self.key_env]
            headers[self.key_header] = f"Bearer {key}" if self.key_header.lower() == "authorization" else key
        for attempt in range(self.retries + 1):
            wait = self.backoff * 2 ** attempt
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return self._reply(json.loads(response.read()))
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code not in RETRYABLE or attempt == self.retries:
                    hint = f" (is {self.key_env} set to a valid key?)" if exc.code == 401 else ""
                    raise JudgeError(f"judge {self.url}: HTTP {exc.code}: {message}{hint}") from None
                wait = max(wait, _retry_after(exc))
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:  # incl. timeouts
                if attempt == self.retries:
                    reason = getattr(exc, "reason", exc)
                    raise JudgeError(f"judge {self.url}: {reason} (after {self.retries + 1} attempts)") from None
            time.sleep(min(wait, 60.0))
        raise AssertionError("unreachable")

    def _reply(self, answer: dict) -> str:
        try:
            reply = answer["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"judge {self.url}: the answer is not a chat completion: {str(answer)[:200]}") from None
        usage = answer.get("usage") or {}
        with self._lock:
            self.usage["requests"] += 1
            self.usage["prompt_tokens"] += usage.get("prompt_tokens") or 0
            self.usage["completion_tokens"] += usage.get("completion_tokens") or 0
        return reply


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return json.loads(exc.read())["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return str(exc.reason)


def _retry_after(exc: urllib.error.HTTPError) -> float:
    try:
        return float(exc.headers.get("Retry-After") or 0)
    except ValueError:
        return 0.0
