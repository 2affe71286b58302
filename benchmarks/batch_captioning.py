"""Clips per hour of batch captioning with MU-LLaMA/batch_inference.py: one clip per call, static batches
and continuous batching.

Default: the demo model (or the model that inference.py's flags name), on this CPU in the dtype
`--dtype auto` picks, captioning --clips synthetic clips of --seconds s rendered by
MU-LLaMA/data/synthetic.py (or the first --clips audio files of --folder), each asked one question,
the questions of mixed kinds in turn (instrument, tempo, "Describe the music in detail", ...) so that
answer lengths vary, greedy, answers of at most --max_gen_len tokens. Times the whole pipeline of
batch_inference.py (read files, MERT, bridge, generation, JSONL) after a one-clip warm-up, for each
batch size in static batches (--queue_size = batch: each batch decodes until its longest answer
ends) and with continuous batching (the default queue of 8 x batch), and checks that every run gives
batch 1's answers.

    .venv/bin/python benchmarks/batch_captioning.py [--clips 64] [--seconds 10] [--batch_sizes 1 16] [--folder DIR]
    .venv/bin/python benchmarks/batch_captioning.py --shape 7b --device cuda        # on a GPU only

--shape 7b: random weights at the released shape, built on the GPU (LLaMA-2-7B with the finetune
LoRA and biases and the full-size bridge in bf16, a MERT-v1-330M-shaped encoder in fp32), 128
clips of 30 s, "Describe the audio", 64-token answers (random weights practically never stop early,
so static and continuous batching decode the same steps there), batch 1, 16 and 64.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from llama.captioning import SETTINGS, answer_pairs, find_pairs, read_records
from llama.cli import load_model
from llama.data.synthetic import make_dataset
from llama.flags import HelpFormatter, add_model_arguments
from llama.testing.benchmarking import LLAMA_2_7B, MERT_330M, describe_machine, random_mu_llama

MIXED = ["What instrument is playing?", "Describe the music in detail", "Is the tempo slow or fast?",
         "Describe the audio", "Is this in a major or a minor key?", "What do you hear in the audio?"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--shape", choices=["7b"], help="random weights at this shape instead of a model (GPU only)")
    parser.add_argument("--clips", type=int, help="clips to caption (default 64; 128 with --shape 7b)")
    parser.add_argument("--seconds", type=float, help="length of the synthetic clips (default 10; 30 with --shape 7b)")
    parser.add_argument("--folder", help="caption these audio files instead of synthetic clips")
    parser.add_argument("--batch_sizes", type=int, nargs="+", help="default 1 16; 1 16 64 with --shape 7b")
    parser.add_argument("--question", nargs="+", help="asked in turn, one per clip (default: mixed kinds; "
                        "'Describe the audio' with --shape 7b)")
    add_model_arguments(parser, max_gen_len=64, temperature=0.0, top_p=1.0)
    args = parser.parse_args()
    big = args.shape == "7b"
    if big and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        parser.error("--shape 7b allocates a 7B-shaped MU-LLaMA (~17 GB) and needs a CUDA GPU: run it with "
                     "--device cuda on a machine that has one")
    clips, seconds = args.clips or (128 if big else 64), args.seconds or (30.0 if big else 10.0)
    batch_sizes = args.batch_sizes or ([1, 16, 64] if big else [1, 16])
    questions = args.question or (["Describe the audio"] if big else MIXED)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.folder is None:
            make_dataset(tmp / "synthetic", clips=clips, seconds=seconds, test_fraction=0.0)
        folder = Path(args.folder) if args.folder else tmp / "synthetic" / "audios"
        audios = [a for a, _ in find_pairs([str(folder)], ["-"], None)][:clips]
        pairs = [(audio, questions[i % len(questions)]) for i, audio in enumerate(audios)]
        if big:
            dtype = torch.bfloat16 if args.dtype == "auto" else getattr(torch, args.dtype)
            model = random_mu_llama(LLAMA_2_7B, MERT_330M, args.device, dtype)
            what = (f"random LLaMA-2-7B-shaped MU-LLaMA ({dtype}), MERT-330M-shaped encoder (fp32), "
                    f"{torch.cuda.get_device_name()}")
        else:
            model = load_model(args)
            dtype = model.dtype
            what = f"{Path(args.model).parent.name}/{Path(args.model).name} ({dtype}), {describe_machine(dtype)}"
        settings = {key: getattr(args, key) for key in SETTINGS}
        answer_pairs(model, pairs[:1], tmp / "warmup.jsonl", 1, settings, desc="warm-up")
        runs = [(b, queue) for b in batch_sizes for queue in ([b] if b == 1 else [b, None])]
        rows, reference = [], None
        for batch_size, queue in runs:
            output = tmp / f"batch{batch_size}-{queue}.jsonl"
            start = time.perf_counter()
            counts = answer_pairs(model, pairs, output, batch_size, settings, desc=f"batch {batch_size}",
                                  queue_size=queue)
            elapsed = time.perf_counter() - start
            answers = {r["audio"]: r.get("answer") for r in read_records(output)}
            reference = reference or answers
            same = sum(answers[a] == reference[a] for a in reference)
            rows.append((batch_size, "static" if queue else "continuous", counts["answers"], elapsed,
                         counts["answers"] / elapsed * 3600, same))
        lengths = [len(model.tokenizer.encode(text, bos=False)) for text in reference.values()]
    print(f"\n{what}; {len(pairs)} clips ({'synthetic, ' + str(seconds) + ' s' if not args.folder else folder}), "
          f"one question each of {len(questions)} in turn, greedy, max_gen_len {args.max_gen_len}; answers of "
          f"{min(lengths)}-{max(lengths)} tokens (mean {sum(lengths) / len(lengths):.1f})\n")
    print(f"| batch | batching | clips | seconds | clips/hour | vs batch {batch_sizes[0]} | vs static | "
          f"answers as batch {batch_sizes[0]} |")
    print("|---|---|---|---|---|---|---|---|")
    static = {}
    for batch_size, kind, n, elapsed, rate, same in rows:
        static.setdefault(batch_size, rate)
        print(f"| {batch_size} | {kind} | {n} | {elapsed:.1f} | {rate:.0f} | {rate / rows[0][4]:.2f}x | "
              f"{rate / static[batch_size]:.2f}x | {same}/{len(pairs)} |")


if __name__ == "__main__":
    main()
