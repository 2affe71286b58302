"""Clips per hour of MusicQA question-answer synthesis with SmolLM2-135M-Instruct on this machine,
one clip per batch against 8 (llama/musicqa/annotate.py, item prompting: 14 requests per clip).

    .venv/bin/python benchmarks/musicqa_speed.py [--clips 8] [--max_new_tokens 48] [--batch_sizes 1 8]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from llama.assets import prepare_smollm2
from llama.flags import HelpFormatter
from llama.musicqa.annotate import ChatLLM, annotate
from llama.musicqa.sources import Clip

DESCRIPTIONS = [
    ("caption", "A live rock recording with distorted electric guitars, a driving beat and a shouting voice."),
    ("tags", "classical, piano, slow, calm, soft, solo"),
    ("caption", "An upbeat electronic dance track with a steady kick, synth pads and a vocal sample."),
    ("tags", "jazz, saxophone, double bass, brushed drums, relaxed, night"),
    ("caption", "A folk song with acoustic guitar strumming, a harmonica and a gentle male voice."),
    ("tags", "ambient, synthesizer, atmospheric, dreamy, slow, instrumental"),
    ("caption", "An orchestral film score with soaring strings, brass swells and timpani rolls."),
    ("tags", "hip hop, rap, beat, bass, urban, energetic"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--clips", type=int, default=8, help="clips annotated per batch size (made-up descriptions)")
    parser.add_argument("--max_new_tokens", type=int, default=48, help="most tokens the LLM writes per request")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8],
                        help="clips per batch to time, one row each (the first is the speed-up baseline)")
    args = parser.parse_args()
    llm = ChatLLM(str(prepare_smollm2()), max_new_tokens=args.max_new_tokens)
    clips = [Clip(f"clip{i}", Path("unused.wav"), *reversed(DESCRIPTIONS[i % len(DESCRIPTIONS)]))
             for i in range(args.clips)]
    print(f"SmolLM2-135M-Instruct, fp32, {torch.get_num_threads()} threads, {args.clips} clips, "
          f"max_new_tokens {args.max_new_tokens}, item prompting, 2 retries\n")
    print("| batch (clips) | seconds | clips/hour | ok clips | speed-up |\n|---|---|---|---|---|")
    base = None
    for batch_size in args.batch_sizes:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            counts = annotate(clips, llm, Path(tmp) / "out.jsonl", batch_size=batch_size, retries=2,
                              prompting="item")
            seconds = time.perf_counter() - start
            lines = [json.loads(line) for line in (Path(tmp) / "out.jsonl").read_text().splitlines()]
        rate = len(lines) / seconds * 3600
        base = base or rate
        print(f"| {batch_size} | {seconds:.1f} | {rate:.0f} | {counts['ok']}/{len(lines)} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
