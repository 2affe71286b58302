"""Reading weight and config files safely, and naming why a file cannot be read.

A download can go wrong in ways that look alike from inside a loader: a Git clone without LFS
leaves 130-byte pointer files, an interrupted download leaves an empty or truncated file. Each
reader checks for these first, so the error names the cause and the fix. Pickles are read with
`weights_only=True` only, memory-mapped.
"""

import argparse
import ctypes
import hashlib
import json
import mmap
import os
import pickle
import re
import stat
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded, with a message that says why and what to do."""


def check_file(path: Path) -> None:
    """Raise CheckpointError for a missing, unreadable or empty file and for a Git LFS pointer file."""
    path = Path(path)
    if not path.exists():
        lost = path.is_symlink()  # an HF cache snapshot links to a blob that is gone
        hint = " (a broken link: the HF cache lost the file it points to; download it again)" if lost else ""
        raise CheckpointError(f"{path} does not exist{hint}")
    check_readable(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): the download failed or was interrupted; download it again")
    if size < 1024:
        head = path.read_bytes()
        if head.startswith(LFS_POINTER):
            expected = next((line.split()[1] for line in head.decode(errors="replace").splitlines()
                             if line.startswith("size ")), "?")
            raise CheckpointError(
                f"{path} is a Git LFS pointer ({size} bytes) standing for a {expected}-byte file: the repository was "
                "cloned without git-lfs. Run `git lfs install && git lfs pull` inside it, or download the files "
                "with `huggingface-cli download REPO --local-dir DIR`")


def check_readable(path: Path) -> None:
    """A file this user may not read is a permission problem, said as one (not a broken download)."""
    if not os.access(path, os.R_OK):
        mode = stat.filemode(path.stat().st_mode)
        raise CheckpointError(f"{path} cannot be read by this user: permission denied ({mode}, owner uid "
                              f"{path.stat().st_uid}); its owner can run `chmod a+r {path}`")


def _truncation_hint(path: Path) -> str:
    """What a checklist.chk beside a Meta shard says about it, if anything (only computed on failure)."""
    checklist = path.parent / "checklist.chk"
    if not checklist.exists():
        return "The file is truncated (a partial download?), corrupt or not a PyTorch checkpoint; download it again."
    expected = read_checklist(checklist).get(path.name)
    if expected is None:
        return f"{checklist.name} does not list {path.name}; download the folder again."
    md5 = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            md5.update(block)
    if md5.hexdigest() != expected:
        return f"its md5 differs from {checklist.name}: the download is incomplete or corrupt; download it again."
    return "Its md5 matches checklist.chk, so the file is as Meta published it; please report this."


def read_checklist(path: Path) -> dict[str, str]:
    """file name -> md5 of a Meta `checklist.chk` (`md5sum` output)."""
    entries = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            entries[parts[1].lstrip("*./")] = parts[0]
    return entries


def torch_load(path: Path) -> dict:
    """A `.pth`/`.bin` file, memory-mapped; tensors only (no pickled code is ever executed).

    `argparse.Namespace` is the one class allowed besides tensors and plain containers: the
    released MU-LLaMA checkpoint stores its training arguments as one. Storages saved on a GPU
    (`cuda:0`, as the released checkpoint's) are mapped to the CPU.
    """
    path = Path(path)
    check_file(path)
    with path.open("rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"  # torch >= 1.6; older torch wrote a plain pickle, which cannot be mapped
    try:
        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                return torch.load(path, map_location="cpu", mmap=zipped, weights_only=True)
        except RuntimeError as e:
            if "Cannot allocate memory" not in str(e):
                raise
            # A copy-on-write map of a file larger than RAM + swap is refused by the kernel's overcommit
            # check (the 26-31 GB M2UGen checkpoints on a 24 GB machine); a shared map is not. Writes to
            # its tensors would reach the file, so callers copy what they keep (formats/mumu.py does).
            with torch.serialization.safe_globals([argparse.Namespace]), \
                    torch.serialization.set_default_mmap_options(mmap.MAP_SHARED):
                return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        what = f" (it holds {found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path} holds objects other than tensors{what}, which are refused because unpickling them could run "
            "arbitrary code. If you trust the file, re-save its tensors alone where you made it: "
            "torch.save(model.state_dict(), path)") from e
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError) as e:
        if "Cannot allocate memory" in str(e):
            raise CheckpointError(f"cannot map {path} ({path.stat().st_size / 1e9:.1f} GB) into memory: "
                                  f"{str(e).splitlines()[0]}; free memory or add swap") from e
        raise CheckpointError(f"cannot read {path}: {str(e).splitlines()[0]}. {_truncation_hint(path)}") from e


def _read_safetensors(path: Path, read):
    check_file(path)
    try:
        with safe_open(path, framework="pt") as f:
            return read(f)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read {path}: {e}. The file is truncated (a partial download?) or "
                              "corrupt; download it again.") from e


def safetensors_keys(path: Path) -> list[str]:
    """The tensor names (reads the header only; fails on a file shorter than its header says)."""
    return _read_safetensors(path, lambda f: list(f.keys()))


def safetensors_load(path: Path) -> dict:
    return _read_safetensors(path, lambda f: {k: f.get_tensor(k) for k in f.keys()})


def read_json(path: Path) -> dict:
    check_file(path)
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e


def page_dropper(path):
    """A function that gives the pages of a tensor memory-mapped from `path` back to the kernel.

    Converting a mapped checkpoint to another dtype reads every page of it, and a read page stays in
    the process's resident memory until the kernel needs it. Dropping each tensor's pages once it is
    converted keeps the peak at the converted model plus one tensor. Only ranges mapped from `path`
    are touched (there the pages are the file's, read again if ever needed; elsewhere MADV_DONTNEED
    would zero memory); where /proc or madvise is missing it does nothing.
    """
    target = str(Path(path).resolve())
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        lines = Path("/proc/self/maps").read_text().splitlines()
    except (OSError, AttributeError):
        return lambda tensor: None
    ranges = []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == target:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, end))
    page = mmap.PAGESIZE

    def drop(tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        begin, end = storage.data_ptr(), storage.data_ptr() + storage.nbytes()
        begin, end = -(-begin // page) * page, end // page * page  # whole pages inside the tensor only
        if end > begin and any(lo <= begin and end <= hi for lo, hi in ranges):
            libc.madvise(ctypes.c_void_p(begin), ctypes.c_size_t(end - begin), 4)  # MADV_DONTNEED

    return drop
