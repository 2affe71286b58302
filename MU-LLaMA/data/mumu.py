"""MuMu-LLaMA data in the original's record schema, checked before training, with a padding collate.

A record (MUCaps, MUImage, MUVideo, MUEdit, and the caption and instruction sets built like them):
    {"input_file": "a.mp3" | "", "output_file": "b.mp3" | "",
     "conversation": [{"from": "human", "value": Q, "input_modality": "audio"|"image"|"video"|"text", "caption"},
                      {"from": "gpt", "value": A, "caption": C, "output_modality": "audio"|"text"}]}
An answer whose output modality is audio ends with " " + [AUD0]..[AUD7], as the original appends
them, and carries its caption C: the text the decoder-alignment target is made from.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import av
import soundfile
import torch
from PIL import Image

from llama.data.dataset import read_json_records
from llama.mumu_llama import AUDIO_TOKENS
from llama.prompt import IGNORE_INDEX, encode_example

log = logging.getLogger(__name__)
INPUT_MODALITIES = ("audio", "image", "video")
MUSIC_TOKENS = "".join(AUDIO_TOKENS)


@dataclass
class MuMuRecord:
    instruction: str
    answer: str  # with " [AUD0]..[AUD7]" when the output is music
    input_file: Path | None
    input_modality: str | None  # one of INPUT_MODALITIES, or None for text
    caption: str | None  # the output music's caption (the decoder target), None for text output


def load_mumu_records(path, root=None) -> list[MuMuRecord]:
    """The records of a JSON list or JSONL file; input files resolved against `root` (default: beside it)."""
    path = Path(path)
    raw = read_json_records(path)
    root = Path(root) if root is not None else path.parent
    records = []
    for i, item in enumerate(raw):
        try:
            human = next(t for t in item["conversation"] if t["from"] == "human")
            gpt = next(t for t in item["conversation"] if t["from"] == "gpt")
            modality = human.get("input_modality", "text")
            music = gpt.get("output_modality", "text") == "audio"
            answer = f"{gpt['value']} {MUSIC_TOKENS}" if music else gpt["value"]
            records.append(MuMuRecord(human["value"], answer, root / item["input_file"] if item.get("input_file")
                                      else None, modality if modality in INPUT_MODALITIES else None,
                                      gpt.get("caption") or gpt["value"] if music else None))
        except (KeyError, TypeError, StopIteration) as e:
            raise ValueError(f"{path}, record {i}: expected {{'input_file', 'output_file', 'conversation': "
                             f"[{{'from': 'human', 'value', 'input_modality'}}, {{'from': 'gpt', 'value', "
                             f"'output_modality', 'caption'}}]}}, got {str(item)[:200]}") from e
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
                  template: str = "alpaca") -> tuple[list[MuMuRecord], Counter]:
    """(the records training can use, the count of each problem): an input file missing or not
    decodable, an input modality the model lacks, a prompt longer than `max_words`, a music answer cut
    by it (its [AUD] tokens would be lost). Reported before training starts, never hours in."""
    kept, problems = [], Counter()
    for record in records:
        if record.input_modality is not None and record.input_modality not in modalities:
            problems[f"{record.input_modality} input, which this model lacks"] += 1
        elif record.input_file is not None and not record.input_file.is_file():
            problems["input file missing"] += 1
        elif record.input_file is not None and not readable(record.input_file, record.input_modality or "audio"):
            problems["input file not decodable"] += 1
        elif (encoded := encode_example(tokenizer, record.instruction, record.answer, template, max_words)) is None:
            problems[f"prompt longer than max_words={max_words}"] += 1
        elif record.caption is not None and encoded[1][-1].item() != tokenizer.eos_id:
            problems[f"music answer cut at max_words={max_words} (its [AUD] tokens lost)"] += 1
        else:
            kept.append(record)
    if problems:
        log.warning("%d of %d records left out: %s", len(records) - len(kept), len(records),
                    ", ".join(f"{n} {why}" for why, n in problems.items()))
    return kept, problems


def collate_mumu(items: list[dict], pad_id: int = 0) -> dict:
    """Pad tokens (pad_id) and labels (IGNORE_INDEX) to the longest item: batches larger than one (the
    original's data cannot). Inputs stay lists (per modality, None where a row has none)."""
    length = max(len(i["tokens"]) for i in items)
    tokens = torch.full((len(items), length), pad_id, dtype=torch.long)
    labels = torch.full((len(items), length), IGNORE_INDEX, dtype=torch.long)
    for row, item in enumerate(items):
        tokens[row, : len(item["tokens"])] = item["tokens"]
        labels[row, : len(item["labels"])] = item["labels"]
    batch = {"tokens": tokens, "labels": labels, "captions": [i.get("caption") for i in items]}
    for modality in INPUT_MODALITIES:
        batch[modality] = [i.get(modality) for i in items]
    return batch
