"""Interactive multi-turn chat in the terminal, streaming the reply as it is generated.

Commands typed at the prompt: `/reset` starts a new conversation, `/quit` (or end of input) leaves.

Run as:
    chowa chat --model runs/demo/sft
    printf 'こんにちは\\n/quit\\n' | chowa chat --model runs/demo/sft     # scripted, e.g. in tests
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TextIO

from chowa.config.generate import ChatConfig, Sampling
from chowa.errors import ChowaError
from chowa.generate import ChatModel, load_chat_model, stream_reply

HELP = "/reset starts a new conversation, /quit leaves."


def main(cfg: ChatConfig) -> None:
    """`chowa chat`: load the model and talk on the terminal."""
    run_session(load_chat_model(cfg.model, cfg.format or None), cfg.sampling())


def run_session(chat: ChatModel, sampling: Sampling, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """Read user turns from `stdin` until /quit or end of input; stream each reply to `stdout`."""
    def write(text: str) -> None:
        stdout.write(text)
        stdout.flush()

    write(f"chowa chat ({chat.format.name} format). {HELP}\n")
    messages: list[dict[str, str]] = []
    turn = 0
    while True:
        write("> ")
        line = stdin.readline()
        if not line or line.strip() == "/quit":
            write("\n" if not line else "")
            return 0
        text = line.rstrip("\n")
        if text.strip() == "/reset":
            messages = []
            write("(new conversation)\n")
            continue
        if not text.strip():
            continue
        if text.startswith("/"):
            write(f"unknown command {text.split()[0]!r}; {HELP}\n")
            continue
        messages.append({"role": "user", "content": text})
        try:
            reply = stream_reply(chat, messages, dataclasses.replace(sampling, seed=sampling.seed + turn), write)
        except ChowaError as exc:  # a message too long for the model: say so and keep the conversation
            messages.pop()
            write(f"({exc})\n")
            continue
        write("\n")
        messages.append({"role": "assistant", "content": reply})
        turn += 1
