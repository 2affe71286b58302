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
short answers never wait for long ones (docs/performance.md, Throughput).

Decoding is greedy by default (--temperature 0): in float32 a pair gets the same answer at any
--batch_size and on any rank; in bf16/fp16 (bf16 is what --dtype auto picks on GPUs and on CPUs with
bf16 units) the batch's shape changes rounding and so, at a near-tie, a token: 56 of the demo model's
64 answers at batch 16 were batch 1's (docs/performance.md, Throughput). --dtype float32 where that matters.
With --temperature > 0 the samples depend on which pairs share a batch.
"""

import argparse
import os
import sys
from pathlib import Path

from llama.captioning import (
    QUEUE_FACTOR,
    SETTINGS,
    answer_pairs,
    find_pairs,
    merge,
    part_files,
    part_path,
    read_records,
    write_records,
)
from llama.cli import load_model, run_main
from llama.flags import BATCH_DTYPE_NOTE, HelpFormatter, add_model_arguments
from llama.records import lock_output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
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
    add_model_arguments(parser, max_gen_len=256, top_p=1.0)
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
        dtype = str(model.dtype).removeprefix("torch.")  # what --dtype auto chose
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
