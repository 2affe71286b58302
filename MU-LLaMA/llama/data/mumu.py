"""MuMu-LLaMA data in the original's record schema, checked before training.

A record (MUImage, MUVideo, MUEdit, and this project's caption and instruction sets built like them):
    {"input_file": "a.mp3" | "", "output_file": "b.mp3" | "",
     "conversation": [{"from": "human", "value": Q, "input_modality": "audio"|"image"|"video"|"text", "caption"},
                      {"from": "gpt", "value": A, "caption": C, "output_modality": "audio"|"text"}]}
An answer whose output modality is audio ends with [AUD0]..[AUD7] and carries its caption C: the text
the decoder-alignment target is made from. data/sources.py reads every file format into these records.
"""

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import av
import soundfile
import torch
from PIL import Image

from ..audio import SAMPLE_RATE, load_audio
from ..media import load_image, load_video
from ..multimodal import AUDIO_TOKENS
from ..prompt import encode_example

log = logging.getLogger(__name__)
INPUT_MODALITIES = ("audio", "image", "video")  # as records name them
MODEL_MODALITY = {"audio": "music", "image": "image", "video": "video"}  # as MuMuLLaMA names them
MUSIC_TOKENS = "".join(AUDIO_TOKENS)


@dataclass
class MuMuRecord:
    instruction: str
    answer: str  # ending with [AUD0]..[AUD7] when the output is music (joined as the kind of its file joins them)
    input_file: Path | None
    input_modality: str | None  # one of INPUT_MODALITIES, or None for text
    caption: str | None  # the output music's caption (the decoder target), None for text output


def caption_key(caption: str) -> str:
    """The target-cache key of a caption: its SHA-1 (captions are long, repeat across records, and are
    not valid file or tensor names as they are)."""
    return hashlib.sha1(caption.encode()).hexdigest()


def readable(path: Path, modality: str) -> bool:
    """Whether a file opens as its modality: its header, not a full decode (cheap for a whole dataset)."""
    try:
        if modality == "audio":
            soundfile.info(str(path))
        elif modality == "image":
            with Image.open(path) as image:
                image.verify()
        else:
            with av.open(str(path)) as container:
                return bool(container.streams.video)
        return True
    except Exception:  # every decoder has its own errors; any of them means the file cannot be used
        return False


def check_records(records: list[MuMuRecord], tokenizer, max_words: int, modalities=INPUT_MODALITIES,
                  template: str = "alpaca", tokenization: str = "separate", caches: dict | None = None,
                  eos: bool = True) -> tuple[list[MuMuRecord], Counter]:
    """(the records training can use, the count of each problem): an input modality the model lacks,
    an input file missing or not decodable (or, where `caches` holds that modality's feature cache, not
    in it), a prompt longer than `max_words`, a music answer cut by it (its [AUD] tokens would be lost).
    Reported before training starts, never hours in."""
    kept, problems, caches = [], Counter(), caches or {}
    for record in records:
        cache = caches.get(MODEL_MODALITY.get(record.input_modality))
        if record.input_modality is not None and record.input_modality not in modalities:
            problems[f"{record.input_modality} input, which this model lacks"] += 1
        elif record.input_file is not None and cache is not None and record.input_file.name not in cache:
            problems[f"{record.input_modality} input not in the feature cache"] += 1
        elif record.input_file is not None and cache is None and not record.input_file.is_file():
            problems["input file missing"] += 1
        elif (record.input_file is not None and cache is None
              and not readable(record.input_file, record.input_modality or "audio")):
            problems["input file not decodable"] += 1
        elif (encoded := encode_example(tokenizer, record.instruction, record.answer, template, max_words,
                                        tokenization, eos)) is None:
            problems[f"prompt longer than max_words={max_words}"] += 1
        elif record.caption is not None and encoded.cut:
            problems[f"music answer cut at max_words={max_words} (its [AUD] tokens lost)"] += 1
        else:
            kept.append(record)
    if problems:
        log.warning("%d of %d records left out: %s", len(records) - len(kept), len(records),
                    ", ".join(f"{n} {why}" for why, n in problems.items()))
    return kept, problems


class MuMuDataset(torch.utils.data.Dataset):
    """Items: {"tokens", "labels", "caption" (None for a text answer), and the input under its model
    modality ("music", "image" or "video"): cached encoder features where `caches` has that modality's
    cache, else the decoded file (waveform at `sample_rate`, [3, H, W] image, middle `frames` video
    frames), encoded by the training step}. Records must have passed `check_records`."""

    def __init__(self, records: list[MuMuRecord], tokenizer, max_words: int, template: str = "alpaca",
                 tokenization: str = "separate", caches: dict | None = None, target_cache=None,
                 sample_rate: int = SAMPLE_RATE, frames: int = 32, eos: bool = True):
        self.items = [(r, *encode_example(tokenizer, r.instruction, r.answer, template, max_words, tokenization,
                                          eos)[:2]) for r in records]
        self.caches = caches or {}
        self.target_cache = target_cache  # decoder-alignment targets by caption_key (None: computed per batch)
        self.sample_rate, self.frames = sample_rate, frames

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        record, tokens, labels = self.items[index]
        item = {"tokens": tokens, "labels": labels, "caption": record.caption}  # padded by data.batch.collate
        if self.target_cache is not None and record.caption is not None:
            item["target"] = self.target_cache.get(caption_key(record.caption))
        if record.input_file is not None:
            modality = MODEL_MODALITY[record.input_modality]
            cache = self.caches.get(modality)
            if cache is not None:
                item[modality] = cache.get(record.input_file.name)
            elif modality == "music":
                item[modality] = load_audio(record.input_file, self.sample_rate)
            elif modality == "image":
                item[modality] = load_image(record.input_file)
            else:
                item[modality] = load_video(record.input_file, self.frames)
        return item
