"""The HTTP side of `chowa serve`: an OpenAI-compatible FastAPI app over the served models' engines.

Routes: `POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/rewards`, `GET /v1/models` (these need the
API key when one is set), `GET /health`, `GET /metrics` (Prometheus) and `GET /` (the chat page). Every error is
OpenAI's `{"error": {...}}` with its status. A request's choices run on its model's engine; the handler waits on
the engine's progress through an asyncio event, and a client that goes away cancels its rows at the next step.

Run as (from Python):
    app = build_app(models, rewards, cfg, api_key=None); uvicorn.run(app)
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException

from chowa.config.serve import ServeConfig
from chowa.engine import QueueFull
from chowa.serve.metrics import BATCH_BUCKETS, Metrics
from chowa.serve.models import Job, ServedModel
from chowa.serve.protocol import APIError, parse_body, read_chat, read_completions
from chowa.serve.responses import stream_events, whole_response
from chowa.serve.rewards import RewardWorker, read_items

log = logging.getLogger("chowa.serve")


class _Watch:
    """Wakes the handler when one of its rows progresses (called on the engine's thread) and times the tokens."""

    def __init__(self, wakeups: _Wakeups, metrics: Metrics, model: str, started: float):
        self.wakeups, self.metrics, self.model, self.started = wakeups, metrics, model, started
        self.event = asyncio.Event()
        self.last: dict[int, float] = {}

    def __call__(self, request) -> None:
        now, key = time.monotonic(), id(request)
        if request.output and not request.done:
            if key not in self.last:
                self.metrics.observe("chowa_time_to_first_token_seconds", "Time from a request's arrival to its "
                                     "first token.", now - self.started, model=self.model)
            else:
                self.metrics.observe("chowa_inter_token_latency_seconds", "Time between a row's tokens.",
                                     now - self.last[key], model=self.model)
            self.last[key] = now
        self.wakeups.wake(self.event)

    async def wait(self) -> None:
        await self.event.wait()
        self.event.clear()


class _Wakeups:
    """Sets the events of the handlers whose rows progressed, with one call into the event loop per engine step
    (not one per row): fewer wake-ups of the loop, which shares the CPU with the engine."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self.lock, self.pending = loop, threading.Lock(), set()

    def wake(self, event: asyncio.Event) -> None:
        with self.lock:
            scheduled = bool(self.pending)
            self.pending.add(event)
        if not scheduled:
            try:
                self.loop.call_soon_threadsafe(self._set)
            except RuntimeError:  # the event loop has closed (shutdown); nothing waits any more
                pass

    def _set(self) -> None:
        with self.lock:
            events, self.pending = self.pending, set()
        for event in events:
            event.set()


class _BodyLimit:
    """413 for a body over `limit` bytes, announced (Content-Length) or streamed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await JSONResponse(self._error().body(), 413)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise self._error()
            return message

        return await self.app(scope, limited, send)

    def _error(self) -> APIError:
        return APIError(413, f"the request body is larger than this server's limit of {self.limit} bytes "
                             "(chowa serve --max-body-bytes)")


def build_app(models: dict[str, ServedModel], rewards: dict[str, RewardWorker], cfg: ServeConfig,
              api_key: str | None) -> FastAPI:
    metrics = Metrics()
    _watch_engines(models, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.wakeups = _Wakeups(asyncio.get_running_loop())
        for worker in [*(m.engine for m in models.values()), *rewards.values()]:
            worker.start()
        yield
        for worker in [*(m.engine for m in models.values()), *rewards.values()]:
            worker.stop()  # after uvicorn has finished the requests in flight

    app = FastAPI(title="chowa serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_BodyLimit, limit=cfg.max_body_bytes)
    app.add_middleware(_CountRequests, metrics=metrics)
    _add_error_handlers(app)

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise APIError(401, "a valid API key is needed: send Authorization: Bearer KEY", code="invalid_api_key")

    page = resources.files("chowa.serve").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics_text() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict:
        authorize(request)
        data = [{"id": name, "object": "model", "created": m.created, "owned_by": "chowa", "max_model_len": m.context,
                 "chat_format": m.chat.format.name if m.chat.format else None} for name, m in models.items()]
        data += [{"id": name, "object": "model", "created": 0, "owned_by": "chowa", "kind": "reward"}
                 for name in rewards]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        authorize(request)
        return await _generate("chat", request, models, cfg, metrics)

    @app.post("/v1/completions")
    async def completions(request: Request):
        authorize(request)
        return await _generate("completions", request, models, cfg, metrics)

    @app.post("/v1/rewards")
    async def score_rewards(request: Request) -> dict:
        authorize(request)
        body = parse_body(await request.body())
        worker = _pick(rewards, body.get("model"), "reward model")
        rows = worker.encode(read_items(body))
        scores = await worker.score(rows)
        tokens = sum(len(row) for row in rows)
        return {"object": "list", "model": worker.name, "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                "data": [{"object": "reward", "index": i, "score": s} for i, s in enumerate(scores)]}

    return app


def _pick(served: dict, name, what: str = "model"):
    if name is None and len(served) == 1:
        return next(iter(served.values()))
    if not isinstance(name, str):
        raise APIError(400, f"model must name the {what} to use, one of: {', '.join(served)}", "model")
    if name not in served:
        raise APIError(404, f"the {what} {name!r} does not exist; this server has: {', '.join(served) or 'none'}",
                       "model", "model_not_found")
    return served[name]


async def _generate(kind: str, request: Request, models: dict[str, ServedModel], cfg: ServeConfig,
                    metrics: Metrics):
    started = time.monotonic()
    body = parse_body(await request.body())
    generation = (read_chat if kind == "chat" else read_completions)(body, cfg.max_tokens_cap, cfg.max_n)
    served = _pick(models, generation.model)
    jobs, prompt_tokens = (served.chat_jobs if kind == "chat" else served.completion_jobs)(generation)
    watch = _Watch(request.app.state.wakeups, metrics, served.name, started)
    _submit(served, jobs, watch)
    metrics.count("chowa_prompt_tokens_total", "Prompt tokens of accepted requests.", prompt_tokens, model=served.name)

    def finished() -> None:
        for job in jobs:
            if not job.request.done:
                job.request.cancelled = True  # the client went away: the engine lets the row go at its next step
        _count_finished(metrics, served.name, kind, jobs, time.monotonic() - started)

    if generation.stream:
        async def events():
            try:
                async for event in stream_events(kind, served, jobs, prompt_tokens, generation.include_usage,
                                                 watch.wait):
                    yield event
            finally:
                finished()

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    try:
        checked = time.monotonic()
        while not all(job.request.done for job in jobs):
            try:
                await asyncio.wait_for(watch.wait(), timeout=0.1)
            except TimeoutError:
                pass
            if time.monotonic() - checked > 0.1:  # a client that left frees its rows within a tenth of a second
                checked = time.monotonic()
                if await request.is_disconnected():
                    return None
        return whole_response(kind, served, jobs, prompt_tokens)
    finally:
        finished()


def _submit(served: ServedModel, jobs: list[Job], watch: _Watch) -> None:
    for index, job in enumerate(jobs):
        job.request.on_update = watch
        try:
            served.engine.submit(job.request)
        except QueueFull as exc:
            for earlier in jobs[:index]:
                earlier.request.cancelled = True
            raise APIError(503, f"the server is busy ({exc}); retry shortly", code="queue_full") from None


def _count_finished(metrics: Metrics, model: str, kind: str, jobs: list[Job], seconds: float) -> None:
    metrics.count("chowa_generation_tokens_total", "Generated tokens.", sum(len(j.request.output) for j in jobs),
                  model=model)
    for job in jobs:
        metrics.count("chowa_request_finish_total", "Finished choices by reason.", model=model,
                      reason=job.request.finish_reason or "cancelled")
    metrics.observe("chowa_request_latency_seconds", "Time from a request's arrival to its last token.", seconds,
                    model=model, route=kind)


def _watch_engines(models: dict[str, ServedModel], metrics: Metrics) -> None:
    for name, served in models.items():
        served.engine.on_step = lambda size, name=name: metrics.observe(
            "chowa_batch_size", "Rows decoded together per step.", size, BATCH_BUCKETS, model=name)
    metrics.gauge("chowa_queue_depth", "Requests waiting for a free row.",
                  lambda: {(("model", n),): len(m.engine.waiting) for n, m in models.items()})
    metrics.gauge("chowa_running_requests", "Rows being generated.",
                  lambda: {(("model", n),): len(m.engine.rows) for n, m in models.items()})


class _CountRequests:
    """Counts /v1 requests by route and status as the response starts (plain ASGI: streams pass untouched)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)

        async def counted(message):
            if message["type"] == "http.response.start":
                self.metrics.count("chowa_requests_total", "HTTP requests by route and status.", route=scope["path"],
                                   status=str(message["status"]))
            await send(message)

        return await self.app(scope, receive, counted)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return JSONResponse(exc.body(), exc.status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse(APIError(exc.status_code, message).body(), exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(APIError(500, f"internal error: {type(exc).__name__}: {exc}").body(), 500)
