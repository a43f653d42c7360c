"""Files on disk: writes that a crash never leaves half done (every output chowa writes goes through here), and the
check that a folder a user names is there.

Run as (from Python):
    atomic_write_text("runs/x/report.md", text); write_jsonl("runs/x/replies.jsonl", records)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from chowa.errors import ChowaError


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` so that a reader sees either the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_line(record: dict) -> str:
    """One record as a JSON line (Japanese unescaped). Values JSON has no type for (a dataset's timestamps, bytes,
    decimals) are written as their text, so records read from a table can always be written back."""
    return json.dumps(record, ensure_ascii=False, default=str) + "\n"


def read_jsonl(path: str | os.PathLike, what: str) -> list[dict]:
    """The objects of a JSON Lines file (blank lines skipped); ChowaError naming `what`, the file and the line when
    it is missing, broken or holds something other than objects."""
    path = Path(path)
    if not path.is_file():
        raise ChowaError(f"{what}: {path} does not exist")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ChowaError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ChowaError(f"{path}:{number}: expected a JSON object")
            records.append(record)
    return records


def write_jsonl(path: str | os.PathLike, records: list[dict]) -> Path:
    """One JSON object per line (UTF-8, Japanese unescaped), written atomically."""
    atomic_write_text(path, "".join(json_line(r) for r in records))
    return Path(path)


def check_writable(path: str | os.PathLike, what: str, folder: bool = False) -> None:
    """Fail before any work when `path` (a file to write, or with `folder` a folder to write into) cannot be
    written, instead of after the work is done; the folder is created."""
    target = Path(path) if folder else Path(path).parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=target, prefix=".chowa-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ChowaError(f"{what}: cannot write to {target}: {exc.strerror or exc}") from None


def check_folder(path: str | os.PathLike, what: str) -> bool:
    """True for a local folder; False for a hub name (`owner/name`, for users with hub access); a ChowaError for a
    path that names a local folder that is not there, or a file."""
    folder = Path(path)
    if folder.is_dir():
        return True
    if folder.exists():
        raise ChowaError(f"{what}: {folder} is not a folder")
    if str(path).startswith((".", "/", "~")) or len(folder.parts) > 2:
        raise ChowaError(f"{what}: no such folder: {folder}")
    return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
