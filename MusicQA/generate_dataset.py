"""Build the MusicQA dataset from the annotated sources, in the upstream layout and schema.

    python MusicQA/generate_dataset.py --musiccaps MusicCaps --mtt MTT --mtg MTG --musicqa MusicQA/MusicQA

reads DIR/MusicCapsAQA.jsonl, DIR/MTT_AQA.jsonl and DIR/MTG_AQA.jsonl (written by the *_process.py
scripts) and writes, in --musicqa:
    PretrainMusicQA.json (MusicCaps), FinetuneMusicQA.json (MTT), EvalMusicQA.json (MTG):
        9 records per clip, {"audio_name", "conversation": [{"from": "human"}, {"from": "gpt"}]}
    audios/{n:06d}.wav: each clip as WAV (original rate and channels), numbered across the sources
        in the order MusicCaps, MTT, MTG and, within a source, in its metadata file's order
    mapping.json: {new name: {"source", "clip_id", "original"}}, to go back to the source clip
Failed clips (status "failed") are left out and counted. Re-running rewrites the JSON files and
converts only the audio files not yet there (each written to a temporary name, then renamed).
Fixed from the original script: no stray index column, no path conventions that disagree.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import soundfile
from tqdm import tqdm

from llama.flags import HelpFormatter
from llama.musicqa.annotate import OUTPUT_NAMES, finished_clips
from llama.musicqa.sources import READERS
from llama.records import atomic_path

SPLITS = [("musiccaps", "PretrainMusicQA.json"), ("mtt", "FinetuneMusicQA.json"), ("mtg", "EvalMusicQA.json")]


def read_annotations(source: str, folder: Path) -> tuple[list[tuple], int]:
    """[(clip, record)] of the source's ok records in its metadata file's order, and the number of
    failed ones. Audio paths come from the folder as it is now, not from where the LLM run was."""
    path = folder / OUTPUT_NAMES[source]
    if not path.exists():
        raise SystemExit(f"{path} not found: run the {source} processing script with --dir {folder} first")
    finished_clips(path)  # drops a last line cut short by a killed run
    records = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        records[record["clip_id"]] = record
    clips = READERS[source](folder)
    known = {clip.clip_id for clip in clips}
    missing = [k for k in records if k not in known]
    if missing:
        raise SystemExit(f"{path} names clips that {folder} no longer has, e.g. {missing[0]}")
    ok = [(clip, records[clip.clip_id]) for clip in clips
          if clip.clip_id in records and records[clip.clip_id]["status"] == "ok"]
    return ok, sum(r["status"] != "ok" for r in records.values())


def write_wav(source: Path, target: Path):
    if target.exists():
        return
    with atomic_path(target) as tmp:
        if source.suffix.lower() == ".wav":
            shutil.copyfile(source, tmp)
        else:
            data, rate = soundfile.read(source, always_2d=True)
            soundfile.write(tmp, data, rate, format="WAV")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--musiccaps", type=Path, help="MusicCaps folder (-> PretrainMusicQA.json)")
    parser.add_argument("--mtt", type=Path, help="MagnaTagATune folder (-> FinetuneMusicQA.json)")
    parser.add_argument("--mtg", type=Path, help="MTG-Jamendo folder (-> EvalMusicQA.json)")
    parser.add_argument("--musicqa", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    (args.musicqa / "audios").mkdir(parents=True, exist_ok=True)
    mapping, number = {}, 0
    for source, split in SPLITS:
        folder = getattr(args, source)
        if folder is None:
            continue
        rows = []
        annotated, failed = read_annotations(source, folder)
        for clip, record in tqdm(annotated, desc=split, unit="clip"):
            name = f"{number:06d}.wav"
            number += 1
            write_wav(clip.audio, args.musicqa / "audios" / name)
            mapping[name] = {"source": source, "clip_id": clip.clip_id, "original": str(clip.audio.relative_to(folder))}
            for pair in record["fixed"] + record["open"]:
                rows.append({"audio_name": name, "conversation": [{"from": "human", "value": pair["question"]},
                                                                  {"from": "gpt", "value": pair["answer"]}]})
        (args.musicqa / split).write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"{split}: {len(rows)} records of {len(annotated)} clips ({failed} failed clips left out)",
              file=sys.stderr)
    (args.musicqa / "mapping.json").write_text(json.dumps(mapping, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
