"""Decoding throughput: llama.generate against transformers' generate, continuous against static
batching, and the LLaMA-2-7B shape on a GPU. Every table is seeded and greedy: re-running it gives the
same tokens (the times vary by a few percent).

    .venv/bin/python benchmarks/generation.py                          # ours vs transformers, batch 1 8 32, fp32
    .venv/bin/python benchmarks/generation.py --dtype bfloat16         # the same, both in bf16
    .venv/bin/python benchmarks/generation.py --lengths                # continuous vs static batching
    .venv/bin/python benchmarks/generation.py --shape 7b --device cuda # 7B decode tok/s vs the bandwidth floor

Default model: SmolLM2-135M-Instruct (converted by the installer; a real LLaMA-architecture model, so
greedy tokens are meaningful), on CPU. --lengths decodes 64 requests whose answer lengths are drawn
from a distribution (a stop rule ends each at its length), once in static batches (each decodes until
its longest answer ends) and once with continuous batching, same rows, same tokens. --shape 7b (also
--random 7b) builds a 7B-shaped model with random weights on the device instead.
Last line: `ratio_vs_transformers batch1=<x> ...` or `continuous_vs_static <name>=<x> ...`.
"""

import argparse
import random
import statistics
import time
from pathlib import Path

import torch

from llama import Tokenizer, generate, load_llama
from llama.flags import HelpFormatter
from llama.testing.benchmarking import describe_machine, random_7b, timed

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    "What is a saxophone?",
    "Describe the sound of a cello in one sentence.",
    "Name three instruments in a string quartet and say what each one plays.",
    "Hi!",
    "Write a short caption for a slow, sad piano piece in a minor key.",
    "Which is faster, 120 BPM or 90 BPM?",
    "Explain what a chord progression is to a ten year old who has never played music before.",
    "What genre uses a lot of distorted electric guitars?",
]
CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
# answer lengths in tokens: name -> (description, draw(rng))
LENGTHS = {
    "uniform-16-64": ("uniform in 16..64 (4x)", lambda rng: rng.randint(16, 64)),
    "short-long": ("80% 16, 20% 128 (8x; short answers, a few long captions)",
                   lambda rng: 128 if rng.random() < 0.2 else 16),
    "constant-40": ("all 40 (control: nothing to gain)", lambda rng: 40),
}


def alternated(first, second, repeats):
    """(median seconds, output) of each function, run in turn: on a shared machine whose speed drifts,
    both see the same conditions."""
    times, outputs = ([], []), [None, None]
    with torch.inference_mode():
        first(), second()  # warm-up
        for _ in range(repeats):
            for i, fn in enumerate((first, second)):
                start = time.perf_counter()
                outputs[i] = fn()
                times[i].append(time.perf_counter() - start)
    return [(statistics.median(t), out) for t, out in zip(times, outputs, strict=True)]


def hf_generate(hf, prompts, new_tokens, pad_id):
    longest = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (longest - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts])
    out = hf.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                      pad_token_id=pad_id, eos_token_id=None)
    return out[:, longest:].tolist()


def compare_with_transformers(folder: Path, batches, new_tokens, repeats, dtype):
    from transformers import LlamaForCausalLM

    model = load_llama(folder, dtype=dtype)
    tok = Tokenizer(folder)
    hf = LlamaForCausalLM.from_pretrained(folder, dtype=dtype).eval()
    hf.generation_config.eos_token_id = None  # both generate exactly `new_tokens` tokens
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"model {folder.name}: {params:.0f}M parameters, {describe_machine(dtype)}, {new_tokens} new tokens, "
          f"median of {repeats} runs, ours and transformers in turn")
    print("| batch | ours tok/s | transformers tok/s | ratio | same greedy tokens |")
    print("|---|---|---|---|---|")
    ratios = {}
    for batch in batches:
        prompts = [tok.encode(CHAT.format(PROMPTS[i % len(PROMPTS)]), bos=False) for i in range(batch)]
        (ours_s, ours), (hf_s, theirs) = alternated(
            lambda p=prompts: generate(model, tok, p, max_new_tokens=new_tokens, stop_ids=[]),
            lambda p=prompts: hf_generate(hf, p, new_tokens, tok.eos_id), repeats)
        same = sum(o.tokens == t for o, t in zip(ours, theirs, strict=True))
        tokens = batch * new_tokens
        ratios[batch] = hf_s / ours_s
        print(f"| {batch} | {tokens / ours_s:.1f} | {tokens / hf_s:.1f} | {ratios[batch]:.2f} | {same}/{batch} |")
    print("ratio_vs_transformers " + " ".join(f"batch{b}={r:.2f}" for b, r in ratios.items()))


def continuous_vs_static(folder: Path, batch: int, requests: int, dtype, seed: int = 0):
    """Tokens/s of static and continuous batching over the same requests, each answer stopped at a
    length drawn from a LENGTHS distribution; the two must give the same tokens."""
    model = load_llama(folder, dtype=dtype)
    tok = Tokenizer(folder)
    # distinct prompts (numbered), so the stop rule can find each request's length from its prompt
    prompts = [tok.encode(CHAT.format(f"{PROMPTS[i % len(PROMPTS)]} ({i})"), bos=False) for i in range(requests)]
    print(f"model {folder.name}, {describe_machine(dtype)}; {requests} requests, {batch} rows, greedy")
    print("| answer lengths | tokens | static s | static tok/s | continuous s | continuous tok/s | ratio | same |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = {}
    generate(model, tok, prompts[:batch], max_new_tokens=4)  # warm-up
    for name, (what, draw) in LENGTHS.items():
        rng = random.Random(seed)
        target = {tuple(p): draw(rng) for p in prompts}
        (static_s, a), (continuous_s, b) = static_and_continuous(model, tok, prompts, batch, target)
        tokens = sum(len(c.tokens) for c in b)
        same = sum(x.tokens == y.tokens for x, y in zip(a, b, strict=True))
        ratios[name] = static_s / continuous_s
        print(f"| {what} | {tokens} | {static_s:.1f} | {tokens / static_s:.1f} | {continuous_s:.1f} | "
              f"{tokens / continuous_s:.1f} | {ratios[name]:.2f} | {same}/{requests} |")
    print("continuous_vs_static " + " ".join(f"{n}={r:.2f}" for n, r in ratios.items()))


def static_and_continuous(model, tok, prompts, batch, target):
    """(seconds, completions) of static batches of `batch` prompts, then of continuous batching over
    `batch` rows; `target` maps each prompt to the number of tokens after which it stops."""
    sizes = sorted({len(p) for p in prompts})

    def stop(ids):
        return any(len(ids) - n >= target.get(tuple(ids[:n]), 10**9) for n in sizes)

    longest = max(target.values())

    def static():
        out = []
        for i in range(0, len(prompts), batch):
            out += generate(model, tok, prompts[i:i + batch], max_new_tokens=longest, stop_ids=[], stop=stop)
        return out

    return timed(static, 1, warmup=False), timed(lambda: generate(
        model, tok, prompts, max_new_tokens=longest, stop_ids=[], stop=stop, batch_size=batch), 1, warmup=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "ckpts" / "SmolLM2-135M-Instruct",
                        help="HF-format LLaMA-architecture folder (and tokenizer), run on CPU")
    parser.add_argument("--shape", "--random", dest="shape", choices=["7b"],
                        help="random weights of this shape instead of --model")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda or cuda:N, for --shape (--model runs on CPU); cuda also makes bf16 the "
                             "default --dtype")
    parser.add_argument("--dtype", help="default: float32 on CPU, bfloat16 on GPU")
    parser.add_argument("--batch", type=int, nargs="+", help="default 1 8 32; 1 8 32 64 with --shape 7b")
    parser.add_argument("--new_tokens", type=int, default=64,
                        help="tokens decoded per request (not with --lengths: each stops at its drawn length)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row, after a warm-up; the median is "
                        "reported (not with --lengths: one run)")
    parser.add_argument("--lengths", action="store_true", help="continuous vs static batching (at --batch, default 8)")
    parser.add_argument("--requests", type=int, default=64, help="requests of --lengths")
    args = parser.parse_args()
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))
    if args.shape:
        random_7b(args.device, dtype, args.batch or [1, 8, 32, 64], args.new_tokens, args.repeats)
    elif args.lengths:
        continuous_vs_static(args.model, (args.batch or [8])[0], args.requests, dtype)
    else:
        compare_with_transformers(args.model, args.batch or [1, 8, 32], args.new_tokens, args.repeats, dtype)


if __name__ == "__main__":
    main()
