"""Precompute MERT features: each clip's per-layer time-means [L + 1, H], all the frozen MERT
contributes to MU-LLaMA, into sharded safetensors keyed by audio name. (`build_target_cache` does
the same for MuMu-LLaMA's decoder-alignment targets, keyed by caption.)

    python MU-LLaMA/data/cache_features.py --mert_path ckpts/MERT-v1-330M --data MusicQA/PretrainMusicQA.json \\
        --audio_root MusicQA/audios --out cache/mert [--batch_size 8] [--audio_mode full] [--device cuda]

Re-running resumes: clips already in the cache are skipped. Features are computed in eval mode
(the original code trained with MERT in training mode, i.e. with SpecAugment time masking; a
cache cannot reproduce that, on-the-fly features can).
"""

import argparse
import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from llama import AudioError, load_audio, load_mert
from llama.cli import add_debug_argument, run_main
from llama.data.dataset import load_records
from llama.records import atomic_path


class FeatureCache:
    """Read side: `index.json` maps audio name -> shard file; shards are safetensors."""

    def __init__(self, folder):
        self.folder = Path(folder)
        index = self.folder / "index.json"
        self.index = json.loads(index.read_text()) if index.exists() else {}
        self.meta = json.loads((self.folder / "meta.json").read_text()) if (self.folder / "meta.json").exists() else {}
        self._open = {}

    def __contains__(self, name):
        return name in self.index

    def __len__(self):
        return len(self.index)

    def get(self, name: str) -> torch.Tensor:
        if name not in self.index:
            raise KeyError(f"{name} is not in the feature cache {self.folder}; run cache_features.py on it")
        shard = self.index[name]
        if shard not in self._open:
            self._open[shard] = safe_open(self.folder / shard, framework="pt")
        return self._open[shard].get_tensor(name)

    def write_shard(self, features: dict[str, torch.Tensor], meta: dict):
        """Add a shard atomically: the shard file first, then the index that names it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.meta and self.meta != meta:
            raise ValueError(f"{self.folder} holds features made with {self.meta}, not {meta}; use another folder")
        shard = f"shard-{len(set(self.index.values())):05d}.safetensors"
        with atomic_path(self.folder / shard) as tmp:
            save_file({k: v.contiguous() for k, v in features.items()}, tmp)
        self.index.update({name: shard for name in features})
        for name, payload in (("index.json", self.index), ("meta.json", meta)):
            with atomic_path(self.folder / name) as tmp:
                tmp.write_text(json.dumps(payload))
        self.meta = meta


def build_cache(mert, audio_files: list[Path], out, batch_size=8, shard_size=512, audio_mode="full",
                window_s=60.0) -> FeatureCache:
    """Encode every file not yet in the cache at `out`; unreadable files are reported and skipped."""
    cache = FeatureCache(out)
    meta = {"audio_mode": audio_mode, "window_s": window_s, "layers": mert.num_layers, "hidden": mert.hidden_size}
    todo = sorted({f for f in audio_files if f.name not in cache}, key=lambda f: f.name)
    pending: dict[str, torch.Tensor] = {}
    for start in tqdm(range(0, len(todo), batch_size), desc="MERT features", unit="batch"):
        clips, names = [], []
        for file in todo[start:start + batch_size]:
            try:
                clips.append(load_audio(file, mert.sample_rate))
                names.append(file.name)
            except AudioError as e:
                tqdm.write(f"skipped: {e}")
        if clips:
            pending.update(zip(names, mert.layer_means(clips, window_s=window_s, mode=audio_mode), strict=True))
        if len(pending) >= shard_size or (start + batch_size >= len(todo) and pending):
            cache.write_shard(pending, meta)
            pending = {}
    return cache


def caption_key(caption: str) -> str:
    """The cache key of a caption: its SHA-1 (captions are long, repeat across records, and are not
    valid file or tensor names as they are)."""
    return hashlib.sha1(caption.encode()).hexdigest()


def build_target_cache(decoder, captions: list[str], out, batch_size=16, shard_size=4096) -> FeatureCache:
    """MuMu-LLaMA's decoder-alignment targets for every caption not yet in the cache at `out`:
    10 x MusicGen's T5 states of the caption at 128 tokens, padded positions included, as the original's
    training target, but computed once and in eval mode (the original ran T5 in training mode, so its
    dropout made every target noisy). `FeatureCache(out).get(caption_key(c))` reads one back."""
    cache = FeatureCache(out)
    meta = {"decoder": "musicgen", "tokens": decoder.condition_tokens, "width": decoder.condition_dim, "scale": 10}
    todo = sorted({c for c in captions if caption_key(c) not in cache})
    pending: dict[str, torch.Tensor] = {}
    for start in tqdm(range(0, len(todo), batch_size), desc="decoder targets", unit="batch"):
        batch = todo[start:start + batch_size]
        states = 10 * decoder.text_states(batch).float().cpu()
        pending.update(zip(map(caption_key, batch), states, strict=True))
        if len(pending) >= shard_size or start + batch_size >= len(todo):
            cache.write_shard(pending, meta)
            pending = {}
    return cache


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mert_path", required=True)
    parser.add_argument("--data", nargs="+", required=True, help="MusicQA JSON/JSONL files naming the clips")
    parser.add_argument("--audio_root", help="folder of the audio files (default: beside each data file)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--shard_size", type=int, default=512, help="clips per shard file")
    parser.add_argument("--audio_mode", choices=["full", "upstream"], default="full")
    parser.add_argument("--window_s", type=float, default=60.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    files = [r.audio for path in args.data for r in load_records(path, args.audio_root) if r.audio is not None]
    mert = load_mert(args.mert_path, device=args.device)
    cache = build_cache(mert, files, args.out, args.batch_size, args.shard_size, args.audio_mode, args.window_s)
    print(f"{len(cache)} clips cached in {args.out}")


if __name__ == "__main__":
    run_main(main)
