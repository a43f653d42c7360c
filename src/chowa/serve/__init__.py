"""`chowa serve`: the models chowa trains behind an OpenAI-compatible API, with continuous batching, a chat page,
Prometheus metrics and reward models.

Each causal LM gets its own engine (`chowa.engine`): concurrent requests share its batch, joining at the next
decoding step and leaving when done. Prompts are rendered by the folder's chat format exactly as `chowa generate`
renders them, sampling fields left out take the format's model-card defaults, and replies are cleaned as the format
says. The server binds 127.0.0.1 unless told otherwise, checks an API key in constant time when one is set, limits
body size, `max_tokens` and `n`, loads only safetensors and runs no code shipped in a folder without
`--trust-remote-code`. SIGTERM or Ctrl-C stops taking requests, finishes those in flight and exits 0.

Run as:
    chowa serve --model sft=runs/demo/sft --reward-model rm=runs/demo/reward
    curl -s localhost:8000/v1/chat/completions -d '{"messages": [{"role": "user", "content": "3たす4は?"}]}'
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys

from chowa.config.serve import ServeConfig
from chowa.errors import ChowaError


def main(cfg: ServeConfig) -> None:
    """Load every folder, then serve until SIGTERM or Ctrl-C."""
    import uvicorn

    from chowa.models.load import default_device
    from chowa.reward.score import load_reward_model
    from chowa.serve.app import build_app
    from chowa.serve.models import check_safe_folder, load_served
    from chowa.serve.rewards import RewardWorker

    api_key = _api_key(cfg.api_key_env)
    models = {name: load_served(name, folder, cfg) for name, folder in cfg.model_folders().items()}
    rewards = {}
    for name, folder in cfg.reward_folders().items():
        check_safe_folder(folder, cfg.trust_remote_code, "--reward-model")
        scorer = load_reward_model(folder, cfg.device or default_device())
        rewards[name] = RewardWorker(name, scorer, cfg.reward_batch_size)
    app = build_app(models, rewards, cfg, api_key)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("chowa.serve").setLevel(logging.INFO)
    sock = _listen(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"chowa serve: listening on http://{shown}:{port} (models: {', '.join([*models, *rewards])}; chat page at "
          f"http://{shown}:{port}/)", file=sys.stderr, flush=True)
    _graceful_server_class()(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


def _graceful_server_class():
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn's graceful shutdown on SIGTERM and Ctrl-C (a second Ctrl-C forces it), ending with exit status 0:
        uvicorn itself re-raises the signal once it has shut down, so the process would report being killed."""

        @contextlib.contextmanager
        def capture_signals(self):
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return GracefulServer


def _api_key(variable: str) -> str | None:
    if not variable:
        return None
    key = os.environ.get(variable, "")
    if not key:
        raise ChowaError(f"serve: --api-key-env {variable}: that environment variable is unset or empty")
    return key


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ChowaError(f"serve: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    return sock
