"""`chowa serve`'s chat page in headless Chromium against a real server: a Japanese question arrives as an input
method commits it, the Enter that confirms a conversion sends nothing, the streamed reply is the server's reply, the
history goes with the next turn, no request leaves the server's origin, and a screenshot is kept in tests/artifacts."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from cdp import Browser, find_chromium
from conftest import start_server

SCREENSHOT = Path(__file__).resolve().parent / "artifacts" / "serve_page.png"
QUESTION = "日本の首都はどこですか?"
FOLLOW_UP = ["もっと詳しく", "教えてください。"]  # typed with Shift+Enter between them


@pytest.fixture
def browser():
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (make test installs it on Debian: apt-get install chromium)")
    with Browser(width=1200, height=900) as browser:
        yield browser


def _send_and_wait(browser: Browser) -> str:
    """Press Enter in the message box and wait until the reply it starts has finished streaming; its text."""
    before = browser.evaluate("document.querySelectorAll('.msg.assistant').length")
    browser.press_enter()
    browser.wait_for(f"document.querySelectorAll('.msg.assistant').length > {before} "
                     "&& !document.body.classList.contains('streaming')", timeout=120)
    return browser.evaluate("[...document.querySelectorAll('.msg.assistant .content')].at(-1).textContent")


def _posted(browser: Browser) -> list[dict]:
    return [json.loads(r["postData"]) for r in browser.requests() if r["method"] == "POST"]


def _unstreamed_reply(browser: Browser, body: dict) -> str:
    request = json.dumps({"method": "POST", "headers": {"Content-Type": "application/json"},
                          "body": json.dumps({**body, "stream": False})})
    return browser.evaluate(f"fetch('v1/chat/completions', {request}).then(r => r.json())"
                            ".then(answer => answer.choices[0].message.content)")


def _distinct_colors(png: bytes) -> int:
    """Distinct 3-byte samples of the decompressed image data: a handful for a blank page."""
    chunks, position = [], 8
    while position < len(png):
        length, name = struct.unpack(">I4s", png[position:position + 8])
        if name == b"IDAT":
            chunks.append(png[position + 8:position + 8 + length])
        position += 12 + length
    pixels = zlib.decompress(b"".join(chunks))
    return len({pixels[i:i + 3] for i in range(0, len(pixels), 997)})


def test_the_chat_page_streams_replies_to_japanese_input(browser, tiny_model_dir):
    with start_server(["--model", str(tiny_model_dir), "--format", "rinna"]) as server:
        base_url = server.url
        origin = base_url.rstrip("/")
        browser.navigate(origin + "/")
        model = browser.wait_for("document.querySelector('#model').value", timeout=30)  # the one model, chosen
        # greedy and short, so that the streamed reply can be checked against the whole one
        browser.evaluate("document.querySelector('#temperature').value = '0';"
                         "document.querySelector('#max-tokens').value = '12';"
                         "document.querySelector('#input').focus()")
        browser.insert_text(QUESTION)
        browser.evaluate("document.querySelector('#input').dispatchEvent(new KeyboardEvent('keydown', "
                         "{key: 'Enter', isComposing: true, bubbles: true, cancelable: true}))")
        assert browser.evaluate("document.querySelectorAll('.msg').length") == 0  # the IME's Enter sent nothing
        reply = _send_and_wait(browser)
        assert browser.evaluate("document.querySelector('.msg.user .content').textContent") == QUESTION
        assert browser.evaluate("document.querySelector('#error').textContent") == ""
        first = {"model": model, "messages": [{"role": "user", "content": QUESTION}], "temperature": 0,
                 "max_tokens": 12}
        assert _posted(browser) == [{**first, "stream": True}]  # top-p left empty is left out
        assert reply == _unstreamed_reply(browser, first)

        browser.insert_text(FOLLOW_UP[0])
        browser.press_enter(shift=True)
        browser.insert_text(FOLLOW_UP[1])
        _send_and_wait(browser)
        follow_up = "\n".join(FOLLOW_UP)
        assert browser.evaluate("[...document.querySelectorAll('.msg.user .content')].map(m => m.textContent)") == [
            QUESTION, follow_up]
        assert _posted(browser)[-1]["messages"] == [{"role": "user", "content": QUESTION},
                                                   {"role": "assistant", "content": reply},
                                                   {"role": "user", "content": follow_up}]
        urls = [r["url"] for r in browser.requests() if not r["url"].startswith("data:")]
        assert all(url.startswith(origin + "/") for url in urls), urls
        assert {url.removeprefix(origin) for url in urls} == {"/", "/v1/models", "/v1/chat/completions"}
        png = browser.screenshot(SCREENSHOT).read_bytes()
    assert struct.unpack(">II", png[16:24]) == (1200, 900)
    assert _distinct_colors(png) > 20  # not a blank page
