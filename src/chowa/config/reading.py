"""How a command reads its data sources: the column mapping, the text encoding and the largest record; every
command that reads records (the training stages' `data` sections, generate, compare, eval heldout, reward score,
data inspect) takes these keys.

Run as:
    chowa sft --config configs/tiny/sft.yaml data.encoding=shift_jis data.columns.output=response
"""

from __future__ import annotations

from dataclasses import dataclass

from chowa.config import COLUMNS_HELP, option
from chowa.data.text import ENCODINGS


@dataclass
class ReadConfig:
    columns: dict[str, str] = option({}, COLUMNS_HELP)
    encoding: str = option("utf-8", "Encoding of JSON / JSONL files; `auto` tries UTF-8, then Shift_JIS (cp932).",
                           choices=ENCODINGS)
    max_record_bytes: int = option(8 << 20, "The largest JSONL record read; a longer line is a bad record, named by "
                                            "its line (skipped with skip_bad_records) and never held in memory.",
                                   minimum=1)
