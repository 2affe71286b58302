"""Answering many (clip, question) pairs into a resumable JSONL file: what batch_inference.py runs and the
captioning benchmarks time. Inputs (folders, audio files, lists of paths, MusicQA JSON) become pairs;
queues of pairs are read and encoded together and decoded with continuous batching; each record is
appended and fsync'd as its answer is complete; part files of a multi-process run merge into one.
Record schema and resume rules: batch_inference.py's help."""

import glob
import os
import sys
import time
from collections import Counter
from pathlib import Path

import soundfile
from tqdm import tqdm

from .audio import AudioError
from .data.dataset import load_records, report_source
from .pipeline import Pipeline
from .records import append_records, atomic_path, json_line, read_jsonl

AUDIO_EXTENSIONS = {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma"}
# the flags every record's "settings" carries (with the dtype and prompt template it ran in)
SETTINGS = ("model", "llama_type", "llama_dir", "mert_path", "max_gen_len", "temperature", "top_p", "seed",
            "audio_mode", "quantize")
QUEUE_FACTOR = 8  # pairs read, encoded and queued at a time, per row of --batch_size
def find_pairs(inputs: list[str], questions: list[str], audio_root: str | None) -> list[tuple[str, str]]:
    """The (absolute audio path, question) pairs of the inputs, without repeats, in input order."""
    pairs = []
    for item in map(Path, inputs):
        if not item.exists():
            raise SystemExit(f"--input {item} does not exist")
        if item.suffix.lower() in (".json", ".jsonl"):
            try:
                records, problems = load_records(item, audio_root)
            except ValueError as e:
                raise SystemExit(str(e)) from e
            report_source(item, None, len(records) + sum(problems.values()), len(records), problems)
            pairs += [(os.path.abspath(r.audio), r.question) for r in records if r.audio is not None]
            continue
        if item.is_dir():
            # links that lead nowhere are kept, so that their error record says so
            clips = sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and not p.is_dir())
            if not clips:
                raise SystemExit(f"--input {item}: no audio files ({' '.join(sorted(AUDIO_EXTENSIONS))}) in it or "
                                 "its subfolders")
        elif item.suffix.lower() in AUDIO_EXTENSIONS:
            clips = [item]
        else:
            try:
                lines = item.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError as e:
                raise SystemExit(f"--input {item} is neither a folder, an audio file, a MusicQA .json/.jsonl "
                                 "nor a text file of audio paths") from e
            clips = [item.parent / line.strip() for line in lines if line.strip()]  # an absolute line stays so
            if not clips:
                raise SystemExit(f"--input {item}: the list of audio paths is empty")
        pairs += [(os.path.abspath(clip), q) for clip in clips for q in questions]
    return list(dict.fromkeys(pairs))


def read_records(path: Path, repair: bool = False) -> list[dict]:
    """The records of a JSONL file this script wrote (see llama.records.read_jsonl for a torn last line)."""
    records = []
    for number, record in read_jsonl(path, repair):
        if not isinstance(record, dict) or not {"audio", "question"} <= record.keys():
            raise SystemExit(f"{path}, line {number} is not a record of batch_inference.py; fix or remove that line")
        records.append(record)
    return records


def write_records(path: Path, records: list[dict]):
    """Replaced whole: a kill leaves the previous complete file, never half of one."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(map(json_line, records)), encoding="utf-8")


def part_path(output: Path, rank: int, world: int) -> Path:
    return output.with_name(f"{output.name}.rank{rank}-of-{world}.jsonl")


def part_files(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f"{glob.escape(output.name)}.rank*-of-*.jsonl"))


def merge(output: Path):
    parts = part_files(output)
    if not parts and not output.exists():
        raise SystemExit(f"nothing to merge: neither {output} nor {output.name}.rank*-of-*.jsonl exist")
    best: dict[tuple[str, str], dict] = {}
    for path in [output, *parts]:
        for record in read_records(path):
            key = record["audio"], record["question"]
            # An answer beats an error (the pair was retried); otherwise the later record wins.
            if "answer" in record or "answer" not in best.get(key, {}):
                best[key] = record
    write_records(output, [best[key] for key in sorted(best)])
    for path in parts:
        path.unlink()
    answers = sum("answer" in r for r in best.values())
    print(f"{output}: {len(best)} records ({answers} answers, {len(best) - answers} errors); merged and deleted "
          f"{len(parts)} part files: {' '.join(p.name for p in parts) or '-'}", file=sys.stderr)


def duration(path: str) -> float:
    """Seconds of audio from the file header (no decoding); 0 for a file soundfile cannot open."""
    try:
        with open(path, "rb") as f:  # a file object: soundfile cannot encode every file name
            return soundfile.info(f).duration
    except (RuntimeError, OSError):
        return 0.0


def make_batches(pairs: list[tuple[str, str]], batch_size: int) -> list[list[tuple[str, str]]]:
    """Model calls of at most `batch_size` pairs. A clip's questions share a call where they fit, so
    the clip is read and encoded once; clips go shortest first, so clips of equal length share a
    call (MERT batches equal-length windows together) and long clips do not pad short ones' memory."""
    questions: dict[str, list[str]] = {}
    for audio, question in pairs:
        questions.setdefault(audio, []).append(question)
    batches, current = [], []
    for audio in sorted(questions, key=lambda a: (duration(a), a)):
        for i in range(0, len(questions[audio]), batch_size):
            part = [(audio, q) for q in questions[audio][i:i + batch_size]]
            if len(current) + len(part) > batch_size:
                batches.append(current)
                current = []
            current += part
    return batches + [current] if current else batches


def answer_pairs(model: Pipeline, pairs: list[tuple[str, str]], output: Path, batch_size: int,
                 settings: dict, desc: str = "answering", queue_size: int | None = None) -> Counter:
    """Answer `pairs`, appending each record to `output` as its answer is complete; returns the counts.

    `queue_size` pairs (default QUEUE_FACTOR x batch_size) are read and encoded at a time, then decoded
    `batch_size` at once with continuous batching: a finished row takes the next queued pair, so only
    the end of a queue waits on its longest answer. queue_size == batch_size gives static batches."""
    left = Counter(audio for audio, _ in pairs)  # pairs still to answer per clip, for the clips/s bar
    counts = Counter()
    progress = tqdm(total=len(left), unit="clip", desc=desc)
    with output.open("a", encoding="utf-8") as f:

        def write(records: list[dict]):
            append_records(f, records)
            counts.update("answers" if "answer" in r else "errors" for r in records)
            left.subtract(r["audio"] for r in records)
            progress.update(sum(left[a] == 0 for a in dict.fromkeys(r["audio"] for r in records)))

        for queue in make_batches(pairs, queue_size or QUEUE_FACTOR * batch_size):
            answer_queue(model, queue, batch_size, settings, write)
    progress.close()
    return counts


def answer_queue(model: Pipeline, queue: list[tuple[str, str]], batch_size: int, settings: dict, write):
    """Read the queue's clips, then answer its pairs; `write` gets the error records at once and each
    answer's record as soon as it is complete."""
    last = time.perf_counter()
    clips, errors, warnings = {}, {}, {}
    for audio in dict.fromkeys(a for a, _ in queue):
        try:
            clips[audio], warnings[audio] = model.load_clip(audio)
        except AudioError as e:
            errors[audio] = str(e)
            tqdm.write(f"error record: {e}", file=sys.stderr)
        for warning in warnings.get(audio, []):
            tqdm.write(f"warning: {audio}: {warning}", file=sys.stderr)
    if errors:
        write([{"audio": a, "question": q, "error": errors[a]} for a, q in queue if a in errors])
    ready = [(a, q) for a, q in queue if a in clips]

    def answered(i: int, text: str):
        nonlocal last
        now = time.perf_counter()
        audio, question = ready[i]
        # the wall time since the previous answer (the first of a queue: since reading its clips began)
        write([{"audio": audio, "question": question, "answer": text, "seconds": round(now - last, 4),
                "settings": settings} | ({"warnings": warnings[audio]} if warnings[audio] else {})])
        last = now

    if ready:
        model.answer([clips[a] for a, _ in ready], [q for _, q in ready], max_new_tokens=settings["max_gen_len"],
                     temperature=settings["temperature"], top_p=settings["top_p"], seed=settings["seed"],
                     batch_size=batch_size, on_answer=answered)
