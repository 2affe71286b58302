"""Answer every (audio, question) pair of an evaluation set with MU-LLaMA, for evaluate.py.

    python ModelEvaluations/generate_mullama.py --model ckpts/checkpoint.pth --llama_dir ckpts/LLaMA \\
        --mert_path ckpts/MERT-v1-330M --data MusicQA/MusicQA/EvalMusicQA.json \\
        --audio_root MusicQA/MusicQA/audios --output results/mullama_data.json [--shuffle_audio]

Writes `{audio_name: {question: answer}}` (the upstream schema) atomically after every --queue_size pairs, and
`OUTPUT.meta.json` beside it: model paths, decoding settings, library versions and counts.
Pairs decode --batch_size at a time with continuous batching (a row whose answer ended takes the
next pair at once). Re-running resumes: pairs already in OUTPUT are skipped, per pair (never per file). Decoding is
greedy unless --temperature > 0 (then seeded by --seed). Each clip is encoded whole (--audio_mode
full) unless --audio_mode upstream. --shuffle_audio answers every question with another clip's
audio (a seeded derangement of the clips): the control that shows how much of a score comes from
listening. A clip that cannot be read is reported and left out (evaluate.py counts it missing); a
silent, too short or cut-short one is answered, and its warnings are listed in the meta file.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import transformers
from tqdm import tqdm

import llama
from llama.cli import load_model, run_main
from llama.data.dataset import derangement, load_records, report_source
from llama.flags import BATCH_DTYPE_NOTE, HelpFormatter, add_model_arguments, positive_int
from llama.records import atomic_path


def write_json(path: Path, payload):
    """Replaced whole: a killed run leaves the previous complete file, never half of one."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False))


def read_clips(model, paths: list[Path], loaded: dict, failed: dict, warned: dict) -> dict:
    """The waveforms of `paths`, reusing those already `loaded`; unreadable ones go to `failed`, the
    warnings of silent, too short or cut-short ones to `warned` (those are still answered)."""
    clips = {}
    for path in paths:
        if path in loaded:
            clips[path] = loaded[path]
            continue
        try:
            clips[path], warnings = model.load_clip(path)
        except llama.AudioError as e:
            failed[path.name] = str(e)
            tqdm.write(f"skipped {path.name}: {e}", file=sys.stderr)
            continue
        if warnings:
            warned[path.name] = warnings
            tqdm.write(f"warning: {path.name}: {'; '.join(warnings)}", file=sys.stderr)
    return clips


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--data", default="../MusicQA/MusicQA/EvalMusicQA.json", help="EvalMusicQA JSON/JSONL")
    parser.add_argument("--audio_root", help="folder of the clips (default: the data file's folder)")
    parser.add_argument("--output", default="./results/mullama_data.json",
                        help="answers JSON, {audio_name: {question: answer}}; resumed if it exists")
    parser.add_argument("--batch_size", type=positive_int, default=16,
                        help="(clip, question) pairs decoded at once, with continuous batching"
                             + BATCH_DTYPE_NOTE)
    parser.add_argument("--queue_size", type=positive_int,
                        help="pairs read, encoded, queued and written at a time (default 8 x --batch_size)")
    parser.add_argument("--shuffle_audio", action="store_true", help="answer with another clip's audio (control)")
    parser.add_argument("--shuffle_seed", type=int, default=0, help="seed of --shuffle_audio's clip derangement")
    parser.add_argument("--limit", type=int, help="answer only the first N pairs")
    add_model_arguments(parser, max_gen_len=256, top_p=1.0)
    args = parser.parse_args(argv)

    records, problems = load_records(args.data, args.audio_root)
    report_source(args.data, None, len(records) + sum(problems.values()), len(records), problems)
    pairs = list(dict.fromkeys((r.audio, r.question) for r in records if r.audio is not None))[: args.limit]
    clips = sorted({audio for audio, _ in pairs})
    heard = {audio: audio for audio in clips}
    if args.shuffle_audio:
        heard = dict(zip(clips, [clips[j] for j in derangement(len(clips), args.shuffle_seed)], strict=True))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        answers = json.loads(output.read_text()) if output.exists() else {}
    except json.JSONDecodeError as e:
        raise SystemExit(f"{output} is not the JSON this script writes ({e}); move it away to start over") from e
    todo = [(a, q) for a, q in pairs if q not in answers.get(a.name, {})]
    # Pairs of one clip stay together, so each clip is read and encoded once.
    todo.sort(key=lambda pair: (heard[pair[0]].name, pair[1]))
    print(f"{len(pairs)} pairs, {len(pairs) - len(todo)} already answered in {output}", file=sys.stderr)

    model = load_model(args)
    settings = {key: getattr(args, key) for key in ("model", "llama_type", "llama_dir", "mert_path", "data",
                                                    "audio_root", "audio_mode", "max_gen_len", "temperature",
                                                    "top_p", "seed", "shuffle_audio", "shuffle_seed", "dtype",
                                                    "quantize")}
    settings["prompt_template"] = model.template
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__}
    failed: dict[str, str] = {}  # unreadable clip -> why
    warned: dict[str, list[str]] = {}  # silent, too short or cut-short clip -> warnings
    loaded: dict[Path, object] = {}
    answered_now, start = 0, time.perf_counter()
    progress = tqdm(total=len(todo), unit="pair", desc="answering")
    queue_size = args.queue_size or 8 * args.batch_size
    for i in range(0, len(todo), queue_size):
        part = todo[i:i + queue_size]
        loaded = read_clips(model, sorted({heard[a] for a, _ in part}), loaded, failed, warned)
        batch = [(a, q) for a, q in part if heard[a] in loaded]
        if batch:
            texts = model.answer([loaded[heard[a]] for a, _ in batch], [q for _, q in batch],
                                 max_new_tokens=args.max_gen_len, temperature=args.temperature, top_p=args.top_p,
                                 seed=args.seed, batch_size=args.batch_size,
                                 on_answer=lambda i, text: progress.update(1))
            for (audio, question), text in zip(batch, texts, strict=True):
                answers.setdefault(audio.name, {})[question] = text
            write_json(output, answers)
            answered_now += len(batch)
        progress.update(len(part) - len(batch))
    progress.close()
    counts = {"pairs": len(pairs), "answered": sum(len(v) for v in answers.values()),
              "answered_this_run": answered_now, "unreadable_clips": failed, "warned_clips": warned,
              "seconds_this_run": round(time.perf_counter() - start, 2)}
    write_json(output.with_name(output.name.removesuffix(".json") + ".meta.json"),
               {"settings": settings, "versions": versions, "counts": counts})
    print(f"{counts['answered']} of {len(pairs)} pairs answered in {output}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
