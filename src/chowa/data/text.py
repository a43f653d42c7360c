"""Reading files as text: paths, globs and `builtin:` names; gzip opened transparently; UTF-8 or Shift_JIS.

Non-UTF-8 input is decoded with the encoding the user names, or rejected with the file and byte offset of the
first bad byte. Records and documents are read from these by `chowa.data.records`.

Run as (from Python):
    text = read_file_text(expand_inputs(["builtin:corpus/ja.txt"])[0])
"""

from __future__ import annotations

import codecs
import glob
import gzip
import re
import zlib
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


def decode_bytes(data: bytes, path: Path, encoding: str = "utf-8", offset: int = 0, line: int = 1) -> str:
    """Decode a file's bytes (or a part of them starting at byte `offset` on `line`); a UTF-8 error names the file,
    byte offset and line and how to fix it."""
    if encoding not in ENCODINGS:
        raise ChowaError(f"encoding {encoding!r} is not one of: {', '.join(ENCODINGS)}")
    if encoding in ("utf-8", "auto"):
        try:
            return data.decode("utf-8-sig" if offset == 0 else "utf-8")
        except UnicodeDecodeError as exc:
            if encoding == "utf-8":
                at = line + data.count(b"\n", 0, exc.start)
                raise ChowaError(
                    f"{path}: not valid UTF-8 at byte offset {offset + exc.start} (line {at}, byte "
                    f"0x{data[exc.start]:02X}). If the file is Shift_JIS (common for Japanese text from Windows or "
                    f"Aozora Bunko), read it with encoding shift_jis (--encoding shift_jis; data.encoding=shift_jis "
                    f"in sft, reward and ppo), or auto to detect it."
                ) from None
    try:
        return data.decode(_PYTHON_CODEC["shift_jis"])
    except UnicodeDecodeError as exc:
        raise ChowaError(
            f"{path}: neither UTF-8 nor Shift_JIS; the first undecodable byte is at offset {offset + exc.start}. "
            f"Convert the file to UTF-8 first (e.g. with iconv)."
        ) from None


def resolve_encoding(path: Path, encoding: str) -> str:
    """`auto` decided once per file from its first MiB (UTF-8 if that decodes, else Shift_JIS), so a file read a
    line at a time is decoded one way throughout; other encodings are returned as given."""
    if encoding != "auto":
        return encoding
    with open_binary(path) as stream:
        try:
            head = stream.read(1 << 20)
        except (EOFError, OSError, zlib.error):
            return "utf-8"  # the reader reports the cut file where it meets it
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # a character cut at the end is fine
        return "utf-8"
    except UnicodeDecodeError:
        return "shift_jis"


def open_binary(path: Path):
    """The file as a binary stream, gzip opened transparently."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(2)
        return gzip.open(path, "rb") if magic == b"\x1f\x8b" else path.open("rb")
    except OSError as exc:
        raise ChowaError(f"{path}: cannot read: {exc.strerror}") from None


def read_file_text(path: Path, encoding: str = "utf-8") -> str:
    """The file's text (gzip is opened transparently)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ChowaError(f"{path}: cannot read: {exc.strerror}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise ChowaError(f"{path}: not a complete gzip file ({exc}); was it cut short in a download or copy?") \
                from None
    return decode_bytes(data, path, encoding)
