"""Every MuMu-LLaMA training file read as it is, one reader per dataset class of the original (a data
entry's `kind`, MUMU.md section 3), each giving MuMuRecords with the original's instruction, answer and
[AUD] join, and counting every record it cannot use instead of dropping its input in silence:

    mucaps, coco, muvideo  {relative path: caption} -> music / image / video in, the caption out, empty
                           instruction (stage 1; coco also reads COCO's captions_train2014.json as downloaded)
    mucaps_decoder         {relative path: caption} -> the caption asked for, answered with the caption and
                           [AUD0]..[AUD7], no space between (stage 2; the caption is the decoder target)
    musicqa                MusicQA records: the clip under `image_name` (M2UGen's files) or `audio_name`
    alpaca                 text-only records ({"conversation": [...]})
    any_to_music           MUImage / MUVideo / MUEdit records: the input under `input_file`, its modality in
                           the human turn, the answer + " " + [AUD0]..[AUD7] (stage 3; target: the gpt caption)
    records                this project's record schema: each record names its modality (data/mumu.py);
                           task "caption_to_music" asks for each caption as music (" " before [AUD0])
"""

import json
from collections import Counter
from pathlib import Path

from .dataset import AUDIO_KEYS, clip_name, load_records, media_key, read_json_records
from .mumu import INPUT_MODALITIES, MUSIC_TOKENS, MuMuRecord

CAPTION_KINDS = {"mucaps": "audio", "coco": "image", "muvideo": "video"}
KINDS = (*CAPTION_KINDS, "mucaps_decoder", "musicqa", "alpaca", "any_to_music", "records")
TASKS = (None, "caption_to_music")  # the records kind only


def read_source(path, root=None, kind: str = "records", task: str | None = None) -> tuple[list[MuMuRecord], Counter]:
    """(the usable records of one data file, the count of each problem that left a record out); input files
    resolved against `root` (default: beside the file)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if task not in TASKS or (task is not None and kind != "records"):
        raise ValueError(f"task {task!r}: only the records kind takes a task ({TASKS[1]})")
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    if kind in CAPTION_KINDS or kind == "mucaps_decoder":
        return read_captions(path, root, kind)
    if kind in ("musicqa", "alpaca"):
        read, problems = load_records(path, root, kind)
        return [MuMuRecord(r.question, r.answer, r.audio, "audio" if r.audio else None, None) for r in read], problems
    return read_conversations(path, root, kind, task)


def read_captions(path: Path, root: Path, kind: str) -> tuple[list[MuMuRecord], Counter]:
    data = json.loads(path.read_text()) if path.is_file() else None
    if kind == "coco" and isinstance(data, dict) and {"images", "annotations"} <= set(data):
        return coco_records(data, root), Counter()
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a {kind} file is a JSON object {{relative path: caption}}, as the original's")
    records, problems = [], Counter()
    for file, caption in data.items():
        if not isinstance(caption, str) or not caption.strip():
            problems["no caption"] += 1
        elif kind == "mucaps_decoder":  # the original asks for the caption and answers it, [AUD] glued on
            records.append(MuMuRecord(caption, caption + MUSIC_TOKENS, None, None, caption))
        elif not file:
            problems[f"no {CAPTION_KINDS[kind]} file named"] += 1
        else:
            records.append(MuMuRecord("", caption, root / file, CAPTION_KINDS[kind], None))
    return records, problems


def coco_records(coco: dict, root: Path) -> list[MuMuRecord]:
    """A COCO captions file as it is downloaded (`captions_train2014.json`: "images" with `id` and
    `file_name`, "annotations" with `image_id` and `caption`): one image -> caption record per caption,
    with the empty instruction of stage 1; images resolved against `root`."""
    files = {image["id"]: image["file_name"] for image in coco["images"]}
    return [MuMuRecord("", note["caption"].strip(), root / files[note["image_id"]], "image", None)
            for note in coco["annotations"]]


def read_conversations(path: Path, root: Path, kind: str, task: str | None) -> tuple[list[MuMuRecord], Counter]:
    """The any_to_music and records kinds: {"input_file", "output_file", "conversation": [human, gpt]}."""
    read = any_to_music_record if kind == "any_to_music" else project_record
    records, problems = [], Counter()
    for i, item in enumerate(read_json_records(path)):
        try:
            human, gpt = item["conversation"][0], item["conversation"][-1]  # the original's first and last turn
            human["value"], gpt["value"]
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"{path}, record {i}: expected {{'input_file', 'output_file', 'conversation': "
                             f"[{{'from': 'human', 'value', 'input_modality'}}, {{'from': 'gpt', 'value', "
                             f"'output_modality', 'caption'}}]}}, got {str(item)[:200]}") from e
        record, problem = read(item, human, gpt, root, task) if isinstance(gpt["value"], str) else (
            None, "no answer (the gpt turn's value is not text)")
        if problem:
            problems[problem] += 1
        else:
            records.append(record)
    return records, problems


Read = tuple[MuMuRecord | None, str | None]  # a record, or why the record cannot be used


def any_to_music_record(item: dict, human: dict, gpt: dict, root: Path, task=None) -> Read:
    modality, file, caption = human.get("input_modality"), item.get("input_file"), gpt.get("caption")
    if found := media_key(item, ("input_file", "output_file")):
        return None, f"media under an unknown key {found!r}"
    if modality not in INPUT_MODALITIES:
        return None, f"input_modality {modality!r}, not one of {', '.join(INPUT_MODALITIES)}"
    if not file:
        return None, f"{modality} input without an input_file"
    if not caption:
        return None, "music answer without a caption (its decoder target)"
    return MuMuRecord(human["value"], f"{gpt['value']} {MUSIC_TOKENS}", root / file, modality, caption), None


def project_record(item: dict, human: dict, gpt: dict, root: Path, task: str | None) -> Read:
    """This project's record schema (data/mumu.py), MusicQA records (a clip under audio_name) among them."""
    answer = gpt["value"]
    if task == "caption_to_music":  # stage 2 from caption records: the caption asked for as music
        text = gpt.get("caption") or answer
        return MuMuRecord(text, f"{text} {MUSIC_TOKENS}", None, None, text), None
    modality = human.get("input_modality")
    known = ("input_file", "output_file", *AUDIO_KEYS)
    if found := media_key(item, known):
        return None, f"media under an unknown key {found!r}"
    file = item.get("input_file") or (clip_name(item) if modality is None else None)
    if file and modality is None:  # a MusicQA record
        modality = "audio"
    if modality in INPUT_MODALITIES and not file:
        return None, f"{modality} input without an input_file"
    music = gpt.get("output_modality") == "audio"
    return MuMuRecord(human["value"], f"{answer} {MUSIC_TOKENS}" if music else answer,
                      root / file if modality in INPUT_MODALITIES else None,
                      modality if modality in INPUT_MODALITIES else None,
                      (gpt.get("caption") or answer) if music else None), None
