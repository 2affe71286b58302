"""The three MusicQA sources as lists of clips: audio file + a text description for the LLM.

Each reader takes the folder laid out as in docs/musicqa.md (metadata file + audio) and keeps the clips
the original pipeline kept: the audio file exists; MTT and MTG clips have at least 5 tags; MTG
tracks come from folders 00-09. Clips keep the metadata file's order, which numbers them later.

    MusicCaps/{musiccaps-public.csv, audios/[{ytid}]-[{start}-{end}].wav}
    MTT/{annotations_final.csv (tab-separated), audios/*.mp3 (flattened)}
    MTG/{raw_30s_cleantags_50artists.tsv, 00/ ... 09/}
"""

import csv
from dataclasses import dataclass
from pathlib import Path

MIN_TAGS = 5
MTG_FOLDERS = {f"{i:02d}" for i in range(10)}


@dataclass
class Clip:
    clip_id: str  # the source's own id (YouTube id + times, MTT clip_id, MTG track id)
    audio: Path
    description: str  # MusicCaps: the caption; MTT / MTG: the tags joined by ", "
    kind: str  # "caption" or "tags": how the LLM is told what the description is


def musiccaps_clips(folder) -> list[Clip]:
    folder = Path(folder)
    clips = []
    # Captions hold commas, quotes and newlines: the csv module reads the quoted fields whole.
    with (folder / "musiccaps-public.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            start, end = int(float(row["start_s"])), int(float(row["end_s"]))
            audio = folder / "audios" / f"[{row['ytid']}]-[{start}-{end}].wav"
            if audio.exists():
                clips.append(Clip(f"{row['ytid']}-{start}-{end}", audio, row["caption"].strip(), "caption"))
    return clips


def read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and non-empty rows of a tab-separated file (csv's quoting rules: MTT quotes its fields)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = [row for row in csv.reader(f, delimiter="\t") if row]
    return rows[0], rows[1:]


def mtt_clips(folder) -> list[Clip]:
    folder = Path(folder)
    # annotations_final.csv is tab-separated: clip_id, 188 binary tag columns, mp3_path.
    header, rows = read_tsv(folder / "annotations_final.csv")
    tags, clips = header[1:-1], []
    for row in rows:
        positive = [tag for tag, flag in zip(tags, row[1:-1], strict=True) if flag.strip() == "1"]
        audio = folder / "audios" / Path(row[-1]).name
        if len(positive) >= MIN_TAGS and audio.exists():
            clips.append(Clip(row[0], audio, ", ".join(positive), "tags"))
    return clips


def mtg_clips(folder) -> list[Clip]:
    folder = Path(folder)
    # TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION, then one tab-separated field per "category---value" tag.
    _, rows = read_tsv(folder / "raw_30s_cleantags_50artists.tsv")
    clips = []
    for number, row in enumerate(rows, 2):
        if len(row) < 5:
            raise ValueError(f"{folder / 'raw_30s_cleantags_50artists.tsv'}, line {number}: {len(row)} fields, "
                             "expected TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION and the tags")
        path, tags = row[3], [t.split("---", 1)[-1] for t in row[5:] if t.strip()]
        audio = folder / path
        if path.split("/")[0] in MTG_FOLDERS and len(tags) >= MIN_TAGS and audio.exists():
            clips.append(Clip(row[0], audio, ", ".join(tags), "tags"))
    return clips


READERS = {"musiccaps": musiccaps_clips, "mtt": mtt_clips, "mtg": mtg_clips}
