"""The output files of long jobs, written so that a kill loses nothing already done: JSONL records
appended and fsync'd batch by batch and read back past a torn last line, whole files replaced
atomically (temporary name, then rename), and a lock so that two runs never write one output."""

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path


def json_line(record: dict) -> str:
    """One JSONL line, non-ASCII kept readable. A file name that is not valid UTF-8 reaches Python with
    its bad bytes as lone surrogates (PEP 383), which UTF-8 cannot encode: they are written as JSON
    escapes (\\udcXX), which json.loads turns back into the same name, so the path round-trips."""
    text = json.dumps(record, ensure_ascii=False)
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def append_records(handle, records: list[dict]) -> None:
    """Append to an open JSONL file and make it durable before going on."""
    handle.write("".join(map(json_line, records)))
    handle.flush()
    os.fsync(handle.fileno())


def read_jsonl(path: Path, repair: bool = False) -> list[tuple[int, object]]:
    """(line number, value) of every complete line of a JSONL file; the value is None for a line that
    is not JSON. A last line without its newline is a write cut short by a kill: it is ignored, and
    with `repair` cut off the file, so that appending goes on cleanly."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        print(f"{path}: ignoring an incomplete last line (a run was killed while writing it)", file=sys.stderr)
        if repair:
            with path.open("r+b") as f:
                f.truncate(len(complete))
    lines = []
    for number, line in enumerate(complete.decode("utf-8").splitlines(), 1):
        try:
            lines.append((number, json.loads(line)))
        except json.JSONDecodeError:
            lines.append((number, None))
    return lines


def make_readable(path: Path) -> None:
    """Give a written file the permissions the umask allows (a library writing through a private temporary
    file may leave it readable by its owner only)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """A temporary name beside `path` (`name.tmp.suffix`) to write to, renamed to `path` when the block
    ends without an error and removed otherwise: a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        make_readable(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def lock_output(path: Path):
    """An exclusive lock on PATH.lock while the block runs. Two runs writing one output would both answer
    every pair; the second stops instead. The kernel drops the lock when its process dies, so the file a
    killed run leaves behind blocks nobody; a run that ends removes it."""
    lock = path.with_name(path.name + ".lock")
    handle = open(lock, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise SystemExit(f"{path} is being written by another run ({holder}); wait for it to end, or give "
                         "another --output") from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        handle.close()
