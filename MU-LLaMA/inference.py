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
import re
import sys
from pathlib import Path

import soundfile

import llama
from llama.cli import (
    UsageError,
    add_model_arguments,
    add_mumu_arguments,
    load_model,
    load_mumu_model,
    run_main,
    wants_mumu,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    answers = model.answer([clips[p] for p, _ in pairs], [q for _, q in pairs], max_new_tokens=args.max_gen_len,
                           temperature=args.temperature, top_p=args.top_p, seed=args.seed) if pairs else []
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
    image = llama.load_image(args.image_file) if args.image_file else None  # a bad image is said before loading
    model = load_mumu_model(args)
    if model.decoder is not None and args.music_seconds and args.music_seconds > model.decoder.max_seconds:
        raise UsageError(f"--music_seconds {args.music_seconds:g}: this decoder writes at most "
                         f"{model.decoder.max_seconds:g} s; ask for less")
    request, seconds = read_inputs(args, model, image)
    replies = model.respond([llama.Request(p, request.audio, request.image, request.video) for p in prompts],
                            max_new_tokens=args.max_gen_len, temperature=args.temperature, top_p=args.top_p,
                            seed=args.seed)
    failed = 0
    for i, (prompt, reply) in enumerate(zip(prompts, replies, strict=True)):
        print(f"Q: {prompt}\nA: {reply.text}")
        if reply.conditioning is not None:
            failed += not write_music(args, model, reply, seconds, i, prompt)
        print()
    if failed:
        sys.exit(1)


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
    out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9]+", "-", prompt).strip("-")[:40] or "music"
    path = out / f"{index:03d}-{stem}.wav"
    n = 1
    while path.exists():  # never overwrite music an earlier run made
        path, n = out / f"{index:03d}-{stem}-{n}.wav", n + 1
    soundfile.write(path, wave, model.decoder.sample_rate)
    print(f"Music: {path} ({len(wave) / model.decoder.sample_rate:.1f} s, {model.decoder.sample_rate} Hz)")
    return True


if __name__ == "__main__":
    run_main(main)
