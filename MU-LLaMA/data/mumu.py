"""MuMu-LLaMA data in the original's record schema, checked before training, with a padding collate.

A record (MUCaps, MUImage, MUVideo, MUEdit, and the caption and instruction sets built like them):
    {"input_file": "a.mp3" | "", "output_file": "b.mp3" | "",
     "conversation": [{"from": "human", "value": Q, "input_modality": "audio"|"image"|"video"|"text", "caption"},
                      {"from": "gpt", "value": A, "caption": C, "output_modality": "audio"|"text"}]}
An answer whose output modality is audio ends with " " + [AUD0]..[AUD7], as the original appends
them, and carries its caption C: the text the decoder-alignment target is made from.
"""

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import av
import soundfile
import torch
from PIL import Image

from llama.audio import SAMPLE_RATE, load_audio
from llama.data.dataset import read_json_records
from llama.media import load_image, load_video
from llama.mumu_llama import AUDIO_TOKENS
from llama.prompt import IGNORE_INDEX, encode_example

log = logging.getLogger(__name__)
INPUT_MODALITIES = ("audio", "image", "video")  # as records name them
MODEL_MODALITY = {"audio": "music", "image": "image", "video": "video"}  # as MuMuLLaMA names them
MUSIC_TOKENS = "".join(AUDIO_TOKENS)


@dataclass
class MuMuRecord:
    instruction: str
    answer: str  # with " [AUD0]..[AUD7]" when the output is music
    input_file: Path | None
    input_modality: str | None  # one of INPUT_MODALITIES, or None for text
    caption: str | None  # the output music's caption (the decoder target), None for text output


TASKS = (None, "caption_to_music")


def caption_key(caption: str) -> str:
    """The target-cache key of a caption: its SHA-1 (captions are long, repeat across records, and are
    not valid file or tensor names as they are)."""
    return hashlib.sha1(caption.encode()).hexdigest()


def load_mumu_records(path, root=None, task: str | None = None) -> list[MuMuRecord]:
    """The records of a JSON list or JSONL file; input files resolved against `root` (default: beside it).
    MusicQA records (`audio_name`, text answers) are read too, as audio -> text records, and a COCO
    captions file (`coco_records`) as image -> caption records.
    task "caption_to_music" (stage 2, from MUCaps-style records): each answer text C becomes the request
    "C" answered with "C [AUD0]..[AUD7]", whose target is C's; the input is dropped."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    if path.suffix == ".json" and path.is_file():
        coco = json.loads(path.read_text())
        if isinstance(coco, dict) and {"images", "annotations"} <= set(coco):
            if task is not None:
                raise ValueError(f"{path} is a COCO captions file: task {task!r} takes music caption records")
            return coco_records(coco, root)
    raw = read_json_records(path)
    records = []
    for i, item in enumerate(raw):
        try:
            human = next(t for t in item["conversation"] if t["from"] == "human")
            gpt = next(t for t in item["conversation"] if t["from"] == "gpt")
            if task == "caption_to_music":
                text = gpt.get("caption") or gpt["value"]
                records.append(MuMuRecord(text, f"{text} {MUSIC_TOKENS}", None, None, text))
                continue
            file = item.get("input_file") or item.get("audio_name")
            modality = human.get("input_modality", "audio" if item.get("audio_name") else "text")
            music = gpt.get("output_modality", "text") == "audio"
            answer = f"{gpt['value']} {MUSIC_TOKENS}" if music else gpt["value"]
            records.append(MuMuRecord(human["value"], answer, root / file if file else None,
                                      modality if modality in INPUT_MODALITIES else None,
                                      gpt.get("caption") or gpt["value"] if music else None))
        except (KeyError, TypeError, StopIteration) as e:
            raise ValueError(f"{path}, record {i}: expected {{'input_file', 'output_file', 'conversation': "
                             f"[{{'from': 'human', 'value', 'input_modality'}}, {{'from': 'gpt', 'value', "
                             f"'output_modality', 'caption'}}]}}, got {str(item)[:200]}") from e
    return records


def coco_records(coco: dict, root: Path) -> list[MuMuRecord]:
    """A COCO captions file as it is downloaded (`captions_train2014.json`: "images" with `id` and
    `file_name`, "annotations" with `image_id` and `caption`): one image -> caption record per caption,
    with the empty instruction of stage 1; images resolved against `root`."""
    files = {image["id"]: image["file_name"] for image in coco["images"]}
    records = []
    for note in coco["annotations"]:
        records.append(MuMuRecord("", note["caption"].strip(), root / files[note["image_id"]], "image", None))
    return records


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
                  template: str = "alpaca", tokenization: str = "separate",
                  caches: dict | None = None) -> tuple[list[MuMuRecord], Counter]:
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
                                        tokenization)) is None:
            problems[f"prompt longer than max_words={max_words}"] += 1
        elif record.caption is not None and encoded[1][-1].item() != tokenizer.eos_id:
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
                 sample_rate: int = SAMPLE_RATE, frames: int = 32):
        self.items = [(r, *encode_example(tokenizer, r.instruction, r.answer, template, max_words, tokenization))
                      for r in records]
        self.caches = caches or {}
        self.target_cache = target_cache  # decoder-alignment targets by caption_key (None: computed per batch)
        self.sample_rate, self.frames = sample_rate, frames

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        record, tokens, labels = self.items[index]
        item = {"tokens": tokens, "labels": labels, "caption": record.caption}
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


def collate_mumu(items: list[dict], pad_id: int = 0) -> dict:
    """Pad tokens (pad_id) and labels (IGNORE_INDEX) to the longest item: batches larger than one (the
    original's data cannot). Inputs stay lists (per modality, None where a row has none); cached
    targets are stacked, zeros for rows without a music answer."""
    length = max(len(i["tokens"]) for i in items)
    tokens = torch.full((len(items), length), pad_id, dtype=torch.long)
    labels = torch.full((len(items), length), IGNORE_INDEX, dtype=torch.long)
    for row, item in enumerate(items):
        tokens[row, : len(item["tokens"])] = item["tokens"]
        labels[row, : len(item["labels"])] = item["labels"]
    batch = {"tokens": tokens, "labels": labels, "captions": [i.get("caption") for i in items]}
    for modality in MODEL_MODALITY.values():
        batch[modality] = [i.get(modality) for i in items]
    known = next((i["target"] for i in items if i.get("target") is not None), None)
    if known is not None:
        batch["targets"] = torch.stack([i["target"] if i.get("target") is not None else torch.zeros_like(known)
                                        for i in items])
    return batch
