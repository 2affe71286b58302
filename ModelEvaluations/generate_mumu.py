"""Make music for every request of an evaluation set with MuMu-LLaMA, for evaluate_generation.py.

    python ModelEvaluations/generate_mumu.py --model ckpts/M2UGen-MusicGen-medium/checkpoint.pth \\
        --llama_dir ckpts/LLaMA --mert_path ckpts/MERT-v1-330M --vit_path ckpts/vit \\
        --music_decoder_path ckpts/musicgen-medium --data eval/requests.jsonl --output_dir results/mumu

Requests (JSONL, or a JSON list): {"id", "prompt", and optionally "audio_file", "image_file",
"video_file", "seconds", "reference"}, files relative to --input_root (default: the data file's
folder). Each request's music goes to OUTPUT_DIR/{id}.wav and a line to OUTPUT_DIR/generated.jsonl:
    {"id", "prompt", "output": "{id}.wav" (beside the JSONL), "seconds", "answer",
     "reference": absolute path (when the request names one)}
A request whose input cannot be read, whose reply holds no [AUD0] .. [AUD7] or whose music fails gets
"error" (why) in place of "output", and the run goes on. Lines are appended after every queue of
8 x --batch_size requests (answered in one `respond` call that decodes --batch_size at once, with
continuous batching), so a killed run resumes where it stopped:
ids already in generated.jsonl are skipped, errors included (delete a line to retry it).
OUTPUT_DIR/generated.meta.json records the model, decoding and music settings, versions and counts.

Decoding is greedy unless --temperature > 0. Music is as long as the request's "seconds", else
--music_seconds, else 10 s; its decoder is driven as inference.py drives it (--music_conditioning,
--music_temperature), seeded by --seed, the same seed for every request. --shuffle_requests (a
control) answers each request's inputs with another request's prompt, by a seeded derangement:
"prompt" is then the prompt used and "prompt_from" the id it came from.
"""

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import soundfile
import torch
import transformers
from tqdm import tqdm

import llama
from llama.cli import UsageError, load_mumu_model, run_main
from llama.data.dataset import derangement, read_json_records
from llama.flags import BATCH_DTYPE_NOTE, HelpFormatter, add_model_arguments, add_mumu_arguments, positive_int
from llama.records import append_records, atomic_path, lock_output, read_jsonl

DEFAULT_SECONDS = 10.0
INPUTS = {"audio_file": ("music", "--mert_path"), "image_file": ("image", "--vit_path"),
          "video_file": ("video", "--vivit_path")}
# Settings a resumed run must share with the run that began the output: mixing them would mix two experiments.
PINNED = ("model", "data", "shuffle_requests", "shuffle_seed")
SETTINGS = ("model", "llama_type", "llama_dir", "mert_path", "vit_path", "vivit_path", "music_decoder",
            "music_decoder_path", "data", "input_root", "max_gen_len", "temperature", "top_p", "seed", "dtype",
            "stop_rules", "audio_mode", "video_start", "music_seconds", "music_conditioning", "music_temperature",
            "batch_size", "shuffle_requests", "shuffle_seed")


@dataclass
class Item:
    id: str
    prompt: str
    files: dict  # {"audio_file" | "image_file" | "video_file": Path}
    seconds: float | None
    reference: Path | None
    prompt_from: str | None = None  # with --shuffle_requests: whose prompt this is


def read_requests(path: Path, root: Path) -> list[Item]:
    try:
        raw = read_json_records(path)
    except (ValueError, OSError) as e:
        raise UsageError(str(e)) from None
    items, seen = [], set()
    for i, r in enumerate(raw):
        where = f"{path}, request {i}"
        if not (isinstance(r, dict) and isinstance(r.get("id"), str | int) and isinstance(r.get("prompt"), str)):
            raise UsageError(f"{where}: expected {{'id', 'prompt', 'audio_file'?, 'image_file'?, 'video_file'?, "
                             f"'seconds'?, 'reference'?}}, got {str(r)[:200]}")
        rid = str(r["id"])
        # the id names the WAV file: it must be one plain, new file name
        if not rid or rid.startswith(".") or "/" in rid or "\\" in rid or rid in seen:
            raise UsageError(f"{where}: id {rid!r} is empty, repeated, or not a plain file name")
        seen.add(rid)
        if not r["prompt"].strip():
            raise UsageError(f"{where}: empty prompt")
        seconds = r.get("seconds")
        if seconds is not None and not (isinstance(seconds, int | float) and seconds > 0):
            raise UsageError(f"{where}: seconds must be a positive number, got {seconds!r}")
        files = {key: root / r[key] for key in INPUTS if r.get(key)}
        reference = (root / r["reference"]).resolve() if r.get("reference") else None
        items.append(Item(rid, r["prompt"], files, seconds, reference))
    if not items:
        raise UsageError(f"{path} holds no requests")
    return items


def shuffle_prompts(items: list[Item], seed: int) -> None:
    """Each request keeps its inputs and reference and takes another request's prompt."""
    if len(items) < 2:
        raise UsageError(f"--shuffle_requests needs at least 2 requests, got {len(items)}")
    prompts = [(it.prompt, it.id) for it in items]
    for item, j in zip(items, derangement(len(items), seed), strict=True):
        item.prompt, item.prompt_from = prompts[j]


def flag_values(args) -> dict:
    values = {key: getattr(args, key) for key in SETTINGS}
    return {key: str(value) if isinstance(value, Path) else value for key, value in values.items()}


def check_resume(before: dict | None, flags: dict, out: Path) -> None:
    """A resumed run must be given the PINNED flags the first run was given."""
    if before is None:
        return
    changed = [key for key in PINNED if before["flags"].get(key) != flags[key]]
    if changed:
        was = ", ".join(f"{key}={before['flags'].get(key)!r}" for key in changed)
        raise UsageError(f"{out} holds a run with other {', '.join(changed)} ({was}): give another --output_dir")


def read_inputs(model, item: Item, args) -> llama.Request:
    """The request's inputs, read at the encoders' rates and sizes (raises AudioError, MediaError)."""
    files = item.files
    audio = model.read("music", files["audio_file"]) if "audio_file" in files else None
    image = model.read("image", files["image_file"]) if "image_file" in files else None
    video = None
    if "video_file" in files:
        start = int(args.video_start) if args.video_start.lstrip("-").isdigit() else args.video_start
        video = model.read("video", files["video_file"], start=start, seed=args.seed)
    return llama.Request(item.prompt, audio, image, video)


def seconds_of(item: Item, args) -> float:
    return float(item.seconds or args.music_seconds or DEFAULT_SECONDS)


def record_of(item: Item, args, **fields) -> dict:
    """A generated.jsonl line: id, prompt, `fields` (output and answer, or error), seconds, reference."""
    record = {"id": item.id, "prompt": item.prompt, **fields, "seconds": seconds_of(item, args)}
    if item.prompt_from is not None:
        record["prompt_from"] = item.prompt_from
    if item.reference is not None:
        record["reference"] = str(item.reference)
    return record


def make_music(model, item: Item, reply: llama.Reply, args, out: Path) -> dict:
    """The request's record: its music written to OUTPUT_DIR/{id}.wav, or why there is none."""
    if reply.conditioning is None:  # the answer asked for no music, or its [AUD] set came incomplete
        tqdm.write(f"no music for {item.id}: {reply.music_note}", file=sys.stderr)
        return record_of(item, args, error=reply.music_note, answer=reply.text)
    extra = {"note": reply.music_note} if reply.music_note else {}  # a completed [AUD] set
    try:
        wave = model.music(reply, seconds_of(item, args), conditioning=args.music_conditioning,
                           temperature=args.music_temperature, seed=args.seed)
    except ValueError as e:  # a length the decoder cannot make
        tqdm.write(f"no music for {item.id}: {e}", file=sys.stderr)
        return record_of(item, args, error=str(e), answer=reply.text)
    with atomic_path(out / f"{item.id}.wav") as tmp:  # a killed run leaves no half-written WAV
        soundfile.write(tmp, wave, model.decoder.sample_rate)
    return record_of(item, args, output=f"{item.id}.wav", answer=reply.text, **extra)


def answer_batch(model, batch: list[Item], args, out: Path) -> list[dict]:
    """The records of a queue of requests, in request order: all readable ones are answered in one call."""
    requests, records = {}, {}
    for item in batch:
        try:
            requests[item.id] = read_inputs(model, item, args)
        except (llama.AudioError, llama.MediaError) as e:
            tqdm.write(f"skipped {item.id}: {e}", file=sys.stderr)
            records[item.id] = record_of(item, args, error=f"input: {e}")
    asked = [item for item in batch if item.id in requests]
    replies = model.respond([requests[item.id] for item in asked], max_new_tokens=args.max_gen_len,
                            temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                            batch_size=args.batch_size, complete_audio=args.complete_audio_tokens) if asked else []
    for item, reply in zip(asked, replies, strict=True):
        records[item.id] = make_music(model, item, reply, args, out)
    return [records[item.id] for item in batch]


def write_meta(path: Path, settings: dict, flags: dict, counts: dict | None = None) -> None:
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"settings": settings, "flags": flags, "versions": versions, "counts": counts},
                                  indent=1))


def load_checked(args, items: list[Item]):
    """The model, after checking that it can make music and read every kind of input the requests give."""
    model = load_mumu_model(args)
    if model.decoder is None:
        raise UsageError("no music decoder: pass --music_decoder_path (a MusicGen or AudioLDM2 folder)")
    if args.music_seconds and args.music_seconds > model.decoder.max_seconds:
        raise UsageError(f"--music_seconds {args.music_seconds:g}: this decoder writes at most "
                         f"{model.decoder.max_seconds:g} s; ask for less")
    for key, (modality, flag) in INPUTS.items():
        if any(key in it.files for it in items) and not model.takes(modality):
            raise UsageError(f"requests with {key} need their encoder: pass {flag}")
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="requests: JSONL or a JSON list")
    parser.add_argument("--input_root", type=Path, help="folder the requests' files are relative to "
                        "(default: the data file's folder)")
    parser.add_argument("--batch_size", type=positive_int, default=8,
                        help="requests decoded at once, with continuous batching (8 x as many are queued)"
                             + BATCH_DTYPE_NOTE)
    parser.add_argument("--shuffle_requests", action="store_true",
                        help="control: answer each request's inputs with another request's prompt")
    parser.add_argument("--shuffle_seed", type=int, default=0, help="seed of --shuffle_requests' derangement")
    add_model_arguments(parser, max_gen_len=256, top_p=1.0)
    add_mumu_arguments(parser)
    args = parser.parse_args(argv)
    single = [f"--{key}" for key in ("prompt", "audio_file", "image_file", "video_file") if getattr(args, key)]
    if single:
        raise UsageError(f"{', '.join(single)}: for inference.py; here each request of --data names its own inputs")

    items = read_requests(args.data, args.input_root or args.data.parent)
    if args.shuffle_requests:
        shuffle_prompts(items, args.shuffle_seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    output, meta = out / "generated.jsonl", out / "generated.meta.json"
    flags = flag_values(args)  # as given: loading fills in default paths
    with lock_output(output):
        before = json.loads(meta.read_text()) if meta.exists() else None
        check_resume(before, flags, out)
        if before is None:  # what a resumed run is checked against, should this one be killed
            write_meta(meta, flags, flags)
        done = {str(r["id"]) for _, r in read_jsonl(output, repair=True) if isinstance(r, dict) and "id" in r}
        todo = [it for it in items if it.id not in done]
        print(f"{len(items)} requests, {len(items) - len(todo)} already in {output}", file=sys.stderr)
        made_now, start = 0, time.perf_counter()
        if todo:
            model = load_checked(args, todo)
            progress = tqdm(total=len(todo), unit="request", desc="generating")
            with open(output, "a") as handle:
                queue = 8 * args.batch_size  # requests read and queued at a time; decoded --batch_size at once
                for i in range(0, len(todo), queue):
                    records = answer_batch(model, todo[i:i + queue], args, out)
                    append_records(handle, records)
                    made_now += sum("output" in r for r in records)
                    progress.update(len(records))
            progress.close()
        records = [r for _, r in read_jsonl(output) if isinstance(r, dict)]
        counts = {"requests": len(items), "recorded": len(records), "music": sum("output" in r for r in records),
                  "errors": sum("error" in r for r in records), "requests_this_run": len(todo),
                  "music_this_run": made_now, "seconds_this_run": round(time.perf_counter() - start, 2)}
        # the settings a model was loaded with (default paths filled in); a run that loaded none keeps the last
        write_meta(meta, flag_values(args) if todo or before is None else before["settings"], flags, counts)
    print(f"{counts['music']} of {len(items)} requests have music in {out} ({counts['errors']} errors)",
          file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
