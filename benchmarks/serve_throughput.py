"""`chowa serve` against one request at a time in plain transformers and `transformers serve`, on one model.

Three systems, run one after another on the same model, the same prompts and the same thread count (never two at
once):
  chowa               `chowa serve --model bench=DIR` (continuous batching), in a subprocess;
  one-at-a-time       `model.generate(..., do_sample=False)` per request, sequentially, in this process;
  transformers-serve  `transformers serve --continuous-batching --device DEVICE DIR`, in a subprocess.
A server that cannot serve is reported as failed with its reason (transformers 5.24's continuous batching fails on
every GPT-NeoX request: its attention calls `PagedAttentionCache.update()` without the `kwargs` argument; a Llama
model works).

Clients (asyncio + aiohttp) stream `/v1/completions` with a raw prompt (no chat template, so the prompt ids are the
same everywhere), `temperature: 0`, `max_tokens` and `stream_options.include_usage`. At each concurrency C, C clients
share max(2 x C, --min-requests) requests with distinct prompts, each client sending its next request as soon as its
last one finishes; one-at-a-time runs the largest level's prompts once. Figures per level: output tokens / wall time
of the level; TTFT = request sent to the first chunk with text; ITL = gaps between consecutive chunks with text (for
one-at-a-time: between generated tokens, timed by a streamer). Completion token counts come from `usage` (else one
per chunk with text). Greedy outputs must not change with batching: each server's completion text and token count
for a prompt are compared with one-at-a-time's (a trailing incomplete UTF-8 character aside); mismatches are counted.

The default model is a random ~33M Llama (or GPT-NeoX, `--arch gpt-neox`) built once under runs/bench/ (a random
model rarely emits EOS, so replies run to max_tokens); prompts are Tatoeba ja/en sentences from ../shared/data when
present, else the sentences below (40 distinct prompts, then repeats), joined 1, 2, 4 or 8 at a time so prompt
lengths are mixed.

Run as:
    python benchmarks/serve_throughput.py --quick                        # concurrency 1,4, few requests
    python benchmarks/serve_throughput.py --concurrency 1,4,16,32 --max-tokens 64 --threads 2 --out serve.json
    python benchmarks/serve_throughput.py --model runs/sft --servers chowa --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEFAULT_MODELS = ROOT / "runs" / "bench"  # serve-llama/, serve-gpt-neox/
# Two random 8 x 512 models (~33M parameters) of the same shape, differing only in architecture
ARCHITECTURES = {
    "llama": {"model_type": "llama", "hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8,
              "num_key_value_heads": 8, "intermediate_size": 2048, "max_position_embeddings": 2048,
              "tie_word_embeddings": False},
    "gpt-neox": {"model_type": "gpt_neox", "hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8,
                 "intermediate_size": 2048, "max_position_embeddings": 2048},
}
SERVERS = ("chowa", "transformers-serve")
LISTENING = re.compile(r"chowa serve: listening on (http://\S+)")

_JA = ["今日は朝から雨が降っている。", "駅まで歩いて十分かかります。", "新しいパソコンでPythonを学んでいる。",
       "お茶を飲みながら本を読むのが好きだ。", "明日の会議は午後3時に始まります。", "冬になると山は雪で白くなる。",
       "母は毎朝６時に起きて弁当を作る。", "この店のラーメンはとても美味しい。", "電車が遅れたので、学校に遅刻した。",
       "「ありがとう」と彼女は笑顔で言った。", "図書館は月曜日が休みです。", "兄は東京の大学で物理を勉強している。",
       "窓を開けると、海の匂いがした。", "週末は友達と京都へ行く予定です。", "猫がこたつの中で丸くなって寝ている。",
       "駅前に新しいパン屋ができた。", "子どもたちは公園でサッカーをしている。", "この問題は思ったより難しかった。",
       "祖父は若いころ船乗りだったそうだ。", "夏休みの宿題がまだ終わっていない。"]
_EN = ["It has been raining since this morning.", "The meeting starts at 3 p.m. tomorrow.",
       "She said \"thank you\" with a smile.", "Reading a book with a cup of tea is my favourite thing.",
       "The train was late, so I was late for school.", "In winter the mountains turn white with snow.",
       "Tokyo has 23 special wards (and many cities).", "Learning Python on a new laptop is fun!",
       "The library is closed on Mondays.", "My brother studies physics at a university in Tokyo.",
       "When I opened the window, I could smell the sea.", "We are planning to visit Kyoto this weekend.",
       "The cat is sleeping curled up under the kotatsu.", "A new bakery has opened in front of the station.",
       "The children are playing football in the park.", "This problem was harder than I expected.",
       "My grandfather was a sailor when he was young.", "I still haven't finished my summer homework.",
       "Could you tell me the way to the nearest post office?", "He writes a letter to his mother every week."]


def _arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="HF model folder with a tokenizer (default: a random model of "
                                                   f"--arch built on first use under {DEFAULT_MODELS})")
    parser.add_argument("--arch", choices=tuple(ARCHITECTURES), default="llama",
                        help="architecture of the default model (transformers serve's continuous batching fails on "
                             "GPT-NeoX in transformers 5.24)")
    parser.add_argument("--concurrency", help="comma-separated client counts (default 1,4,16,32; --quick: 1,4)")
    parser.add_argument("--min-requests", type=int, help="requests per level at least (default 16; --quick: 8)")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens of every request")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch / OpenMP threads of every system")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated subset of {','.join(SERVERS)} (one-at-a-time always runs)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every system, round-robin; figures are "
                                                               "the median run's (use 3 on a shared machine)")
    parser.add_argument("--startup-timeout", type=float, default=180, help="seconds a server may take to be ready")
    parser.add_argument("--device", default="cpu", help="where every system runs the model (cpu, cuda)")
    parser.add_argument("--quick", action="store_true", help="concurrency 1,4 and 8 requests per level")
    parser.add_argument("--out", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in (args.concurrency or ("1,4" if args.quick else "1,4,16,32")).split(",")]
    args.min_requests = args.min_requests or (8 if args.quick else 16)
    named = [name for name in args.servers.split(",") if name]
    if unknown := set(named) - set(SERVERS):
        parser.error(f"unknown servers {sorted(unknown)}; choose from {', '.join(SERVERS)}")
    args.servers = [name for name in SERVERS if name in named]  # chowa first, as in the tables
    return args


# --- the model and the prompts --------------------------------------------------------------------------------------


def build_default_model(arch: str) -> Path:
    """A random ~33M-parameter model of `arch` (8 x 512) with a SentencePiece tokenizer, built once."""
    folder = DEFAULT_MODELS / f"serve-{arch}"
    if (folder / "config.json").is_file():
        return folder
    from chowa.config import load_config
    from chowa.models.build import build_model
    from chowa.tokenizer import load_tokenizer
    from chowa.tokenizer.train import TokenizerTrainConfig
    from chowa.tokenizer.train import main as train_tokenizer

    if SHARED_DATA.is_dir():
        inputs = [str(SHARED_DATA / name) for name in ("botchan.txt", "wagahaiwa_nekodearu.txt",
                                                        "tatoeba.jpn-eng.ja", "tatoeba.jpn-eng.en")]
    else:
        inputs = ["builtin:corpus/*.txt", "builtin:corpus/*.jsonl"]
    with tempfile.TemporaryDirectory() as scratch:
        cfg = load_config(TokenizerTrainConfig, overrides=[f"out={Path(scratch) / 'tokenizer'}", "vocab_size=8000"],
                          flags={"input": inputs})
        tokenizer = load_tokenizer(train_tokenizer(cfg))
    model = build_model(ARCHITECTURES[arch], tokenizer=tokenizer, seed=0)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def load_prompts(count: int) -> list[str]:
    """`count` prompts alternating Japanese and English, of 1, 2, 4 or 8 consecutive sentences each."""
    if SHARED_DATA.is_dir():
        ja, en = ((SHARED_DATA / f"tatoeba.jpn-eng.{lang}").read_text(encoding="utf-8").splitlines()
                  for lang in ("ja", "en"))
    else:
        ja, en = _JA, _EN
    prompts = []
    for k in range(count):
        lines, joiner = (ja, "") if k % 2 == 0 else (en, " ")
        sentences = (1, 2, 4, 8)[(k // 2) % 4]
        prompts.append(joiner.join(lines[(k * 8 + i) % len(lines)] for i in range(sentences)))
    return prompts


def requests_for(concurrency: int, args: argparse.Namespace) -> list[int]:
    """Prompt indices of the requests of one level: the first prompts, each once (no prefix-cache reuse)."""
    return list(range(max(2 * concurrency, args.min_requests)))


# --- one at a time, in this process ---------------------------------------------------------------------------------


def run_one_at_a_time(model_dir: Path, prompts: list[str], indices: list[int], args: argparse.Namespace) -> dict:
    """Greedy `generate` per prompt, sequentially; request records like the servers' (plus `ids`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(args.device).eval()
    records = []
    with torch.inference_mode():
        _generate_one(model, tokenizer, prompts[0], args.max_tokens)  # warm-up, not timed
        started = time.perf_counter()
        for index in indices:
            records.append({"prompt": index, **_generate_one(model, tokenizer, prompts[index], args.max_tokens)})
        wall = time.perf_counter() - started
    return {"levels": {1: summarize(records, wall)}, "records": records}


def _generate_one(model, tokenizer, prompt: str, max_tokens: int) -> dict:
    from transformers.generation.streamers import BaseStreamer

    class TokenTimes(BaseStreamer):
        """Times each generated token (the first `put` is the prompt)."""

        def __init__(self):
            self.times: list[float] = []

        def put(self, value):
            self.times.append(time.perf_counter())

        def end(self):
            pass

    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)  # as the servers
    timer = TokenTimes()
    sent = time.perf_counter()
    output = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False, streamer=timer)
    ids = output[0, inputs["input_ids"].shape[1]:].tolist()
    token_times = timer.times[1:]
    return {"text": tokenizer.decode(ids, skip_special_tokens=True), "ids": ids, "tokens": len(ids),
            "ttft": token_times[0] - sent, "itl": [b - a for a, b in zip(token_times, token_times[1:])],
            "error": None}


# --- servers --------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_command(system: str, model_dir: Path, device: str) -> tuple[list[str], str | None, str]:
    """(command, its URL if known before it starts, the `model` field of requests)."""
    if system == "chowa":
        return ([sys.executable, "-m", "chowa", "serve", "--model", f"bench={model_dir}", "--host", "127.0.0.1",
                 "--port", "0", "--device", device], None, "bench")
    port = _free_port()
    cli = Path(sys.executable).with_name("transformers")
    return ([str(cli), "serve", "--continuous-batching", "--device", device, "--host", "127.0.0.1", "--port",
             str(port), str(model_dir)], f"http://127.0.0.1:{port}", str(model_dir))


async def wait_until_ready(process: subprocess.Popen, log: Path, url: str | None, timeout: float) -> str:
    """The server's URL once `GET /health` answers 200; raises RuntimeError if it exits or times out."""
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"exited with code {process.returncode}: {_last_lines(log)}")
            if url is None and (found := LISTENING.search(log.read_text(errors="replace"))):
                url = found.group(1)
            if url is not None:
                try:
                    async with session.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=5)) as response:
                        if response.status == 200:
                            return url
                except aiohttp.ClientError:
                    pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"not ready after {timeout:.0f} s: {_last_lines(log)}")


def _last_lines(log: Path, count: int = 5) -> str:
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-count:]) or "(no output)"


def run_server(system: str, model_dir: Path, prompts: list[str], args: argparse.Namespace) -> dict:
    """Start one server, warm it up, run every concurrency level, stop it; {"failed": reason} if it cannot serve."""
    command, url, model_name = server_command(system, model_dir, args.device)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "server.log"
        with log.open("w") as sink:
            try:
                process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            except OSError as exc:
                return {"failed": f"cannot start {shlex.join(command)}: {exc}", "command": shlex.join(command)}
            try:
                result = asyncio.run(_serve_levels(process, log, url, model_name, prompts, args))
            finally:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    return {**result, "command": shlex.join(command)}


async def _serve_levels(process, log: Path, url: str | None, model_name: str, prompts: list[str],
                        args: argparse.Namespace) -> dict:
    import aiohttp

    try:
        url = await wait_until_ready(process, log, url, args.startup_timeout)
    except RuntimeError as exc:
        return {"failed": f"server: {exc}"}
    endpoint = f"{url}/v1/completions"
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        warm = await stream_completion(session, endpoint, model_name, prompts[0], args.max_tokens)
        if warm["error"]:
            return {"failed": f"warm-up request: {warm['error']}"}
        levels, records = {}, {}
        for concurrency in args.concurrency:
            indices = requests_for(concurrency, args)
            done, wall = await run_level(session, endpoint, model_name, prompts, indices, concurrency, args)
            levels[concurrency], records[concurrency] = summarize(done, wall), done
    return {"levels": levels, "records": records}


# --- clients --------------------------------------------------------------------------------------------------------


async def run_level(session, endpoint: str, model_name: str, prompts: list[str], indices: list[int],
                    concurrency: int, args: argparse.Namespace) -> tuple[list[dict], float]:
    """`concurrency` clients work through the requests; (records in request order, wall seconds)."""
    pending = list(enumerate(indices))
    records: list[dict | None] = [None] * len(indices)

    async def client() -> None:
        while pending:
            slot, index = pending.pop(0)
            record = await stream_completion(session, endpoint, model_name, prompts[index], args.max_tokens)
            records[slot] = {"prompt": index, **record}

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return records, time.perf_counter() - started


async def stream_completion(session, endpoint: str, model_name: str, prompt: str, max_tokens: int) -> dict:
    """One streamed greedy completion: text, completion tokens, TTFT and inter-chunk gaps (s), or an error."""
    import aiohttp

    body = {"model": model_name, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    pieces, times, usage = [], [], None
    sent = time.perf_counter()
    try:
        async with session.post(endpoint, json=body) as response:
            if response.status != 200:
                return _failed(f"HTTP {response.status}: {(await response.text())[:500]}")
            async for raw in response.content:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line.removeprefix("data:"))
                if "error" in chunk:
                    return _failed(str(chunk["error"]))
                usage = chunk.get("usage") or usage
                text = "".join(choice.get("text") or "" for choice in chunk.get("choices") or [])
                if text:
                    pieces.append(text)
                    times.append(time.perf_counter())
    except (aiohttp.ClientError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _failed(f"{type(exc).__name__}: {exc}")
    if not times:
        return _failed("no text in the stream")
    tokens = usage["completion_tokens"] if usage else len(pieces)
    return {"text": "".join(pieces), "tokens": tokens, "ttft": times[0] - sent,
            "itl": [b - a for a, b in zip(times, times[1:])], "error": None}


def _failed(error: str) -> dict:
    return {"text": "", "tokens": 0, "ttft": None, "itl": [], "error": error}


# --- figures --------------------------------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(records: list[dict], wall: float) -> dict:
    """Throughput and latency figures of one level (milliseconds for latencies)."""
    done = [r for r in records if not r["error"]]
    tokens = sum(r["tokens"] for r in done)
    ttft = [r["ttft"] * 1000 for r in done]
    itl = [gap * 1000 for r in done for gap in r["itl"]]
    return {"requests": len(records), "errors": len(records) - len(done),
            "first_error": next((r["error"] for r in records if r["error"]), None),
            "output_tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall if wall else 0.0,
            "mean_completion_tokens": tokens / len(done) if done else 0.0,
            "ttft_p50_ms": _percentile(ttft, 0.5), "ttft_p95_ms": _percentile(ttft, 0.95),
            "itl_p50_ms": _percentile(itl, 0.5), "itl_p95_ms": _percentile(itl, 0.95)}


def compare_outputs(reference: dict[int, dict], runs: dict[str, list[dict]]) -> list[dict]:
    """Every server completion (of every run) whose text or token count differs from one-at-a-time's."""
    mismatches = []
    for system, system_runs in runs.items():
        levels = [(level, records) for run in system_runs for level, records in run.get("records", {}).items()]
        for concurrency, records in levels:
            for record in records:
                expected = reference[record["prompt"]]
                text, expected_text = _complete(record["text"]), _complete(expected["text"])
                if record["error"] or (text, record["tokens"]) == (expected_text, expected["tokens"]):
                    continue
                same = next((i for i, (a, b) in enumerate(zip(text, expected_text)) if a != b),
                            min(len(text), len(expected_text)))
                mismatches.append({"system": system, "concurrency": concurrency, "prompt": record["prompt"],
                                   "tokens": record["tokens"], "reference_tokens": expected["tokens"],
                                   "same_prefix_chars": same})
    return mismatches


def _complete(text: str) -> str:
    """`text` without a trailing U+FFFD: a reply ending in a lone byte piece (an incomplete UTF-8 character) decodes
    to U+FFFD in one piece, while streaming detokenizers hold the byte back for good (transformers serve does)."""
    return text.rstrip("\ufffd")


def ratios(results: dict[str, dict], concurrency: list[int]) -> dict[int, dict]:
    def rate(system: str, level: int) -> float | None:
        figures = results.get(system, {}).get("levels", {}).get(level)
        return figures["tokens_per_s"] if figures and figures["tokens_per_s"] else None

    table = {}
    for level in concurrency:
        chowa, sequential, hf = rate("chowa", level), rate("one-at-a-time", 1), rate("transformers-serve", level)
        table[level] = {"chowa_vs_one_at_a_time": chowa / sequential if chowa and sequential else None,
                        "chowa_vs_transformers_serve": chowa / hf if chowa and hf else None}
    return table


# --- the driver -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    args = _arguments(argv)
    passed = sys.argv[1:] if argv is None else argv
    print(f"# rerun: OMP_NUM_THREADS={args.threads} python benchmarks/serve_throughput.py {shlex.join(passed)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_dir = (args.model or build_default_model(args.arch)).resolve()
    largest = max(len(requests_for(c, args)) for c in args.concurrency)
    prompts = load_prompts(max(40, largest))
    runs: dict[str, list[dict]] = {system: [] for system in ("one-at-a-time", *args.servers)}
    for repeat in range(args.repeats):  # round-robin, so a noisy neighbour slows every system alike
        for system, done in runs.items():
            if done and "failed" in done[0]:
                continue  # a server that could not serve once is not tried again
            print(f"# {system}, run {repeat + 1} of {args.repeats} ...", file=sys.stderr, flush=True)
            done.append(run_one_at_a_time(model_dir, prompts, list(range(largest)), args)
                        if system == "one-at-a-time" else run_server(system, model_dir, prompts, args))
    # One-at-a-time's completions are the reference every server's are compared with.
    reference = {record["prompt"]: record for record in runs["one-at-a-time"][0]["records"]}
    report = _report(args, model_dir, prompts, runs, reference)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"# wrote {args.out}")
    return report


def median_run(runs: list[dict]) -> dict:
    """One system's figures over its runs: per level, those of the run with the median tokens/s (the lower middle
    one for an even count), with every run's tokens/s beside them."""
    if "failed" in runs[0]:
        return {key: value for key, value in runs[0].items() if key != "records"}
    levels = {}
    for level in runs[0]["levels"]:
        ordered = sorted((run["levels"][level] for run in runs), key=lambda figures: figures["tokens_per_s"])
        levels[level] = {**ordered[(len(ordered) - 1) // 2],
                         "tokens_per_s_runs": [run["levels"][level]["tokens_per_s"] for run in runs]}
    return {"levels": levels, **({"command": runs[0]["command"]} if "command" in runs[0] else {})}


def _report(args, model_dir: Path, prompts: list[str], runs: dict[str, list[dict]], reference: dict) -> dict:
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    mismatches = compare_outputs(reference, {s: r for s, r in runs.items() if s != "one-at-a-time"})
    results = {system: median_run(system_runs) for system, system_runs in runs.items()}
    table = ratios(results, args.concurrency)
    lengths = [len(r["ids"]) for r in reference.values()]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, threads {args.threads}, torch "
          f"{torch.__version__}; model {model_dir} ({config.model_type}, {config.num_hidden_layers} x "
          f"{config.hidden_size}); {len(prompts)} prompts, max_tokens {args.max_tokens} (one-at-a-time produced "
          f"{min(lengths)}-{max(lengths)}); requests per level max(2 x C, {args.min_requests}); median of "
          f"{args.repeats} run(s)")
    _print_tables(results, table, mismatches)
    return {"machine": {"processor": platform.processor(), "cpus": os.cpu_count(), "threads": args.threads,
                        "torch": torch.__version__},
            "model": str(model_dir), "max_tokens": args.max_tokens, "concurrency": args.concurrency,
            "min_requests": args.min_requests, "repeats": args.repeats, "prompts": len(prompts),
            "systems": results, "ratios": table, "mismatches": mismatches}


def _print_tables(results: dict[str, dict], table: dict, mismatches: list[dict]) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    print("| system | concurrency | requests | errors | tokens / request | output tokens/s | TTFT p50 | TTFT p95 "
          "| ITL p50 | ITL p95 | outputs differing |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for system, result in results.items():
        if "failed" in result:
            print(f"| {system} | failed: {result['failed'][:300]} |")
            continue
        for level, f in result["levels"].items():
            differing = sum(m["system"] == system and m["concurrency"] == level for m in mismatches)
            print(f"| {system} | {'sequential' if system == 'one-at-a-time' else level} | {f['requests']} | "
                  f"{f['errors']} | {f['mean_completion_tokens']:.1f} | {f['tokens_per_s']:.1f} | "
                  f"{ms(f['ttft_p50_ms'])} | {ms(f['ttft_p95_ms'])} | {ms(f['itl_p50_ms'])} | {ms(f['itl_p95_ms'])} "
                  f"| {'-' if system == 'one-at-a-time' else differing} |")
    print("\n(latencies in ms)\n\n| concurrency | chowa / one-at-a-time | chowa / transformers serve |\n|---|---|---|")
    for level, row in table.items():
        cells = ["-" if v is None else f"{v:.2f}x" for v in row.values()]
        print(f"| {level} | {' | '.join(cells)} |")
    print(f"\n# greedy outputs differing from one-at-a-time: {len(mismatches)}")
    for m in mismatches[:5]:
        print(f"#   {m['system']} at {m['concurrency']}: prompt {m['prompt']}, {m['tokens']} tokens (reference "
              f"{m['reference_tokens']}), same for the first {m['same_prefix_chars']} characters")


if __name__ == "__main__":
    main()
