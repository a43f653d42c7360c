"""Where data records come from: JSON / JSONL files, Parquet and Arrow files, `datasets` folders, and Hugging Face
datasets; every record with a location a user can find (`file:line`, `file:row N`).

A data source is one of:

    data.jsonl, data.json, *.jsonl.gz      one record per line, or one JSON array (line of each record kept)
    data.parquet, data.arrow               a table; each row is a record (read in batches: bounded memory)
    DIR[@SPLIT]                            a folder written by `datasets`' `save_to_disk` (a Dataset, or a
                                           DatasetDict: SPLIT, else its only split, else `train`)
    hf:NAME[:CONFIG][@SPLIT]               `datasets.load_dataset(NAME, CONFIG, split=SPLIT or "train")`: a Hub
                                           dataset (read from the local cache when offline) or a local folder of
                                           data files (hf:./my_data)

Column mapping (`columns`, from a stage's `data.columns.ROLE=NAME`): the record's column NAME is read as the field
ROLE chowa expects (e.g. `instruction=prompt`, `output=response`, `text=body`), so a dataset with other column
names needs no conversion script. Null fields of table rows are dropped (Arrow gives every struct every key of its
schema; a JSON record says what it means).

Run as (from Python):
    for where, record in iter_records("hf:kunishou/databricks-dolly-15k-ja"): ...
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from chowa.data.text import decode_bytes, expand_inputs, open_binary, read_file_text, resolve_encoding
from chowa.errors import ChowaError

HF_PREFIX = "hf:"
TABLE_SUFFIXES = (".parquet", ".arrow")
_BATCH_ROWS = 1024
T = TypeVar("T")


class BadRecord(Exception):
    """A record's problem, turned into "where: field: reason" by the reader."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}" if field else reason)


@dataclass(frozen=True)
class ReadOptions:
    """How a source is read: `columns` maps ROLE -> the record's column NAME, `encoding` decodes JSON files, and a
    JSONL line longer than `max_record_bytes` is a bad record (it is skipped over, never held in memory)."""

    columns: dict[str, str] = field(default_factory=dict)
    encoding: str = "utf-8"
    max_record_bytes: int = 8 << 20

    @classmethod
    def of(cls, cfg: Any) -> ReadOptions:
        """The options of a config section with `columns`, `encoding` and `max_record_bytes` (a ReadConfig)."""
        return cls(dict(cfg.columns), cfg.encoding, cfg.max_record_bytes)


class UnreadableSource(Exception):
    """A record that stops the whole source, skip_bad_records or not (e.g. its format cannot be told)."""


class Unreadable:
    """A record that cannot be read (a JSONL line that is not JSON, a row without a mapped column): a bad record like
    any other (skipped with skip_bad_records)."""

    def __init__(self, reason: str):
        self.reason = reason


def expand_sources(patterns: list[str]) -> list[str]:
    """Data sources named by paths, globs, `builtin:` names, dataset folders and `hf:` specs, in order."""
    sources: list[str] = []
    for pattern in patterns:
        pattern = str(pattern)
        if pattern.startswith(HF_PREFIX) or _dataset_folder(pattern) is not None:
            sources.append(pattern)
        elif Path(pattern).is_dir():
            raise ChowaError(f"input: {pattern} is a folder, but not one written by datasets' save_to_disk (no "
                             f"dataset_info.json or dataset_dict.json); for a folder of data files use hf:{pattern}")
        else:
            sources += [str(path) for path in expand_inputs([pattern])]
    return sources


def iter_records(source: str, options: ReadOptions | None = None) -> Iterator[tuple[str, Any]]:
    """`(where, record)` for every record of one source, its columns mapped (`map_columns`); a record that cannot be
    read (a JSONL line that is not JSON or too long, a row without a mapped column) comes as an `Unreadable`."""
    for _, where, record in _records(source, options or ReadOptions()):
        yield where, record


def parse_records(source: str, parse: Callable[[Any], T], skip_bad_records: bool = False,
                  options: ReadOptions | None = None) -> tuple[list[tuple[str, T]], list[str]]:
    """([(where, parse(record))], ["where: reason" of each bad record]): a `BadRecord` raised by `parse` stops the
    read with a ChowaError naming where, unless `skip_bad_records`; an `UnreadableSource` always does."""
    parsed, bad = [], []
    for where, record in iter_records(source, options):
        try:
            if isinstance(record, Unreadable):
                raise BadRecord("", record.reason)
            parsed.append((where, parse(record)))
        except BadRecord as exc:
            if not skip_bad_records:
                raise ChowaError(f"{where}: {exc}") from None
            bad.append(f"{where}: {exc}")
        except UnreadableSource as exc:
            raise ChowaError(f"{where}: {exc}") from None
    return parsed, bad


def map_columns(record: Any, columns: dict[str, str]) -> Any:
    """The record with each column NAME also read as the ROLE chowa expects (`columns` maps ROLE -> NAME); the
    record keeps its own columns, so what chowa writes back (a reply, a score) sits beside the user's names."""
    if not isinstance(record, dict):
        return record
    missing = [f"{name} (for {role})" for role, name in columns.items() if name not in record]
    if missing:
        return Unreadable(f"no column {', '.join(missing)} named by the column mapping; the record has "
                          f"{', '.join(record) or 'no columns'}")
    return record | {role: record[name] for role, name in columns.items()}


def _records(source: str, options: ReadOptions) -> Iterator[tuple[int, str, Any]]:
    """(line or row number, where, record): tables name rows (`file:row N`), JSON files lines (`file:N`). Mapping
    comes before a table row loses its nulls, so a mapped column that is null in a row is absent, not missing."""
    table = _is_table(source)
    for number, record in _numbered_rows(source, options):
        if options.columns and not isinstance(record, Unreadable):
            record = map_columns(record, options.columns)
        yield number, f"{source}:row {number}" if table else f"{source}:{number}", (
            _drop_nulls(record) if table else record)


def _numbered_rows(source: str, options: ReadOptions) -> Iterator[tuple[int, Any]]:
    if source.startswith(HF_PREFIX):
        return _dataset_rows(_load_hub(source))
    if (folder := _dataset_folder(source)) is not None:
        return _dataset_rows(_load_folder(*folder))
    if source.endswith(".parquet"):
        return _parquet_rows(Path(source))
    if source.endswith(".arrow"):
        return _arrow_rows(Path(source))
    return _json_records(Path(source), options)


def count_records(source: str) -> int | None:
    """The number of records of a table source without reading them (None for JSON files: count by reading)."""
    if source.startswith(HF_PREFIX):
        return len(_load_hub(source))
    if (folder := _dataset_folder(source)) is not None:
        return len(_load_folder(*folder))
    if source.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.ParquetFile(source).metadata.num_rows
    if source.endswith(".arrow"):
        return _arrow_table(Path(source)).num_rows
    return None


def source_fingerprint(source: str) -> str:
    """A string that changes when the source's content may have changed (for caches keyed on their inputs)."""
    if source.startswith(HF_PREFIX):
        return f"{source}:{_load_hub(source)._fingerprint}"
    folder = _dataset_folder(source)
    files = sorted(p for p in Path(folder[0]).rglob("*") if p.is_file()) if folder else [Path(source)]
    return ";".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files) + f"@{source}"


def read_documents(patterns: list[str], encoding: str = "utf-8", keep_cr: bool = False,
                   field: str = "text") -> Iterator[tuple[Path | str, int, str]]:
    """Yield `(file, line, document)` for each line of a text file and each JSONL (or .json array) record's `field`,
    and `(source, row, document)` for each row's `field` column of a table source (Parquet, Arrow, datasets, hf:).

    JSON and table documents may hold newlines; text-file documents never do. With `keep_cr=False` a CRLF (or lone
    CR before LF) becomes LF, so Windows line ends do not leak `\\r` into a vocabulary. Text and JSONL files are read
    a line at a time (a document is held whole, however long; `auto` encoding is decided once per file), tables in
    batches; a .json array is read whole.
    """
    for source in expand_sources(patterns):
        path = Path(source)
        if _is_table(source) or path.name.removesuffix(".gz").endswith(".json"):
            for number, where, record in _records(source, ReadOptions(encoding=encoding)):
                document = record.get(field) if isinstance(record, dict) else None
                if not isinstance(document, str):
                    raise ChowaError(f"{where}: expected a record with a string field {field!r} (name another with "
                                     "columns.text=NAME)")
                yield (source if _is_table(source) else path), number, (
                    document if keep_cr else document.replace("\r\n", "\n"))
            continue
        is_jsonl = path.name.removesuffix(".gz").endswith((".jsonl", ".ndjson"))
        for number, line in _text_lines(path, encoding):
            if not keep_cr:
                line = line.removesuffix("\r")
            if is_jsonl:
                if line.strip():
                    yield path, number, _jsonl_field(path, number, line, field)
            elif line:
                yield path, number, line


def _text_lines(path: Path, encoding: str, limit: int | None = None) -> Iterator[tuple[int, str | Unreadable]]:
    """Each line of a text file (without its newline) and its number, read and decoded a line at a time. With
    `limit`, a line longer than that many bytes is read past in pieces and given as an Unreadable record naming its
    size, so memory stays bounded by `limit`."""
    encoding, offset = resolve_encoding(path, encoding), 0
    with open_binary(path) as stream:
        for number in itertools.count(1):
            line = _read_line(stream, path, limit)
            if not line:
                return
            if limit is not None and len(line) > limit and not line.endswith(b"\n"):
                size = len(line) + _skip_line(stream, path)
                offset += size
                yield number, Unreadable(f"a record of {size:,} bytes, over max_record_bytes={limit:,}")
                continue
            yield number, decode_bytes(line, path, encoding, offset, number).removesuffix("\n")
            offset += len(line)


def count_documents(patterns: list[str], encoding: str = "utf-8", keep_cr: bool = False,
                    field: str = "text") -> int:
    """How many documents `read_documents` yields (tables count rows without reading them)."""
    total = 0
    for source in expand_sources(patterns):
        rows = count_records(source) if _is_table(source) else None
        total += rows if rows is not None else sum(1 for _ in read_documents([source], encoding, keep_cr, field))
    return total


def _is_table(source: str) -> bool:
    return source.startswith(HF_PREFIX) or source.endswith(TABLE_SUFFIXES) or _dataset_folder(source) is not None


def _jsonl_field(path: Path, number: int, line: str, field: str) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ChowaError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict) or not isinstance(record.get(field), str):
        raise ChowaError(f"{path}:{number}: expected an object with a string field {field!r}")
    return record[field]


def _dataset_folder(spec: str) -> tuple[str, str | None] | None:
    """(folder, split) when `spec` names a save_to_disk folder, optionally as FOLDER@SPLIT; else None."""
    folder, _, split = spec.rpartition("@") if "@" in spec else (spec, "", "")
    for candidate, candidate_split in ((spec, None), (folder, split or None)):
        path = Path(candidate)
        if candidate and path.is_dir() and any((path / name).is_file() for name in
                                               ("dataset_info.json", "state.json", "dataset_dict.json")):
            return candidate, candidate_split
    return None


def _load_folder(folder: str, split: str | None):
    import datasets

    try:
        loaded = datasets.load_from_disk(folder)
    except Exception as exc:  # datasets raises FileNotFoundError, ValueError, ... with a useful message
        raise ChowaError(f"{folder}: cannot read the datasets folder ({type(exc).__name__}: {_first_line(exc)})") \
            from None
    return _pick_split(loaded, split, folder)


def _load_hub(spec: str):
    import datasets

    name, split = spec[len(HF_PREFIX):], None
    if "@" in name:
        name, split = name.rsplit("@", 1)
    name, _, config = name.partition(":")
    if not name:
        raise ChowaError(f"{spec}: expected hf:NAME[:CONFIG][@SPLIT], e.g. hf:kunishou/databricks-dolly-15k-ja")
    try:
        return datasets.load_dataset(name, config or None, split=split or "train")
    except Exception as exc:  # offline, unknown name, unknown split: datasets' own message says which
        offline = " (offline: only datasets already in the local cache load)" if _offline() else ""
        raise ChowaError(f"{spec}: cannot load the dataset{offline}: {type(exc).__name__}: {_first_line(exc)}") \
            from None


def _pick_split(loaded, split: str | None, where: str):
    import datasets

    if isinstance(loaded, datasets.Dataset):
        if split:
            raise ChowaError(f"{where}: holds one dataset, not splits; drop @{split}")
        return loaded
    names = list(loaded)
    chosen = split or (names[0] if len(names) == 1 else "train")
    if chosen not in loaded:
        raise ChowaError(f"{where}: no split {chosen!r}; it has {', '.join(names)} (name one as {where}@SPLIT)")
    return loaded[chosen]


def _dataset_rows(dataset) -> Iterator[tuple[int, Any]]:
    row = 0
    for batch in dataset.iter(batch_size=_BATCH_ROWS):
        for values in zip(*batch.values(), strict=True):
            row += 1
            yield row, dict(zip(batch, values, strict=True))


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise ChowaError(f"{path}: not a Parquet file ({_first_line(exc)})") from None
    yield from _batch_rows(table.iter_batches(batch_size=_BATCH_ROWS))


def _arrow_rows(path: Path) -> Iterator[tuple[int, Any]]:
    yield from _batch_rows(_arrow_table(path).to_batches(max_chunksize=_BATCH_ROWS))


def _batch_rows(batches) -> Iterator[tuple[int, Any]]:
    row = 0
    for batch in batches:
        for record in batch.to_pylist():
            row += 1
            yield row, record


def _arrow_table(path: Path):
    """An Arrow file, memory-mapped: the IPC stream format `datasets` writes, or the IPC file format (Feather 2)."""
    import pyarrow as pa

    try:
        source = pa.memory_map(str(path))
        try:
            return pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowException) as exc:
        raise ChowaError(f"{path}: not an Arrow IPC file or stream ({_first_line(exc)})") from None


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _json_records(path: Path, options: ReadOptions) -> Iterator[tuple[int, Any]]:
    """Each record of a JSONL file (or of a .json array) with its line. JSONL is read a line at a time, and a line
    longer than `options.max_record_bytes` is skipped over in chunks, so memory stays bounded by that size."""
    if path.name.removesuffix(".gz").endswith(".json"):
        yield from _json_array(path, read_file_text(path, options.encoding).replace("\r\n", "\n"))
        return
    for number, line in _text_lines(path, options.encoding, options.max_record_bytes):
        if isinstance(line, Unreadable):
            yield number, line
        elif line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, Unreadable(f"not valid JSON ({exc.msg} at column {exc.colno})")


def _read_line(stream, path: Path, limit: int | None = None) -> bytes:
    """The next line, or its first `limit` + 1 bytes; b"" at the end."""
    try:
        return stream.readline() if limit is None else stream.readline(limit + 1)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # a gzip file cut short or damaged
        raise ChowaError(f"{path}: not a complete gzip file ({exc}); was it cut short in a download or copy?") \
            from None
    except OSError as exc:
        raise ChowaError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _skip_line(stream, path: Path) -> int:
    """Read past the rest of an overlong line in 1 MiB pieces; returns how many bytes that was."""
    skipped = 0
    while True:
        piece = _read_line(stream, path, 1 << 20)
        skipped += len(piece)
        if not piece or piece.endswith(b"\n"):
            return skipped


def _json_array(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """The elements of a JSON array file with the line each starts on (json.loads keeps no positions)."""
    decoder = json.JSONDecoder()
    space = re.compile(r"\s*")
    position = space.match(text).end()
    if text[position:position + 1] != "[":
        raise ChowaError(f"{path}:1: a .json data file must hold one JSON array of records")
    position = space.match(text, position + 1).end()
    line, counted = 1, 0
    while text[position:position + 1] != "]":
        line += text.count("\n", counted, position)
        counted = position
        try:
            record, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise ChowaError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        yield line, record
        position = space.match(text, position).end()
        if text[position:position + 1] == ",":
            position = space.match(text, position + 1).end()
        elif text[position:position + 1] != "]":
            at = line + text.count("\n", counted, position)
            raise ChowaError(f"{path}:{at}: expected ',' or ']' after a record")


def _offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes")
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


