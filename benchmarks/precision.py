"""Speed and quality cost of bf16 weights and of int8 weight-only quantisation (--quantize int8) against
float32: on SmolLM2-135M-Instruct (text only) and on the demo MU-LLaMA (questions about clips).

    .venv/bin/python benchmarks/precision.py [--batch 1 8] [--new_tokens 32]

Per precision and model: decode tok/s at each batch (SmolLM2: --new_tokens tokens per prompt; demo:
its answers to 16 (clip, question) pairs, as many tokens as each answer has); greedy agreement (answers
identical to float32's); and, teacher-forced on float32's greedy answers, the share of answer
positions whose most likely token is float32's and the largest logit error relative to the spread
(standard deviation) of float32's logits. Seeded and greedy: the quality columns reproduce exactly.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from llama import Tokenizer, generate, load, load_llama
from llama.cli import DEMO_PATHS
from llama.data.synthetic import make_dataset
from llama.flags import HelpFormatter
from llama.precision import cpu_has_bf16_units, cpu_name, quantize_int8
from llama.prompt import format_prompt

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("float32", "bfloat16", "int8")
CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
PROMPTS = ["What is a saxophone?", "Describe the sound of a cello in one sentence.", "Hi!",
           "Name three instruments in a string quartet and say what each one plays.",
           "Write a short caption for a slow, sad piano piece in a minor key.", "Which is faster, 120 BPM or 90 BPM?",
           "Explain what a chord progression is to a ten year old.", "What genre uses distorted electric guitars?"]
QUESTIONS = ["Describe the audio", "What instrument is playing?", "Is the tempo slow or fast?",
             "Describe the music in detail"]


def median_seconds(fn, repeats=3):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tokens_per_second(llama, tok, prompts, batch, **options) -> float:
    """Generated tokens per second of `prompts` decoded `batch` at a time, median of 3 after a warm-up."""
    def run():
        return generate(llama, tok, prompts, batch_size=batch, **options)

    seconds = median_seconds(run)
    return sum(len(c.tokens) for c in run()) / seconds


def cast(precision: str, load_in):
    """The model in `precision`: int8 is float32 activations over int8 weights."""
    if precision == "int8":
        model = load_in(torch.float32)
        quantize_int8(model if hasattr(model, "layers") else model.model.llama)
        return model
    return load_in(getattr(torch, precision))


@torch.inference_mode()
def teacher_forced(llama, sequences, prompt_lens, adapters=None):
    """Logits [answer positions, vocab] per sequence (prompt + answer), each run alone."""
    out = []
    for i, (ids, n) in enumerate(zip(sequences, prompt_lens, strict=True)):
        rows = None if adapters is None else {k: v[i:i + 1] for k, v in adapters.items()}
        logits = llama(torch.tensor([ids]), adapters=rows)[0].float()
        out.append(logits[n - 1:len(ids) - 1])
    return out


def quality(reference, logits):
    """(top-1 agreement, mean over sequences of the largest |logit error| / std of reference logits)."""
    agree = sum(int((r.argmax(-1) == x.argmax(-1)).sum()) for r, x in zip(reference, logits, strict=True))
    positions = sum(len(r) for r in reference)
    errors = [float((x - r).abs().max() / r.std()) for r, x in zip(reference, logits, strict=True) if len(r)]
    return agree / positions, statistics.mean(errors)


def smollm2(folder: Path, batches, new_tokens):
    tok = Tokenizer(folder)
    prompts = [tok.encode(CHAT.format(p), bos=False) for p in PROMPTS]
    rows, reference, sequences = [], None, None
    for precision in PRECISIONS:
        model = cast(precision, lambda dtype: load_llama(folder, dtype=dtype))
        speeds = [tokens_per_second(model, tok, prompts[:b], b, max_new_tokens=new_tokens, stop_ids=[])
                  for b in batches]
        answers = [c.tokens for c in generate(model, tok, prompts, max_new_tokens=new_tokens)]
        sequences = sequences or [p + a for p, a in zip(prompts, answers, strict=True)]  # float32's
        logits = teacher_forced(model, sequences, [len(p) for p in prompts])
        reference = reference or (answers, logits)
        same = sum(a == r for a, r in zip(answers, reference[0], strict=True))
        rows.append((precision, speeds, f"{same}/{len(prompts)}", *quality(reference[1], logits)))
    return rows


def demo(batches):
    with tempfile.TemporaryDirectory() as tmp:
        make_dataset(tmp, clips=16, seconds=5.0, test_fraction=0.0, seed=3)
        clips_paths = sorted(Path(tmp, "audios").glob("*.wav"))
        rows, reference, sequences = [], None, None
        for precision in PRECISIONS:
            pipeline = cast(precision, lambda dtype: load(DEMO_PATHS["model"], DEMO_PATHS["llama_dir"],
                                                          DEMO_PATHS["mert_path"], dtype=dtype))
            clips = [pipeline.load_clip(p)[0] for p in clips_paths]
            questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(len(clips))]
            model, tok = pipeline.model, pipeline.tokenizer
            adapters = model.adapters({"music": pipeline.encode("music", clips)}, len(clips))
            prompts = [tok.encode(format_prompt(q, pipeline.template), bos=True) for q in questions]
            speeds = [tokens_per_second(model.llama, tok, prompts, b, max_new_tokens=64, adapters=adapters)
                      for b in batches]
            answers = [c.tokens for c in generate(model.llama, tok, prompts, max_new_tokens=64, adapters=adapters)]
            sequences = sequences or [p + a for p, a in zip(prompts, answers, strict=True)]  # float32's
            logits = teacher_forced(model.llama, sequences, [len(p) for p in prompts], adapters)
            reference = reference or (answers, logits)
            same = sum(a == r for a, r in zip(answers, reference[0], strict=True))
            rows.append((precision, speeds, f"{same}/{len(prompts)}", *quality(reference[1], logits)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "ckpts" / "SmolLM2-135M-Instruct",
                        help="the text-only LLaMA-architecture folder of the SmolLM2 rows")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8],
                        help="batch sizes to time decoding at, one column each (SmolLM2: the first N of 8 prompts; "
                             "demo: 16 pairs, N at a time)")
    parser.add_argument("--new_tokens", type=int, default=32,
                        help="tokens decoded per text prompt (the demo's answers take as many as they have)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, bf16 matrix units (AMX / AVX512-BF16): "
          f"{'yes' if cpu_has_bf16_units() else 'no'}; greedy")
    print(f"| model | precision | {' | '.join(f'tok/s batch {b}' for b in args.batch)} | answers as float32 | "
          "top-1 as float32 (teacher-forced) | max logit error / logit std |")
    print("|---|---|" + "---|" * len(args.batch) + "---|---|---|")
    for name, rows in (("SmolLM2-135M", smollm2(args.model, args.batch, args.new_tokens)),
                       ("demo MU-LLaMA", demo(args.batch))):
        base = rows[0][1]
        for precision, speeds, same, top1, error in rows:
            cells = " | ".join(f"{s:.1f} ({s / b:.2f}x)" for s, b in zip(speeds, base, strict=True))
            print(f"| {name} | {precision} | {cells} | {same} | {top1:.1%} | {error:.3f} |")


if __name__ == "__main__":
    main()
