"""Decoding throughput against the memory floor and against transformers' generate, eager and compiled;
continuous against static batching; the LLaMA-2-7B shape on a GPU. Every table is seeded and greedy:
re-running it gives the same tokens (the times vary by a few percent).

    .venv/bin/python benchmarks/generation.py                          # float32 and bf16, eager and compiled
    .venv/bin/python benchmarks/generation.py --dtype bfloat16         # one precision
    .venv/bin/python benchmarks/generation.py --lengths                # continuous vs static batching
    .venv/bin/python benchmarks/generation.py --shape 7b --device cuda # 7B decode tok/s vs the bandwidth floor

Default model: SmolLM2-135M-Instruct (converted by the installer; a real LLaMA-architecture model, so
greedy tokens are meaningful), on CPU. The default run first times one 256-token answer from a fresh model,
eager and compiled (the compile, cold, included: `--compile` pays back when the compiled answer is the
shorter), then per precision, for eager and compiled decoding at each batch: tok/s, ms per step, the step's
matrix products alone, the floor (weight bytes / the read bandwidth measured here, a sum over 1 GiB) and
the share of it reached; then transformers' generate at the same precision and batch, with its tokens
compared. --lengths decodes 64 requests whose answer lengths are drawn
from a distribution (a stop rule ends each at its length), once in static batches (each decodes until
its longest answer ends) and once with continuous batching, same rows, same tokens. --shape 7b (also
--random 7b) builds a 7B-shaped model with random weights on the device instead.
Last line: `decode <key>=<value> ...` or `continuous_vs_static <name>=<x> ...`.
"""

import argparse
import os
import random
import tempfile
from pathlib import Path

import torch

from llama import Tokenizer, generate, load_llama
from llama.compiled import compile_decoding
from llama.flags import HelpFormatter
from llama.precision import auto_dtype, cpu_name
from llama.testing.benchmarking import (
    DECODE_HEADER,
    decode_rows,
    decode_run,
    describe_machine,
    random_7b,
    read_bandwidth,
    timed,
    weight_bytes,
)

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


def hf_generate(hf, prompts, new_tokens, pad_id):
    longest = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (longest - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts])
    out = hf.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                      pad_token_id=pad_id, eos_token_id=None)
    return out[:, longest:].tolist()


def first_answer(folder: Path, dtype, new_tokens: int) -> dict[str, float]:
    """Wall seconds of one answer of `new_tokens` tokens from a freshly loaded model, eager and compiled (its
    compile included): what a user of --compile waits for the first answer."""
    seconds = {}
    prompt = [Tokenizer(folder).encode(CHAT.format(PROMPTS[1]), bos=False)]
    for label in ("eager", "compiled"):
        model = load_llama(folder, dtype=dtype)
        if label == "compiled":
            compile_decoding(model)
        seconds[label] = decode_run(model, Tokenizer(folder), prompt, new_tokens)[0]
    print(f"one {new_tokens}-token answer from a fresh model, {describe_machine(dtype)}: eager "
          f"{seconds['eager']:.1f} s, compiled {seconds['compiled']:.1f} s (compile included)")
    return seconds


def decode_floor(folder: Path, batches, new_tokens, repeats, dtypes) -> dict[str, float]:
    """Per precision: eager and compiled decoding against the floor, then transformers' generate."""
    from transformers import LlamaForCausalLM

    bandwidth = read_bandwidth("cpu")
    tok = Tokenizer(folder)
    print(f"model {folder.name}; {cpu_name()}, {torch.get_num_threads()} threads; read bandwidth "
          f"{bandwidth / 1e9:.1f} GB/s (a sum over 1 GiB); {new_tokens} new tokens, median of {repeats} runs")

    def prompts_of(batch):
        return [tok.encode(CHAT.format(PROMPTS[i % len(PROMPTS)]), bos=False) for i in range(batch)]

    summary = {}
    for dtype in dtypes:
        name = str(dtype).removeprefix("torch.")
        model = load_llama(folder, dtype=dtype)
        floor_s = weight_bytes(model) / bandwidth
        print(f"\n{name}: {weight_bytes(model) / 1e6:.0f} MB of weights -> floor {floor_s * 1e3:.2f} ms per step")
        print(DECODE_HEADER)
        eager = decode_rows(model, tok, prompts_of, batches, new_tokens, repeats, floor_s, f"{name} eager")
        compile_decoding(model)
        compiled = decode_rows(model, tok, prompts_of, batches, new_tokens, repeats, floor_s, f"{name} compiled")
        del model
        hf = LlamaForCausalLM.from_pretrained(folder, dtype=dtype).eval()
        hf.generation_config.eos_token_id = None  # both generate exactly `new_tokens` tokens
        print(f"\n| {name} batch | transformers tok/s | eager / transformers | compiled / transformers | "
              "same greedy tokens (eager, compiled) |\n|---|---|---|---|---|")
        for batch in batches:
            prompts = prompts_of(batch)
            with torch.inference_mode():
                hf_s, theirs = timed(lambda p=prompts, m=hf: hf_generate(m, p, new_tokens, tok.eos_id), repeats)
            hf_tok_s = batch * new_tokens / hf_s
            same = [sum(a == b for a, b in zip(rows[batch]["tokens"], theirs, strict=True))
                    for rows in (eager, compiled)]
            print(f"| {batch} | {hf_tok_s:.1f} | {eager[batch]['tok_s'] / hf_tok_s:.2f} | "
                  f"{compiled[batch]['tok_s'] / hf_tok_s:.2f} | {same[0]}/{batch}, {same[1]}/{batch} |")
            for label, rows in (("eager", eager), ("compiled", compiled)):
                summary[f"{name}_{label}_batch{batch}_vs_transformers"] = rows[batch]["tok_s"] / hf_tok_s
                summary[f"{name}_{label}_batch{batch}_floor_share"] = floor_s * 1e3 / rows[batch]["step_ms"]
    return summary


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
    parser.add_argument("--dtype", help="default: float32 and bfloat16 on CPU (--shape: float32), bfloat16 on GPU")
    parser.add_argument("--batch", type=int, nargs="+", help="default 1 8 32; 1 8 32 64 with --shape 7b")
    parser.add_argument("--new_tokens", type=int, default=64,
                        help="tokens decoded per request (not with --lengths: each stops at its drawn length)")
    parser.add_argument("--first_tokens", type=int, default=256,
                        help="length of the first answer timed from a fresh model, eager and compiled (0: skip)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row, after a warm-up; the median is "
                        "reported (not with --lengths: one run)")
    parser.add_argument("--lengths", action="store_true", help="continuous vs static batching (at --batch, default 8)")
    parser.add_argument("--requests", type=int, default=64, help="requests of --lengths")
    args = parser.parse_args()
    torch.manual_seed(0)
    # a cold compile, as a user's first run gets it (inductor otherwise reuses earlier runs' kernels)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="inductor-"))
    if args.shape:
        dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))
        summary = random_7b(args.device, dtype, args.batch or [1, 8, 32, 64], args.new_tokens, args.repeats)
    elif args.lengths:
        continuous_vs_static(args.model, (args.batch or [8])[0], args.requests, getattr(torch, args.dtype or "float32"))
        return
    else:
        dtypes = [getattr(torch, args.dtype)] if args.dtype else [torch.float32, torch.bfloat16]
        summary = {}
        if args.first_tokens:
            first = first_answer(args.model, auto_dtype("cpu"), args.first_tokens)
            summary |= {f"first_answer_s_{k}": v for k, v in first.items()}
        summary |= decode_floor(args.model, args.batch or [1, 8, 32], args.new_tokens, args.repeats, dtypes)
    print("decode " + " ".join(f"{k}={v:.2f}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
