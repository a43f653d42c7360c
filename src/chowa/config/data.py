"""Configs of `chowa data inspect` and `chowa template render`: seeing what chowa reads before training on it.

Run as:
    chowa data inspect data/alpaca_ja.json --format rinna-nl --tokenizer runs/demo/tokenizer
"""

from __future__ import annotations

from dataclasses import dataclass

from chowa.config import DATA_SOURCES, REQUIRED, option
from chowa.config.reading import ReadConfig
from chowa.data.conversations import DATA_FORMATS
from chowa.data.preferences import PREFERENCE_FORMATS
from chowa.formats import DEFAULT_FORMAT, FORMATS

INSPECT_KINDS = ("sft", "preference")


@dataclass
class DataInspectConfig(ReadConfig):
    files: list[str] = option(REQUIRED, f"Data {DATA_SOURCES}.", metavar="FILE", positional=True)
    kind: str = option("sft", "What the data is for.", choices=INSPECT_KINDS)
    format: str = option("", f"Chat format to render with (default: {DEFAULT_FORMAT}).", choices=tuple(FORMATS))
    data_format: str = option("auto", "Record format (default: detect per file; preference data per record). One "
                                      f"of: auto, {', '.join(DATA_FORMATS)} (sft); {', '.join(PREFERENCE_FORMATS)} "
                                      "(preference).")
    tokenizer: str = option("", "Also count tokens with this tokenizer.", metavar="DIR")
    json: bool = option(False, "Print JSON (keys: format, records, bad_records, ...).")


@dataclass
class TemplateRenderConfig:
    format: str = option(REQUIRED, "Chat format.", choices=tuple(FORMATS))
    input: str = option(REQUIRED, 'Conversation file: a JSON list of {"role", "content"} messages or '
                                  '{"messages": [...]}.', metavar="FILE.json")
    eos_token: str = option("</s>", "How EOS is written.")
