"""MusicQA data: records, tokenisation with an exact prompt/answer boundary, and the original sub-epoch
sampler.

Records use the upstream schema
    {"audio_name": "000123.wav", "conversation": [{"from": "human", "value": Q}, {"from": "gpt", "value": A}]}
in a JSON list or JSONL file (M2UGen's copies of MusicQA name the clip `image_name`). A record without
a clip (Alpaca-style text) is text-only; one that names its media under any other key is left out and
counted, never read as text-only.
"""

import json
import logging
import math
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import load_audio
from ..prompt import encode_example
from ..tokenizer import Tokenizer

log = logging.getLogger(__name__)
TEXT_ONLY_AUDIO = ("silence", "zeros")
AUDIO_KEYS = ("audio_name", "image_name")  # a clip: MU-LLaMA's MusicQA names it audio_name, M2UGen's copy image_name
KINDS = (None, "musicqa", "alpaca")  # a MusicQA file's: every record has a clip, none has, or either
MEDIA_SUFFIXES = frozenset((".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".png", ".jpg", ".jpeg",
                            ".webp", ".bmp", ".gif", ".mp4", ".mkv", ".webm", ".avi", ".mov"))


@dataclass
class Record:
    question: str
    answer: str
    audio: Path | None  # None: a text-only record


def read_json_records(path: Path) -> list:
    """The items of a JSON list (.json) or a JSONL file (anything else)."""
    text = path.read_text()
    try:
        raw = json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines() if line]
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON{'' if path.suffix == '.json' else 'L'}: {e}") from e
    if not isinstance(raw, list):
        raise ValueError(f"{path} must hold a list of records")
    return raw


def media_key(item: dict, known: tuple) -> str | None:
    """The first key of a record, other than `known`, whose value names a media file: data that a reader
    looking only at its own keys would drop."""
    for key, value in item.items():
        if key not in known and isinstance(value, str) and Path(value).suffix.lower() in MEDIA_SUFFIXES:
            return key
    return None


def clip_name(item: dict) -> str | None:
    return next((item[k] for k in AUDIO_KEYS if item.get(k)), None)


def load_records(path, audio_root=None, kind: str | None = None) -> tuple[list[Record], Counter]:
    """(records, the count of each problem that left a record out) of a MusicQA JSON list or JSONL file;
    clips resolved against `audio_root`. kind "musicqa": every record names a clip; "alpaca": none does;
    None: a record without a clip is text-only."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(str, KINDS))}, not {kind!r}")
    path = Path(path)
    raw = read_json_records(path)
    root = Path(audio_root) if audio_root is not None else path.parent
    records, problems = [], Counter()
    for i, item in enumerate(raw):
        try:
            turns = item["conversation"]
            question = next(t["value"] for t in turns if t["from"] == "human")
            answer = next(t["value"] for t in turns if t["from"] == "gpt")
        except (KeyError, TypeError, StopIteration) as e:
            raise ValueError(f"{path}, record {i}: expected {{'audio_name', 'conversation': [{{'from': 'human', "
                             f"'value'}}, {{'from': 'gpt', 'value'}}]}}, got {str(item)[:200]}") from e
        name = clip_name(item)
        if found := media_key(item, AUDIO_KEYS):
            problems[f"media under an unknown key {found!r}"] += 1
        elif kind == "musicqa" and name is None:
            problems[f"no clip named ({' or '.join(AUDIO_KEYS)})"] += 1
        elif kind == "alpaca" and name is not None:
            problems["a clip in a text-only (alpaca) source"] += 1
        else:
            records.append(Record(question, answer, root / name if name else None))
    return records, problems


def report_source(path, kind, records: int, kept: int, problems: Counter) -> dict:
    """One data source's entry in a run's report (log.jsonl, --dry_run), said on stderr when records were
    left out."""
    if problems:
        print(f"{path}: {records - kept} of {records} records left out: "
              + ", ".join(f"{n} {why}" for why, n in problems.items()), file=sys.stderr)
    return {"path": str(path), "kind": kind, "records": records, "kept": kept, "left_out": dict(problems)}


class MusicQADataset(torch.utils.data.Dataset):
    """Items: {"tokens", "labels", "name", "music": the clip's waveform, or its MERT layer means [L + 1, H] from
    `feature_cache`}, padded by data.batch.collate.

    text_only_audio: what text-only records hear. "silence": 1 s of zeros through MERT, as the
    original code; "zeros": all-zero MERT layer means of `feature_shape` (no MERT call).
    """

    def __init__(self, records: list[Record], tokenizer: Tokenizer, max_words: int, template: str = "upstream",
                 feature_cache=None, text_only_audio: str = "silence", sample_rate: int = 24000,
                 tokenization: str = "separate", eos: bool = True, feature_shape: tuple[int, int] = (25, 1024)):
        if text_only_audio not in TEXT_ONLY_AUDIO:
            raise ValueError(f"text_only_audio must be one of {TEXT_ONLY_AUDIO}")
        self.items, skipped, truncated = [], 0, 0
        for record in records:
            encoded = encode_example(tokenizer, record.question, record.answer, template, max_words, tokenization,
                                     eos)
            if encoded is None:
                skipped += 1
                continue
            truncated += encoded.cut
            self.items.append((record, encoded.tokens, encoded.labels))
        if skipped or truncated:
            log.warning("max_words=%d: %d records skipped (prompt too long), %d answers cut short",
                        max_words, skipped, truncated)
        self.truncated, self.skipped = truncated, skipped
        self.cache = feature_cache
        self.text_only_audio = text_only_audio
        self.sample_rate = sample_rate
        self.feature_shape = feature_shape

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        record, tokens, labels = self.items[index]
        item = {"tokens": tokens, "labels": labels, "name": record.audio.name if record.audio else ""}
        if record.audio is None:
            if self.text_only_audio == "zeros" or self.cache is not None:
                item["music"] = torch.zeros(self.feature_shape)
            else:
                item["music"] = np.zeros(self.sample_rate, dtype=np.float32)
        elif self.cache is not None:
            item["music"] = self.cache.get(record.audio.name)
        else:
            item["music"] = load_audio(record.audio, self.sample_rate)
        return item


class SubEpochSampler(torch.utils.data.Sampler):
    """The original pretraining sampler: one permutation per `split_epoch` epochs (seeded by
    seed + epoch // split_epoch) cut into `split_epoch` interleaved slices; epoch e visits slice
    e % split_epoch, split over ranks. With split_epoch=1 it is a seeded DistributedSampler with
    drop_last. Deterministic, so a resumed run sees the same order."""

    def __init__(self, size: int, split_epoch: int = 1, rank: int = 0, world_size: int = 1, seed: int = 0):
        self.size, self.split, self.rank, self.world, self.seed = size, split_epoch, rank, world_size, seed
        self.epoch = 0
        self.per_rank = size // split_epoch // world_size
        if self.per_rank == 0:
            raise ValueError(f"{size} samples cannot fill {split_epoch} sub-epochs x {world_size} processes")

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def indices(self) -> list[int]:
        order = list(range(self.size))
        random.Random(self.seed + self.epoch // self.split).shuffle(order)
        part = order[self.epoch % self.split:: self.split]
        part = part[: self.per_rank * self.world]
        return part[self.rank:: self.world]

    def __iter__(self):
        return iter(self.indices())

    def __len__(self):
        return self.per_rank


def derangement(n: int, seed: int = 0) -> list[int]:
    """A seeded permutation of range(n) with no fixed point: clip i answers with clip p[i]."""
    if n < 2:
        raise ValueError(f"shuffling audio needs at least 2 distinct clips, got {n}")
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        if all(i != j for i, j in enumerate(order)):
            return order


def mix(datasets: list, ratios: list[float] | None, seed: int = 0) -> torch.utils.data.Dataset:
    """Concatenate (ratios None, as the original code), or resample each source so that it makes
    up `ratios[i]` of an epoch of the same total size (fixed, seeded choice)."""
    if ratios is None:
        return torch.utils.data.ConcatDataset(datasets)
    if len(ratios) != len(datasets):
        raise ValueError(f"{len(ratios)} ratios for {len(datasets)} datasets")
    total = sum(len(d) for d in datasets)
    rng = random.Random(seed)
    parts = []
    for dataset, ratio in zip(datasets, ratios, strict=True):
        count = math.floor(total * ratio / sum(ratios))
        parts.append(torch.utils.data.Subset(dataset, [rng.randrange(len(dataset)) for _ in range(count)]))
    return torch.utils.data.ConcatDataset(parts)
