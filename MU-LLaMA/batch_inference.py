"""Answer questions about many music files with MU-LLaMA (e.g. caption a collection), into JSONL.

    python MU-LLaMA/batch_inference.py --input songs/ --output captions.jsonl \\
        [--question "Describe the audio" --question "What is the tempo?"] [model flags of inference.py]
    torchrun --nproc_per_node 8 MU-LLaMA/batch_inference.py --input songs/ --output captions.jsonl ...
    python MU-LLaMA/batch_inference.py --output captions.jsonl --merge    # after a torchrun run

--input (repeatable; --audio_paths is the upstream name) takes a folder (searched recursively for
audio files), an audio file, a text file of audio paths (one a line, relative to the text file's
folder), or a MusicQA JSON/JSONL (its own questions; clips under --audio_root, default its folder).
The clips of the other inputs are each asked every --question.

OUTPUT gets one JSON line per (audio, question):
    {"audio": absolute path, "question", "answer", "seconds": wall time since the previous answer,
     "settings": {model paths, max_gen_len, temperature, top_p, seed, audio_mode, dtype, prompt_template},
     "warnings": [...] only when the clip is silent, too short or a truncated WAV (see llama.audio)}
or, when the file cannot be read (empty, not audio, a format libsndfile cannot decode),
    {"audio", "question", "error": why}
and the run goes on. Each line is appended and fsync'd as its answer is complete. Re-running with the same
OUTPUT resumes: pairs already in it are skipped -- error records count as done unless
--retry_errors -- and a last line cut short by a kill is dropped.

Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK; one node or several) rank R of W answers the clips at
positions R, R + W, ... of the input, on cuda:LOCAL_RANK when --device is cuda, into
OUTPUT.rank{R}-of-{W}.jsonl; no process group is needed. Once every rank has finished, --merge joins
OUTPUT and the part files into OUTPUT (one record per pair, an answer preferred to an error, sorted
by audio then question) and deletes the part files it merged, listing them. A resumed run skips the
pairs in OUTPUT and in every part file, whatever number of processes wrote them.

Pairs decode --batch_size at a time with continuous batching: --queue_size pairs (8 x --batch_size by
default) are read and encoded together, and a row whose answer ended takes the next pair at once, so
short answers never wait for long ones (README, Throughput).

Decoding is greedy by default (--temperature 0): in float32 a pair gets the same answer at any
--batch_size and on any rank; in bf16/fp16 (bf16 is what --dtype auto picks on GPUs and on CPUs with
bf16 units) the batch's shape changes rounding and so, at a near-tie, a token: 56 of the demo model's
64 answers at batch 16 were batch 1's (README, Throughput). --dtype float32 where that matters.
With --temperature > 0 the samples depend on which pairs share a batch.
"""

import argparse
import glob
import os
import sys
import time
from collections import Counter
from pathlib import Path

import soundfile
from tqdm import tqdm

import llama
from llama.cli import BATCH_DTYPE_NOTE, add_model_arguments, load_model, run_main
from llama.data.dataset import load_records, report_source
from llama.records import append_records, atomic_path, json_line, lock_output, read_jsonl

AUDIO_EXTENSIONS = {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma"}
QUEUE_FACTOR = 8  # pairs read, encoded and queued at a time, per row of --batch_size
SETTINGS = ("model", "llama_type", "llama_dir", "mert_path", "max_gen_len", "temperature", "top_p", "seed",
            "audio_mode", "quantize")


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


def answer_pairs(model: llama.MULLaMA, pairs: list[tuple[str, str]], output: Path, batch_size: int,
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


def answer_queue(model: llama.MULLaMA, queue: list[tuple[str, str]], batch_size: int, settings: dict, write):
    """Read the queue's clips, then answer its pairs; `write` gets the error records at once and each
    answer's record as soon as it is complete."""
    last = time.perf_counter()
    clips, errors, warnings = {}, {}, {}
    for audio in dict.fromkeys(a for a, _ in queue):
        try:
            clips[audio], warnings[audio] = model.load_clip(audio)
        except llama.AudioError as e:
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", "--audio_paths", dest="input", nargs="+", action="extend",
                        help="folder, audio file, text file of audio paths, or MusicQA .json/.jsonl (repeatable)")
    parser.add_argument("--question", "--questions", dest="question", nargs="+", action="extend",
                        help="asked about every clip (repeatable; default: 'Describe the Audio', as upstream); "
                             "a MusicQA JSON input brings its own questions instead")
    parser.add_argument("--audio_root", help="folder of a MusicQA JSON's audio_name files (default: the JSON's folder)")
    parser.add_argument("--output", required=True, help="JSONL of records; resumed if it exists")
    parser.add_argument("--batch_size", type=int, default=16,
                        help="(clip, question) pairs decoded at once, with continuous batching (default 16)"
                             + BATCH_DTYPE_NOTE)
    parser.add_argument("--queue_size", type=int,
                        help=f"pairs read, encoded and queued at a time (default {QUEUE_FACTOR} x --batch_size); "
                        "equal to --batch_size: static batches, each decoded until its longest answer ends")
    parser.add_argument("--retry_errors", action="store_true",
                        help="ask again the pairs whose file could not be read (by default error records count "
                             "as done on resume)")
    parser.add_argument("--merge", action="store_true",
                        help="only join OUTPUT and its part files from a torchrun run into OUTPUT (no model)")
    add_model_arguments(parser, max_gen_len=256, temperature=0.0, top_p=1.0)
    args = parser.parse_args(argv)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.merge:
        with lock_output(output):
            return merge(output)
    if not args.input:
        parser.error("--input is required (or --merge)")
    if args.batch_size < 1:
        parser.error("--batch_size must be at least 1")
    if args.queue_size is not None and args.queue_size < args.batch_size:
        parser.error(f"--queue_size must be at least --batch_size ({args.batch_size})")
    is_json = [Path(i).suffix.lower() in (".json", ".jsonl") for i in args.input]
    if args.question and all(is_json):
        parser.error("--question is not used with a MusicQA JSON input: its records bring the questions")
    pairs = find_pairs(args.input, args.question or ["Describe the Audio"], args.audio_root)

    rank, world, local_rank = (int(os.environ.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1),
                                                                       ("LOCAL_RANK", 0)))
    if args.device == "cuda":
        args.device = f"cuda:{local_rank}"
    own = output if world == 1 else part_path(output, rank, world)
    with lock_output(own):
        answer_all(args, pairs, output, own, rank, world)


def answer_all(args, pairs: list[tuple[str, str]], output: Path, own: Path, rank: int, world: int):
    """Resume or start answering this rank's share of `pairs` into `own`."""
    mine = set(list(dict.fromkeys(a for a, _ in pairs))[rank::world])
    records = read_records(own, repair=True)
    if args.retry_errors and any("error" in r for r in records):
        write_records(own, [r for r in records if "error" not in r])
    for path in {output, *part_files(output)} - {own}:
        records += read_records(path)
    done = {(r["audio"], r["question"]) for r in records if "answer" in r or not args.retry_errors}
    todo = [(a, q) for a, q in pairs if a in mine and (a, q) not in done]
    shard = f"rank {rank} of {world}: " if world > 1 else ""
    print(f"{shard}{len(mine)} clips, {sum(a in mine for a, _ in pairs)} pairs, {len(todo)} to answer into {own}",
          file=sys.stderr)
    if todo:
        model = load_model(args)
        dtype = str(model.model.music_bridge.proj.weight.dtype).removeprefix("torch.")  # what --dtype auto chose
        settings = {key: getattr(args, key) for key in SETTINGS} | {"dtype": dtype,
                                                                    "prompt_template": model.template}
        other = sum(r.get("settings", settings) != settings for r in records)
        if other:
            print(f"note: {other} records already written were made with other settings; they are kept",
                  file=sys.stderr)
        counts = answer_pairs(model, todo, own, args.batch_size, settings, desc=f"{shard}answering",
                              queue_size=args.queue_size)
        print(f"{shard}{counts['answers']} answers, {counts['errors']} errors written to {own}", file=sys.stderr)
    if world > 1 and rank == 0:
        print(f"when every rank has finished: python {sys.argv[0]} --output {output} --merge", file=sys.stderr)
    elif world == 1 and part_files(output):
        print(f"part files of a torchrun run lie beside {output}: join them with --merge", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
