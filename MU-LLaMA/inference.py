"""Answer questions about music files with MU-LLaMA; with a MuMu-LLaMA (M2UGen) checkpoint, also
about images and video, and generate music.

    python MU-LLaMA/inference.py --model ckpts/checkpoint.pth --llama_dir ckpts/LLaMA \\
        --mert_path ckpts/MERT-v1-330M --audio_path song.mp3 --question "Describe the music"

    python MU-LLaMA/inference.py --model ckpts/M2UGen-MusicGen-medium/checkpoint.pth --llama_dir ckpts/LLaMA \\
        --mert_path ckpts/MERT-v1-330M --vit_path ckpts/vit --vivit_path ckpts/vivit \\
        --music_decoder_path ckpts/musicgen-medium --image_file photo.jpg --prompt "Generate a music for this image"

With none of --model, --llama_dir and --mert_path, the demo model that ships in demo/ answers
(docs/demo-models.md). MU-LLaMA: every --audio_path is asked every --question, all in one
batched call. MuMu-LLaMA: every --prompt is asked with the given --audio_file, --image_file and
--video_file together, in one batched call; music is written to --output_dir as each is made.
"""

import argparse
import os
import re
import sys
from pathlib import Path

import soundfile

import llama
from llama.cli import UsageError, load_model, load_mumu_model, run_main, wants_mumu
from llama.flags import HelpFormatter, add_model_arguments, add_mumu_arguments
from llama.records import atomic_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--audio_path", nargs="+", help="one or more audio files (MU-LLaMA)")
    parser.add_argument("--question", nargs="+", help="one or more questions (default 'Describe the Audio')")
    add_model_arguments(parser)
    add_mumu_arguments(parser)
    args = parser.parse_args(argv)
    if wants_mumu(args):
        return answer_mumu(args)
    if not args.audio_path:
        parser.error("--audio_path is required (MU-LLaMA answers questions about audio files)")
    model = load_model(args)
    questions = args.question or ["Describe the Audio"]
    clips, failed = {}, {}
    for path in args.audio_path:  # a file that cannot be read is reported; the others are answered
        try:
            clips[path], warnings = model.load_clip(path)
        except llama.AudioError as e:
            failed[path] = str(e)
            continue
        for warning in warnings:
            print(f"inference.py: warning: {path}: {warning}", file=sys.stderr)
    pairs = [(path, q) for path in clips for q in questions]
    try:
        answers = model.answer([clips[p] for p, _ in pairs], [q for _, q in pairs], max_new_tokens=args.max_gen_len,
                               temperature=args.temperature, top_p=args.top_p, seed=args.seed) if pairs else []
    except ValueError as e:  # e.g. a question too long for the model's context
        raise UsageError(str(e)) from None
    for (path, question), answer in zip(pairs, answers, strict=True):
        print(f"Audio File: {path}\nQ: {question}\nA: {answer}\n")
    for why in failed.values():
        print(f"inference.py: error: not answered: {why}", file=sys.stderr)
    if failed:
        sys.exit(1)


def answer_mumu(args):
    """The M2UGen run: prompts with their inputs -> answers, and a WAV file per reply that asks for music."""
    if args.audio_path and not args.audio_file:  # MU-LLaMA's flags name the same thing
        if len(args.audio_path) > 1:
            raise UsageError("a MuMu-LLaMA request takes one --audio_file (or one --audio_path)")
        args.audio_file = args.audio_path[0]
    prompts = args.prompt or args.question or ["Generate a music"]
    if any(not p.strip() for p in prompts):
        raise UsageError("empty prompt: say what you want (a question, or e.g. --prompt 'Generate a music')")
    check_output_dir(Path(args.output_dir))  # said before the model loads, not after it has answered
    image = llama.load_image(args.image_file) if args.image_file else None  # a bad image is said before loading
    model = load_mumu_model(args)
    if model.decoder is not None and args.music_seconds and args.music_seconds > model.decoder.max_seconds:
        raise UsageError(f"--music_seconds {args.music_seconds:g}: this decoder writes at most "
                         f"{model.decoder.max_seconds:g} s; ask for less")
    request, seconds = read_inputs(args, model, image)
    try:
        replies = model.respond([llama.Request(p, request.audio, request.image, request.video) for p in prompts],
                                max_new_tokens=args.max_gen_len, temperature=args.temperature, top_p=args.top_p,
                                seed=args.seed, complete_audio=args.complete_audio_tokens)
    except ValueError as e:  # e.g. a prompt too long for the model's context
        raise UsageError(str(e)) from None
    failed = written = 0
    for i, (prompt, reply) in enumerate(zip(prompts, replies, strict=True)):
        print(f"Q: {prompt}\nA: {reply.text}")
        if reply.music_note:
            print(f"inference.py: {reply.music_note}", file=sys.stderr)
        try:
            if reply.conditioning is not None:
                ok = write_music(args, model, reply, seconds, i, prompt)
                failed, written = failed + (not ok), written + ok
        except KeyboardInterrupt:  # the answers already made are kept: print the rest, without their music
            for prompt, reply in list(zip(prompts, replies, strict=True))[i + 1:]:
                print(f"\nQ: {prompt}\nA: {reply.text}")
            raise KeyboardInterrupt(f"{written} music files written before the interruption; the file being "
                                    "written was not kept") from None
        print()
    if failed:
        sys.exit(1)


def check_output_dir(out: Path) -> None:
    """--output_dir must be a folder this process can write into (made if missing)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output_dir {out} is a file, not a folder: give a folder for the music")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--output_dir {out} cannot be made: {e.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--output_dir {out} is not writable by this user: give another folder")


def read_inputs(args, model, image) -> tuple:
    """The request's inputs, read once, and the music length: --music_seconds, else the input clip's or
    video's length rounded to whole seconds (as M2UGen), else 30 s."""
    audio = video = None
    seconds = 30.0
    if args.audio_file:
        audio = model.read("music", args.audio_file)
        seconds = float(max(round(len(audio) / model.sample_rate), 1))
    if args.video_file:
        start = int(args.video_start) if args.video_start.lstrip("-").isdigit() else args.video_start
        video = model.read("video", args.video_file, start=start, seed=args.seed)
        seconds = float(max(round(llama.video_seconds(args.video_file)), 1))
    if args.music_seconds:
        seconds = args.music_seconds
    return llama.Request("", audio, image, video), seconds


def write_music(args, model, reply, seconds: float, index: int, prompt: str) -> bool:
    """Generate and write one reply's music; a failure is reported and the other replies go on."""
    if model.decoder is None:
        print("inference.py: note: the answer asks for music; pass --music_decoder_path to generate it",
              file=sys.stderr)
        return True
    if not args.music_seconds:  # an input longer than the decoder can write is cut to its limit
        seconds = min(seconds, model.decoder.max_seconds)
    try:
        wave = model.music(reply, seconds, conditioning=args.music_conditioning,
                           temperature=args.music_temperature, seed=args.seed)
    except ValueError as e:
        print(f"inference.py: error: no music for {prompt!r}: {e}", file=sys.stderr)
        return False
    out = Path(args.output_dir)
    stem = re.sub(r"[^A-Za-z0-9]+", "-", prompt).strip("-")[:40] or "music"
    path = out / f"{index:03d}-{stem}.wav"
    n = 1
    while path.exists():  # never overwrite music an earlier run made
        path, n = out / f"{index:03d}-{stem}-{n}.wav", n + 1
    try:
        with atomic_path(path) as tmp:  # a kill or a full disk leaves no partial file under the final name
            soundfile.write(tmp, wave, model.decoder.sample_rate)
    except (OSError, soundfile.LibsndfileError) as e:
        print(f"inference.py: error: cannot write {path}: {e}", file=sys.stderr)
        return False
    print(f"Music: {path} ({len(wave) / model.decoder.sample_rate:.1f} s, {model.decoder.sample_rate} Hz)")
    return True


if __name__ == "__main__":
    run_main(main)
