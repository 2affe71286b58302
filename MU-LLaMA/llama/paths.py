"""From what a user types to the folder that holds the files.

Users pass paths as they have them: a weight file instead of its folder, the `7B` subfolder
instead of `--llama_dir`, Meta's `download.sh` folder (`llama-2-7b/`, `llama-2-7b-chat/`, ...),
an HF cache folder (`models--org--name`) or a hub id (`m-a-p/MERT-v1-330M`). Each resolves here to
the folder the readers in `checkpoint` take, or fails with one line that names the fix.
"""

import re
import sys
from pathlib import Path

from .files import CheckpointError, check_file

ROOT = Path(__file__).resolve().parents[2]  # the repository (demo/, ckpts/), for a source checkout
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".json", ".chk", ".model")


def resolve(path, what: str) -> Path:
    """A local file or folder (an HF cache repo folder becomes its snapshot), or a hub id's snapshot."""
    text = str(path)
    local = Path(text).expanduser()
    if local.exists():
        return cache_snapshot(local) if local.is_dir() and local.name.startswith("models--") else local
    if HUB_ID.fullmatch(text) and not text.startswith((".", "/")):
        return hub_snapshot(text, what)
    raise CheckpointError(f"{what} {text}: no such file or folder")


def cache_snapshot(repo: Path) -> Path:
    """The snapshot folder of an HF cache repo folder: the commit refs/main names, else the only one."""
    snapshots = repo / "snapshots"
    main = repo / "refs" / "main"
    if main.exists() and (snapshots / main.read_text().strip()).is_dir():
        return snapshots / main.read_text().strip()
    found = sorted(p for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise CheckpointError(f"{repo} is an HF cache folder with no snapshot: the download did not finish; "
                              "download the model again")
    raise CheckpointError(f"{repo} holds {len(found)} snapshots and no refs/main; pass one of them: "
                          + ", ".join(str(p) for p in found))


def hub_snapshot(repo_id: str, what: str) -> Path:
    """A hub repository's files: from the local HF cache when offline, downloaded when online."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = constants.HF_HUB_OFFLINE
    try:
        skipped = _skipped_files(repo_id, offline)
        return Path(snapshot_download(repo_id, local_files_only=offline, ignore_patterns=skipped))
    except LocalEntryNotFoundError as e:
        raise CheckpointError(
            f"{what} {repo_id} is not a local path and not in the HF cache ({constants.HF_HUB_CACHE})"
            + (" while the hub is offline (HF_HUB_OFFLINE=1)" if offline else f" and cannot be downloaded ({e})")
            + f": on a machine that reaches the hub run `huggingface-cli download {repo_id} --local-dir DIR` "
            "and pass DIR") from e
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise CheckpointError(f"{what} {repo_id} is not a local path, and the hub refused or failed its download "
                              f"({str(e).splitlines()[0]}); for gated models (meta-llama/*) accept the licence on "
                              "the model page and run `huggingface-cli login` first") from e


def _skipped_files(repo_id: str, offline: bool) -> list[str] | None:
    """A repository with safetensors weights often holds the same weights as .bin too: fetch one set."""
    if offline:
        return None
    from huggingface_hub import list_repo_files

    files = list_repo_files(repo_id)
    return ["*.bin", "*.bin.index.json"] if any(f.endswith(".safetensors") for f in files) else None


def has_weights(folder: Path) -> bool:
    return (folder / "params.json").exists() or (folder / "config.json").exists() or any(
        folder.glob("consolidated.*.pth"))


def llama_folder(llama_dir, llama_type: str | None = "7B") -> Path:
    """The folder holding the base weights, from --llama_dir and --llama_type as users give them:
    llama_dir/llama_type (the upstream layout), llama_dir itself (a weights folder, or the folder of
    a weight file), or the one weights subfolder of a `download.sh` folder."""
    path = resolve(llama_dir, "--llama_dir")
    if path.is_file():
        if path.suffix not in WEIGHT_SUFFIXES:
            raise CheckpointError(f"--llama_dir {path} is a file, not a LLaMA folder; pass the folder holding "
                                  "params.json + consolidated.*.pth or config.json + weights")
        path = path.parent
    if llama_type and (path / llama_type).is_dir():
        return path / llama_type
    if has_weights(path):
        return path
    candidates = sorted(p for p in path.iterdir() if p.is_dir() and has_weights(p)) if path.is_dir() else []
    if len(candidates) == 1:
        print(f"--llama_dir {path}: using the weights in {candidates[0].name}/, its only model folder",
              file=sys.stderr)
        return candidates[0]
    if candidates:
        names = ", ".join(p.name for p in candidates)
        raise CheckpointError(f"--llama_dir {path} holds several models ({names}) and no {llama_type}/: name one "
                              f"with --llama_type (MU-LLaMA was trained on the base model, e.g. --llama_type "
                              f"{_base_choice(candidates)})")
    raise CheckpointError(f"--llama_dir {path} holds no LLaMA weights: expected params.json + consolidated.*.pth "
                          "(Meta format) or config.json + weights (HF format), there or in a subfolder")


def _base_choice(candidates: list[Path]) -> str:
    plain = [p.name for p in candidates if "chat" not in p.name and "instruct" not in p.name.lower()]
    return min(plain or [p.name for p in candidates], key=len)


def find_tokenizer(*folders: Path) -> Path:
    """tokenizer.model or tokenizer.json in the first folder, or their parents, that has one."""
    searched = []
    for folder in folders:
        for place in (Path(folder), Path(folder).parent):
            if place in searched:
                continue
            searched.append(place)
            for name in ("tokenizer.model", "tokenizer.json"):
                if (place / name).exists():
                    check_file(place / name)
                    return place / name
    raise CheckpointError(f"no tokenizer.model or tokenizer.json in {' or '.join(map(str, searched))}")
