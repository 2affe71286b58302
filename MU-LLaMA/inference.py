"""Answer questions about music files with MU-LLaMA.

    python MU-LLaMA/inference.py --model ckpts/checkpoint.pth --llama_dir ckpts/LLaMA \
        --mert_path ckpts/MERT-v1-330M --audio_path song.mp3 --question "Describe the music"

With none of --model, --llama_dir and --mert_path, the demo model that ships in demo/ answers
(README, "The demo model"). Every --audio_path is asked every --question, all in one batched call.
"""

import argparse
import sys

import llama
from llama.cli import add_model_arguments, load_model, run_main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio_path", nargs="+", required=True, help="one or more audio files")
    parser.add_argument("--question", nargs="+", default=["Describe the Audio"], help="one or more questions")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    model = load_model(args)
    clips, failed = {}, {}
    for path in args.audio_path:  # a file that cannot be read is reported; the others are answered
        try:
            clips[path], warnings = model.load_clip(path)
        except llama.AudioError as e:
            failed[path] = str(e)
            continue
        for warning in warnings:
            print(f"inference.py: warning: {path}: {warning}", file=sys.stderr)
    pairs = [(path, q) for path in clips for q in args.question]
    answers = model.answer([clips[p] for p, _ in pairs], [q for _, q in pairs], max_new_tokens=args.max_gen_len,
                           temperature=args.temperature, top_p=args.top_p, seed=args.seed) if pairs else []
    for (path, question), answer in zip(pairs, answers, strict=True):
        print(f"Audio File: {path}\nQ: {question}\nA: {answer}\n")
    for why in failed.values():
        print(f"inference.py: error: not answered: {why}", file=sys.stderr)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
