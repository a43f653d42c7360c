"""Reading raw text corpora: plain text or JSONL (`text` field), optionally gzip, in UTF-8 or Shift_JIS.

Non-UTF-8 input is decoded with the encoding the user names, or rejected with the file and byte offset of the
first bad byte. CRLF line ends are read as LF unless `keep_cr` asks otherwise.

Run as (from Python):
    for line in read_lines(["corpus.txt", "docs.jsonl"]): ...
"""

from __future__ import annotations

import glob
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

from chowa.errors import ChowaError

# Kana (with ー), CJK ideographs (Ext-A and the main block, 々) and half-width katakana: "is this Japanese text".
JAPANESE = re.compile(r"[\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")

ENCODINGS = ("utf-8", "shift_jis", "auto")
# Shift_JIS as found in the wild (Aozora Bunko, Windows files) is Microsoft's superset, cp932.
_PYTHON_CODEC = {"utf-8": "utf-8-sig", "shift_jis": "cp932"}


BUILTIN_PREFIX = "builtin:"
BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"


def expand_inputs(patterns: list[str]) -> list[Path]:
    """Files named by paths or globs, in order; a pattern that matches nothing is an error naming it.

    `builtin:corpus/*.txt` names the data shipped inside the package (the demo's and tests' corpus).
    """
    files: list[Path] = []
    for pattern in patterns:
        pattern = str(pattern)
        if pattern.startswith(BUILTIN_PREFIX):
            pattern = str(BUILTIN_DIR / pattern[len(BUILTIN_PREFIX):])
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if Path(m).is_file()]
        if not matches:
            raise ChowaError(f"input: no such file: {pattern}")
        files.extend(Path(m) for m in matches)
    return files


def decode_bytes(data: bytes, path: Path, encoding: str = "utf-8") -> str:
    """Decode a whole file's bytes; a UTF-8 error names the file, byte offset and line and how to fix it."""
    if encoding not in ENCODINGS:
        raise ChowaError(f"--encoding {encoding!r} is not one of: {', '.join(ENCODINGS)}")
    if encoding in ("utf-8", "auto"):
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            if encoding == "utf-8":
                line = data.count(b"\n", 0, exc.start) + 1
                raise ChowaError(
                    f"{path}: not valid UTF-8 at byte offset {exc.start} (line {line}, byte "
                    f"0x{data[exc.start]:02X}). If the file is Shift_JIS (common for Japanese text from Windows "
                    f"or Aozora Bunko), pass --encoding shift_jis, or --encoding auto to detect it."
                ) from None
    try:
        return data.decode(_PYTHON_CODEC["shift_jis"])
    except UnicodeDecodeError as exc:
        raise ChowaError(
            f"{path}: neither UTF-8 nor Shift_JIS; the first undecodable byte is at offset {exc.start}. "
            f"Convert the file to UTF-8 first (e.g. with iconv)."
        ) from None


def read_file_text(path: Path, encoding: str = "utf-8") -> str:
    """The file's text (gzip is opened transparently)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ChowaError(f"{path}: cannot read: {exc.strerror}") from None
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return decode_bytes(data, path, encoding)


def read_documents(
    patterns: list[str], encoding: str = "utf-8", keep_cr: bool = False, field: str = "text"
) -> Iterator[tuple[Path, int, str]]:
    """Yield `(file, line_number, document)`: each line of a text file, or each JSONL record's `field`.

    JSONL documents may hold newlines; text-file documents never do. With `keep_cr=False` a CRLF (or lone CR
    before LF) becomes LF, so Windows line ends do not leak `\\r` into a vocabulary.
    """
    for path in expand_inputs(patterns):
        text = read_file_text(path, encoding)
        if not keep_cr:
            text = text.replace("\r\n", "\n")
        is_jsonl = path.name.removesuffix(".gz").endswith((".jsonl", ".ndjson"))
        for number, line in enumerate(text.split("\n"), start=1):
            if is_jsonl:
                if not line.strip():
                    continue
                yield path, number, _jsonl_field(path, number, line, field)
            elif line:
                yield path, number, line


def _jsonl_field(path: Path, number: int, line: str, field: str) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ChowaError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict) or not isinstance(record.get(field), str):
        raise ChowaError(f"{path}:{number}: expected an object with a string field {field!r}")
    return record[field]
