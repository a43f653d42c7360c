"""`chowa serve` as clients see it: a real server on 127.0.0.1, the official `openai` client and raw HTTP.

One server (a token model, a byte-group model and a reward model, behind an API key) serves most tests; SIGTERM is
tried on a server of its own."""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import torch

from chowa.bytegroup.model import ByteGroupConfig, ByteGroupForCausalLM, ByteGroupTokenizer, save_folder
from chowa.config import load_config
from chowa.config.generate import Sampling
from chowa.config.ppo import PPOConfig, RewardSourceConfig
from chowa.config.reward import RewardConfig
from chowa.errors import ChowaError
from chowa.formats import save_format
from chowa.generate import generate_replies, load_chat_model
from chowa.ppo.rewards import RemoteReward
from chowa.reward.score import load_reward_model
from chowa.reward.train import main as train_reward
from chowa.serve.models import check_safe_folder
from chowa.serve.protocol import APIError, read_chat
from conftest import start_server

KEY = "test-key-7f3a"
QUESTION = [{"role": "user", "content": "日本の首都はどこですか?"}]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served")
    chat = root / "chat"
    model = load_chat_model(tiny_model_dir, "rinna")
    model.model.save_pretrained(chat)
    model.tokenizer.save_pretrained(chat)
    save_format(chat, "rinna")
    torch.manual_seed(3)
    config = ByteGroupConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                             intermediate_size=172, max_position_embeddings=512)
    byte = save_folder(ByteGroupForCausalLM(config).eval(), ByteGroupTokenizer(), root / "bytes")
    save_format(byte, "vicuna-v1.1")
    reward = train_reward(load_config(RewardConfig, overrides=[
        f"out={root / 'rm'}", f"model={chat}", "data.train=[builtin:preference/train.jsonl]", "train.steps=2",
        "train.batch_size=4", "train.eval_every=0", "train.save_every=2", "runtime.cpu=true"]))
    return {"chat": chat, "bytes": byte, "rm": Path(reward)}


@pytest.fixture(scope="module")
def server(folders, tiny_model_dir):
    args = ["--model", f"chat={folders['chat']}", "--model", f"bytes={folders['bytes']}", "--model",
            f"base={tiny_model_dir}", "--reward-model",
            f"rm={folders['rm']}", "--api-key-env", "CHOWA_TEST_KEY", "--max-batch", "16", "--max-tokens-cap", "256"]
    with start_server(args, env={"CHOWA_TEST_KEY": KEY}) as running:
        yield running


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=120)


def _post(server, path: str, body: bytes | dict, key: str | None = KEY, stream: bool = False):
    """Raw POST: (status, parsed JSON or the list of SSE data lines)."""
    address = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    connection.request("POST", path, data, headers)
    response = connection.getresponse()
    if stream and response.status == 200:
        events = [line[6:] for line in response.read().decode().splitlines() if line.startswith("data: ")]
        return response.status, events
    return response.status, json.loads(response.read())


def _metrics(server) -> str:
    address = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.request("GET", "/metrics")
    return connection.getresponse().read().decode()


def test_chat_is_rendered_and_cleaned_as_chowa_generate_does(client, folders):
    answer = client.chat.completions.create(model="chat", messages=QUESTION, max_tokens=12, temperature=0)
    local = generate_replies(load_chat_model(folders["chat"]), [QUESTION], Sampling(greedy=True, max_new_tokens=12))
    assert answer.object == "chat.completion" and answer.choices[0].message.content == local[0]
    assert answer.choices[0].finish_reason in ("stop", "length") and answer.usage.completion_tokens <= 12
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    stream = client.chat.completions.create(model="chat", messages=QUESTION, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks) and chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == local[0]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == answer.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == answer.choices[0].finish_reason


def test_n_seed_stop_and_logprobs(client, server):
    twice = [client.chat.completions.create(model="chat", messages=QUESTION, max_tokens=10, n=2, seed=7,
                                            temperature=1.0) for _ in range(2)]
    assert [c.index for c in twice[0].choices] == [0, 1]
    assert [c.message.content for c in twice[0].choices] == [c.message.content for c in twice[1].choices]
    full = client.completions.create(model="chat", prompt="今日は", max_tokens=24, temperature=0)
    text = full.choices[0].text
    stop = next(ch for ch in text[2:] if ch.strip() and ch != "\ufffd")
    cut = client.completions.create(model="chat", prompt="今日は", max_tokens=24, temperature=0, stop=[stop])
    assert cut.choices[0].text == text[:text.index(stop)] and cut.choices[0].finish_reason == "stop"
    scored = client.chat.completions.create(model="chat", messages=QUESTION, max_tokens=6, temperature=0,
                                            logprobs=True, top_logprobs=3)
    entries = scored.choices[0].logprobs.content
    assert len(entries) == scored.usage.completion_tokens
    for entry in entries:  # greedy: the chosen token is the model's likeliest
        assert len(entry.top_logprobs) == 3 and entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob >= entry.top_logprobs[2].logprob
    legacy = client.completions.create(model="chat", prompt="今日は", max_tokens=4, temperature=0, logprobs=2)
    assert len(legacy.choices[0].logprobs.token_logprobs) == 4 and len(legacy.choices[0].logprobs.top_logprobs[0]) == 2
    chunks = list(client.completions.create(model="chat", prompt="今日は", max_tokens=4, temperature=0, logprobs=2,
                                            stream=True, extra_body={"unknown_field": 1}))
    streamed = [offset for c in chunks if c.choices and c.choices[0].logprobs for offset in
                c.choices[0].logprobs.text_offset]
    assert streamed == legacy.choices[0].logprobs.text_offset  # offsets into the whole text, chunk after chunk
    deadline = time.monotonic() + 10
    while not any("ignoring fields chowa does not use: unknown_field" in line for line in server.log):
        assert time.monotonic() < deadline, "an unknown field was not logged"
        time.sleep(0.05)


def test_models_list_and_the_api_key(client, server):
    assert {m.id for m in client.models.list().data} == {"chat", "bytes", "base", "rm"}
    wrong = openai.OpenAI(base_url=f"{server.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()
    assert caught.value.status_code == 401 and caught.value.body["type"] == "AuthenticationError"
    assert _post(server, "/v1/completions", {"prompt": "x"}, key=None)[0] == 401


def test_greedy_output_alone_equals_output_among_fifteen_others(client, server):
    def complete(prompt: str, tokens: int = 24) -> str:
        return client.completions.create(model="chat", prompt=prompt, max_tokens=tokens, temperature=0).choices[0].text

    alone = complete("駅まで歩いて")
    others = [f"{word}は" * (1 + i % 5) for i, word in enumerate(["猫", "犬", "雨", "山", "海"] * 3)]
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(complete, prompt, 8 + 3 * i) for i, prompt in enumerate(others)]
        crowded = pool.submit(complete, "駅まで歩いて")
        assert crowded.result() == alone
        assert all(f.result() for f in futures)  # a random model's 8+ tokens always decode to some text
    buckets = {line.split('le="')[1].split('"')[0]: float(line.split()[-1]) for line in _metrics(server).splitlines()
               if line.startswith("chowa_batch_size_bucket{") and 'model="chat"' in line}
    assert buckets["+Inf"] > buckets["4"]  # some steps decoded more than 4 rows together


def test_thirty_two_streams_one_disconnect_and_bad_requests_alongside(server):
    results: dict[int, list[str]] = {}

    def stream(index: int) -> None:
        body = {"model": "chat", "prompt": "今日は" * (1 + index % 7), "max_tokens": 6 + (index * 5) % 40,
                "temperature": 0.8, "seed": index, "stream": True}
        results[index] = _post(server, "/v1/completions", body, stream=True)[1]

    def walk_away() -> None:
        address = urllib.parse.urlsplit(server.url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        body = json.dumps({"model": "chat", "prompt": "雨", "max_tokens": 200, "stream": True}).encode()
        connection.request("POST", "/v1/completions", body, {"Authorization": f"Bearer {KEY}"})
        response = connection.getresponse()
        response.readline()
        connection.sock.close()  # gone mid-stream

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(32)] + [threading.Thread(target=walk_away)]
    for thread in threads:
        thread.start()
    bad = {"malformed": (b'{"model": "chat", "prompt": ', 400, None),
           "type": ({"model": "chat", "prompt": "x", "temperature": "hot"}, 400, "temperature"),
           "negative": ({"model": "chat", "prompt": "x", "max_tokens": -3}, 400, "max_tokens"),
           "cap": ({"model": "chat", "prompt": "x", "max_tokens": 100000}, 400, "max_tokens"),
           "huge": (json.dumps({"model": "chat", "prompt": "x" * 10_000_000}).encode(), 413, None),
           "unknown": ({"model": "gpt-9", "prompt": "x"}, 404, "model"),
           "context": ({"model": "chat", "prompt": "今日は" * 400, "max_tokens": 200}, 400, "max_tokens")}
    for name, (body, status, param) in bad.items():
        got, error = _post(server, "/v1/completions", body)
        assert got == status and error["error"]["param"] == param and error["error"]["message"], name
    assert "512" in _post(server, "/v1/completions", bad["context"][0])[1]["error"]["message"]  # says the numbers
    for thread in threads:
        thread.join(timeout=300)
    assert len(results) == 32
    for events in results.values():
        assert events[-1] == "[DONE]"
        chunks = [json.loads(event) for event in events[:-1]]
        assert all(c["object"] == "text_completion" for c in chunks)
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    deadline = time.monotonic() + 60
    while 'reason="cancelled"' not in _metrics(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    metrics = _metrics(server)
    assert 'chowa_request_finish_total{model="chat",reason="cancelled"} 1' in metrics
    assert 'chowa_running_requests{model="chat"} 0' in metrics and "chowa_time_to_first_token_seconds_count" in metrics


def test_a_base_model_without_a_chat_format_serves_completions_only(client, server):
    assert client.completions.create(model="base", prompt="今日は", max_tokens=3).usage.completion_tokens <= 3
    status, error = _post(server, "/v1/chat/completions", {"model": "base", "messages": QUESTION})
    assert status == 400 and "no chat format" in error["error"]["message"] and error["error"]["param"] == "messages"


def test_a_request_that_breaks_fails_alone(client, server):
    with ThreadPoolExecutor(4) as pool:
        fine = [pool.submit(client.completions.create, model="chat", prompt="猫", max_tokens=8) for _ in range(3)]
        status, error = _post(server, "/v1/completions", {"model": "chat", "prompt": "猫", "max_tokens": 8,
                                                          "temperature": 1e-300})
        assert status == 500 and "no usable distribution" in error["error"]["message"]
        assert all(f.result().choices[0].finish_reason in ("stop", "length") for f in fine)


def test_a_byte_group_model_is_served_like_any_causal_lm(client, folders):
    answer = client.chat.completions.create(model="bytes", messages=QUESTION, max_tokens=32, temperature=0)
    local = generate_replies(load_chat_model(folders["bytes"]), [QUESTION], Sampling(greedy=True, max_new_tokens=32))
    assert answer.choices[0].message.content == local[0] and answer.usage.completion_tokens % 4 == 0
    streamed = client.chat.completions.create(model="bytes", messages=QUESTION, max_tokens=32, temperature=0,
                                              stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == local[0]


def test_rewards_endpoint_scores_as_chowa_reward_score_and_ppo_reads_it(server, folders, tmp_path):
    conversations = [[*QUESTION, {"role": "assistant", "content": "東京です。"}],
                     [{"role": "user", "content": "3たす4は?"}, {"role": "assistant", "content": "7"}]]
    local = load_reward_model(folders["rm"], "cpu").score_conversations(conversations)
    status, answer = _post(server, "/v1/rewards", {"model": "rm", "input": [
        {"messages": conversations[0]}, {"prompt": "3たす4は?", "reply": "7"}]})
    assert status == 200 and [row["index"] for row in answer["data"]] == [0, 1]
    assert [row["score"] for row in answer["data"]] == pytest.approx(local, abs=1e-5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHOWA_TEST_KEY", KEY)
        remote = RemoteReward(server.url, "rm", "CHOWA_TEST_KEY", batch_size=1)
        assert remote(conversations) == pytest.approx(local, abs=1e-5)
        from chowa.ppo.train import main as ppo

        out = ppo(load_config(PPOConfig, overrides=[
            f"out={tmp_path / 'ppo'}", f"model={folders['chat']}", "data.prompts=[builtin:sft/train.jsonl]",
            "data.heldout=[builtin:sft/heldout.jsonl]", "data.heldout_size=4", f"reward.url={server.url}",
            "reward.url_model=rm", "reward.url_key_env=CHOWA_TEST_KEY", "generation.max_new_tokens=6",
            "method.num_rollouts=8", "method.chunk_size=8", "method.batch_size=4", "train.steps=1",
            "train.eval_every=1", "runtime.cpu=true"]))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("score_mean" in r for r in records) and "heldout_score" in records[-1]
    with pytest.raises(ChowaError, match="exactly one of reward.model"):
        RewardSourceConfig(model=str(folders["rm"]), url=server.url).check()
    assert _post(server, "/v1/rewards", {"model": "rm", "input": [{"messages": QUESTION}]})[0] == 400


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_sigterm_finishes_the_requests_in_flight_then_exits_zero(folders, sig):
    with start_server(["--model", f"chat={folders['chat']}"]) as running:
        events: dict[int, list[str]] = {}

        def stream(index: int) -> None:
            body = {"prompt": "山" * (index + 1), "max_tokens": 250, "stream": True, "temperature": 0.9, "seed": 1}
            events[index] = _post(running, "/v1/completions", body, key=None, stream=True)[1]

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while 'chowa_running_requests{model="chat"} 6' not in _metrics(running):
            assert time.monotonic() < deadline, "the six requests never ran together"
            time.sleep(0.02)
        assert running.stop(sig=sig) == 0
        for thread in threads:
            thread.join(timeout=60)
        assert len(events) == 6 and all(e[-1] == "[DONE]" for e in events.values())
        assert all(json.loads(e[-2])["choices"][0]["finish_reason"] in ("stop", "length") for e in events.values())
    assert "Traceback" not in "".join(running.log)


def test_unsafe_folders_and_bad_fields_are_refused_with_their_names(tmp_path, folders):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ChowaError, match="only safetensors"):
        check_safe_folder(str(pickled), False, "--model")
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "model.safetensors").write_bytes(b"")
    (remote / "config.json").write_text(json.dumps({"model_type": "mine", "auto_map": {"AutoModel": "x.Y"}}))
    with pytest.raises(ChowaError, match="--trust-remote-code"):
        check_safe_folder(str(remote), False, "--model")
    check_safe_folder(str(remote), True, "--model")
    check_safe_folder(str(folders["bytes"]), False, "--model")  # chowa's own byte-group code, no flag needed
    for body, param in [({"messages": []}, "messages"), ({"messages": [{"role": "bot", "content": "x"}]},
                                                          "messages[0].role"),
                        ({"messages": QUESTION, "top_p": 0}, "top_p"), ({"messages": QUESTION, "n": 99}, "n"),
                        ({"messages": QUESTION, "stop": [""]}, "stop"), ({"messages": QUESTION, "seed": 1.5}, "seed")]:
        with pytest.raises(APIError) as caught:
            read_chat(body, max_tokens_cap=100, max_n=4)
        assert caught.value.param == param and caught.value.status == 400


def test_fields_that_would_change_the_reply_unnoticed_and_json_constants_are_refused(server):
    for body, param in [({"prompt": "x", "echo": True}, "echo"), ({"prompt": "x", "logit_bias": {"5": 3}},
                                                                  "logit_bias"),
                        ({"prompt": "x", "presence_penalty": 0.5}, "presence_penalty")]:
        status, error = _post(server, "/v1/completions", {"model": "chat", **body})
        assert status == 400 and error["error"]["param"] == param
    assert _post(server, "/v1/completions", {"model": "chat", "prompt": "x", "echo": False, "max_tokens": 2})[0] == 200
    status, error = _post(server, "/v1/completions", b'{"model": "chat", "prompt": "x", "temperature": NaN}')
    assert status == 400 and "NaN" in error["error"]["message"]


def test_the_max_tokens_cap_bounds_the_formats_default_too(client):
    answer = client.chat.completions.create(model="bytes", messages=QUESTION, temperature=1.0, seed=3)
    assert answer.usage.completion_tokens <= 256  # vicuna's card default is 512; the server's cap is 256


def test_a_chunked_body_over_the_limit_and_a_client_leaving_before_the_reply(server):
    address = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    chunks = (b"x" * 1_000_000 for _ in range(6))  # 6 MB without a Content-Length
    connection.request("POST", "/v1/completions", chunks, {"Authorization": f"Bearer {KEY}"}, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["error"]["type"] == "RequestTooLarge"
    cancelled = _cancelled(server)
    leaving = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    body = json.dumps({"model": "chat", "prompt": "雨", "max_tokens": 256, "n": 16, "temperature": 0.9}).encode()
    leaving.request("POST", "/v1/completions", body, {"Authorization": f"Bearer {KEY}"})
    time.sleep(0.2)
    leaving.sock.close()  # gone before the (non-streamed) reply
    deadline = time.monotonic() + 30
    while _cancelled(server) == cancelled:
        assert time.monotonic() < deadline, "the request of a client that left was never cancelled"
        time.sleep(0.1)


def _cancelled(server) -> float:
    return sum(float(line.split()[-1]) for line in _metrics(server).splitlines()
               if line.startswith("chowa_request_finish_total") and 'reason="cancelled"' in line)


def test_remote_reward_retries_a_busy_server_then_reports_its_message(tmp_path):
    import http.server

    answers = [(503, {"error": {"message": "busy"}}), (200, {"data": [{"index": 0, "score": 1.5}]}),
               (400, {"error": {"message": "input[0] is too long"}})]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            status, body = answers.pop(0)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        remote = RemoteReward(f"http://127.0.0.1:{httpd.server_port}", "rm", "", batch_size=4)
        remote.RETRIES = 2
        assert remote([[*QUESTION, {"role": "assistant", "content": "東京"}]]) == [1.5]  # after one 503
        with pytest.raises(ChowaError, match="400 input\\[0\\] is too long"):
            remote([[*QUESTION, {"role": "assistant", "content": "x"}]])
    finally:
        httpd.shutdown()


def test_model_names_default_to_the_folders_name_and_are_given_once():
    from chowa.config import named_folders

    assert named_folders(["runs/demo/ppo", "base=runs/x"], "serve: --model") == {"ppo": "runs/demo/ppo",
                                                                                "base": "runs/x"}
    with pytest.raises(ChowaError, match="the name 'ppo' is given twice"):
        named_folders(["runs/demo/ppo", "ppo=runs/y"], "serve: --model")
    with pytest.raises(ChowaError, match="expected NAME=DIR"):
        named_folders(["runs/demo/ppo"], "eval heldout: --model", names_required=True)
