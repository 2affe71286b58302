"""Feature caches: what the frozen models contribute to training, computed once into sharded safetensors
(`MU-LLaMA/data/cache_features.py` is the command line):

- MERT: each clip's per-layer time-means [L + 1, H], keyed by audio file name (`build_cache`);
- ViT / ViViT (MuMu-LLaMA): each image's or video's last hidden states [tokens, width], keyed by file name
  (`build_vision_cache`);
- a music decoder (MuMu-LLaMA): the decoder-alignment target of each music answer's caption, keyed by the
  caption's SHA-1 (`caption_key`) (`build_target_cache`).

Building again resumes: what the cache holds is skipped. Everything is computed in eval mode (the original
trained with MERT's SpecAugment time masking and T5's dropout on; a cache cannot reproduce that, computing
on the fly can).
"""

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from ..audio import AudioError, load_audio
from ..decoders.base import TARGET_SCALE, alignment_targets
from ..media import MediaError, load_image, load_video
from ..records import atomic_path
from .mumu import caption_key


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


def build_target_cache(decoder, captions: list[str], out, batch_size=16, shard_size=4096) -> FeatureCache:
    """MuMu-LLaMA's decoder-alignment targets for every caption not yet in the cache at `out`:
    TARGET_SCALE x the decoder's conditioning of the caption (`decoder.targets`: MusicGen's T5 states at
    128 tokens, padded positions included, as the original's target; AudioLDM2's T5 + GPT-2 prompt
    embeddings in one row), computed once and in eval mode (the original ran T5 in training mode, so
    its dropout made every target noisy). `FeatureCache(out).get(caption_key(c))` reads one back."""
    cache = FeatureCache(out)
    todo = sorted({c for c in captions if caption_key(c) not in cache})
    pending: dict[str, torch.Tensor] = {}
    for start in tqdm(range(0, len(todo), batch_size), desc="decoder targets", unit="batch"):
        batch = todo[start:start + batch_size]
        states = alignment_targets(decoder, batch).float().cpu()
        pending.update(zip(map(caption_key, batch), states, strict=True))
        if len(pending) >= shard_size or start + batch_size >= len(todo):
            meta = {"decoder": type(decoder).__name__, "shape": list(states.shape[1:]), "scale": TARGET_SCALE}
            cache.write_shard(pending, meta)
            pending = {}
    return cache


def build_vision_cache(encoder, modality: str, files: list[Path], out, batch_size=8, shard_size=256) -> FeatureCache:
    """ViT (modality "image") or ViViT ("video") last hidden states [tokens, width] of every file not yet
    in the cache at `out`, keyed by file name; unreadable files are reported and skipped. A video is
    seen through its middle `encoder.frames` frames (the original drew a random window each time it
    read one; a cache fixes one window, as it fixes MERT's eval-mode features)."""
    cache = FeatureCache(out)
    meta = {"modality": modality, "tokens": encoder.tokens, "width": encoder.width}
    todo = sorted({f for f in files if f.name not in cache}, key=lambda f: f.name)
    pending: dict[str, torch.Tensor] = {}
    for start in tqdm(range(0, len(todo), batch_size), desc=f"{modality} features", unit="batch"):
        inputs, names = [], []
        for file in todo[start:start + batch_size]:
            try:
                inputs.append(load_image(file) if modality == "image" else load_video(file, encoder.frames))
                names.append(file.name)
            except MediaError as e:
                tqdm.write(f"skipped: {e}")
        if inputs:
            pending.update(zip(names, encoder.features(inputs), strict=True))
        if len(pending) >= shard_size or (start + batch_size >= len(todo) and pending):
            cache.write_shard(pending, meta)
            pending = {}
    return cache
