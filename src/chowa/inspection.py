"""What chowa reads before it trains on it: `chowa data inspect` (SFT and preference data) and `chowa template render`.

`inspect_data` reports the detected formats, record and bad-record counts with `file:line` reasons, and the first
example rendered in a chat format with its trained part in ⟦ ⟧ (from the tokens' loss mask when a tokenizer is
given).

Run as:
    chowa data inspect data/alpaca_ja.json data/hh.jsonl.gz --kind sft --format rinna-nl
    chowa data inspect data/hh/train.jsonl.gz --kind preference
    report = inspect_data(["data/hh/train.jsonl.gz"], kind="preference")   # from Python
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from chowa.config.data import DataInspectConfig, TemplateRenderConfig
from chowa.data.conversations import read_conversations
from chowa.data.preferences import read_preference_file
from chowa.data.records import ReadOptions, expand_sources
from chowa.errors import ChowaError
from chowa.formats import (
    DEFAULT_FORMAT,
    Message,
    get_format,
    render_conversation_file,
    render_prompt,
    render_segments,
    render_training,
)

TRAINED_OPEN, TRAINED_CLOSE = "⟦", "⟧"


def main(cfg: DataInspectConfig) -> dict:
    """`chowa data inspect`: the report as text (or JSON)."""
    tokenizer = None
    if cfg.tokenizer:
        from chowa.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(cfg.tokenizer)
    report = inspect_data(cfg.files, cfg.kind, cfg.format or None, tokenizer, cfg.data_format, ReadOptions.of(cfg))
    print(json.dumps(report, ensure_ascii=False, indent=2) if cfg.json else format_inspection(report))
    return report


def render_main(cfg: TemplateRenderConfig) -> None:
    """`chowa template render`: the conversation file rendered in the format."""
    print(render_conversation_file(cfg.input, cfg.format, cfg.eos_token))


def mark_trained(messages: list[Message], fmt: str, tokenizer=None, eos_token: str = "</s>") -> str:
    """The rendered conversation with its trained part in ⟦ ⟧: from the tokens' loss mask if a tokenizer is given
    (showing exactly what the model learns), else from the text segments."""
    if tokenizer is None:
        return "".join(TRAINED_OPEN + s.text + (eos_token if s.eos else "") + TRAINED_CLOSE if s.trained else s.text
                       for s in render_segments(messages, fmt))
    ids, mask = render_training(messages, fmt, tokenizer)
    out, start = [], 0
    for end in range(1, len(ids) + 1):
        if end == len(ids) or mask[end] != mask[start]:
            text = tokenizer.decode(ids[start:end], skip_special_tokens=False)
            out.append(TRAINED_OPEN + text + TRAINED_CLOSE if mask[start] else text)
            start = end
    return "".join(out)


def inspect_sft(sources: list[str], fmt: str, tokenizer, data_format: str, options: ReadOptions) -> dict:
    """`chowa data inspect --kind sft`: formats per source, records, turns, and the first example rendered."""
    loaded = [read_conversations(source, data_format, True, options) for source in sources]
    conversations = [c for part in loaded for c in part.conversations]
    bad = [b for part in loaded for b in part.bad_records]
    report: dict[str, Any] = {
        "kind": "sft", "format": fmt, "data_formats": {k: v for part in loaded for k, v in part.formats.items()},
        "records": len(conversations), "bad_record_count": len(bad), "bad_records": bad[:50],
        "turns": sum(m["role"] == "assistant" for c in conversations for m in c.messages),
        "with_system": sum(c.messages[0]["role"] == "system" for c in conversations),
        **_merges(conversations),
    }
    if conversations:
        first = conversations[0]
        report["example"] = {"source": first.source, "messages": first.messages}
        try:
            report["example"]["rendered"] = mark_trained(first.messages, fmt, tokenizer)
        except ChowaError as exc:  # e.g. a system message in a rinna format: report it, keep the counts
            report["example"]["render_error"] = str(exc)
        if tokenizer is not None and "rendered" in report["example"]:
            ids, mask = render_training(first.messages, fmt, tokenizer)
            report["example"]["tokens"], report["example"]["trained_tokens"] = len(ids), sum(mask)
    return report


def inspect_preferences(sources: list[str], fmt: str, tokenizer, data_format: str, options: ReadOptions) -> dict:
    """`chowa data inspect --kind preference`: counts by format and kind, and the first pair rendered."""
    loaded = [read_preference_file(source, data_format, True, options) for source in sources]
    pairs = [pair for part in loaded for pair in part.pairs]
    bad = [b for part in loaded for b in part.bad_records]
    report: dict[str, Any] = {
        "kind": "preference", "format": fmt, "records": len(pairs), "bad_record_count": len(bad),
        "bad_records": bad[:50], "data_formats": dict(Counter(p.format for p in pairs)),
        "kinds": dict(Counter(p.kind for p in pairs if p.kind)),
        "identical_replies": sum(p.chosen == p.rejected for p in pairs),
        **_merges(pairs),
    }
    if pairs:
        first = pairs[0]
        report["example"] = {"source": first.source, "context": first.context, "chosen": first.chosen,
                             "rejected": first.rejected}
        try:
            report["example"]["prompt"] = render_prompt(first.context, fmt)
            if tokenizer is not None:
                sides = first.conversations()
                report["example"]["tokens"] = [len(render_training(side, fmt, tokenizer)[0]) for side in sides]
        except ChowaError as exc:
            report["example"]["render_error"] = str(exc)
    return report


def _merges(records: list) -> dict[str, int]:
    """hh-rlhf same-speaker turns merged (see `chowa.data.conversations`), and in how many records."""
    return {"merged_same_speaker_turns": sum(r.merged_turns for r in records),
            "records_with_merged_turns": sum(r.merged_turns > 0 for r in records)}


INSPECTORS: dict[str, Callable[[list[str], str, Any, str, ReadOptions], dict]] = {
    "sft": inspect_sft, "preference": inspect_preferences}


def inspect_data(paths: list[str], kind: str = "sft", format_name: str | None = None, tokenizer=None,
                 data_format: str = "auto", options: ReadOptions | None = None) -> dict:
    """A summary of data sources for `chowa data inspect`: detected formats, record and bad-record counts, and the
    first example rendered in chat format `format_name` with its trained part marked."""
    if kind not in INSPECTORS:
        raise ChowaError(f"--kind {kind!r} is not one of: {', '.join(INSPECTORS)}")
    fmt = get_format(format_name or DEFAULT_FORMAT).name
    report = INSPECTORS[kind](expand_sources(paths), fmt, tokenizer, data_format, options or ReadOptions())
    if "example" in report:
        report["example"] = shorten(report["example"])
    return report


def shorten(value: Any, limit: int = 2000) -> Any:
    """`value` with every string longer than `limit` characters cut, saying how much was left out."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}… ({len(value) - limit:,} more characters)"
    if isinstance(value, dict):
        return {key: shorten(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [shorten(item, limit) for item in value]
    return value


def format_inspection(report: dict) -> str:
    """`chowa data inspect` as text: the summary lines, bad records, then the first example."""
    lines = [f"kind: {report['kind']}    chat format: {report['format']}"]
    lines += [f"  {source}: {data_format}" for source, data_format in report.get("data_formats", {}).items()]
    lines.append(f"records: {report['records']}    bad records: {report['bad_record_count']}")
    lines += [f"  {bad}" for bad in report["bad_records"]]
    lines += [f"{key}: {value}" for key, value in report.items()
              if key not in ("kind", "format", "data_formats", "records", "bad_record_count", "bad_records",
                             "example")]
    example = report.get("example")
    if example:
        trained = ", trained part in ⟦ ⟧" if "rendered" in example else ""
        lines.append(f"first example ({example['source']}){trained}:")
        for key, value in example.items():
            if key in ("source", "messages", "context"):
                continue
            lines.append(value if key == "rendered" else f"{key}: {value}")
    return "\n".join(lines)
