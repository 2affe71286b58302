"""Tokens/s of llama.generate vs transformers' generate on the same weights, same greedy tokens.

Default model: SmolLM2-135M-Instruct (converted by the installer; a real LLaMA-architecture model,
so greedy tokens are meaningful), fp32, on CPU. `--random 7b` builds a 7B-shaped model with random
bf16 weights on a GPU instead (no transformers comparison there; tokens/s against the bandwidth floor).

    .venv/bin/python benchmarks/generation.py                       # CPU, batch 1 and 8
    .venv/bin/python benchmarks/generation.py --random 7b --device cuda --dtype bfloat16 --batch 1 8 32
Last line: `ratio_vs_transformers batch1=<x> batch8=<y>`.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch

from llama import ModelArgs, Tokenizer, generate, load_llama
from llama.testing.tiny import random_transformer

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


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def hf_generate(hf, prompts, new_tokens, pad_id):
    longest = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (longest - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts])
    out = hf.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                      pad_token_id=pad_id, eos_token_id=None)
    return out[:, longest:].tolist()


def compare_with_transformers(folder: Path, batches, new_tokens, repeats):
    from transformers import LlamaForCausalLM

    model = load_llama(folder)
    tok = Tokenizer(folder)
    hf = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    hf.generation_config.eos_token_id = None  # both generate exactly `new_tokens` tokens
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"model {folder.name}: {params:.0f}M parameters, fp32, CPU, {torch.get_num_threads()} threads, "
          f"{new_tokens} new tokens, median of {repeats}")
    print("| batch | ours tok/s | transformers tok/s | ratio | same greedy tokens |")
    print("|---|---|---|---|---|")
    ratios = {}
    for batch in batches:
        prompts = [tok.encode(CHAT.format(PROMPTS[i % len(PROMPTS)]), bos=False) for i in range(batch)]
        ours_s, ours = timed(lambda p=prompts: generate(model, tok, p, max_new_tokens=new_tokens, stop_ids=[]),
                             repeats)
        with torch.inference_mode():
            hf_s, theirs = timed(lambda p=prompts: hf_generate(hf, p, new_tokens, tok.eos_id), repeats)
        same = sum(o.tokens == t for o, t in zip(ours, theirs, strict=True))
        tokens = batch * new_tokens
        ratios[batch] = hf_s / ours_s
        print(f"| {batch} | {tokens / ours_s:.1f} | {tokens / hf_s:.1f} | {ratios[batch]:.2f} | {same}/{batch} |")
    print("ratio_vs_transformers " + " ".join(f"batch{b}={r:.2f}" for b, r in ratios.items()))


def random_7b(device, dtype, batches, new_tokens, repeats, prompt_len=64):
    model = random_transformer(ModelArgs(max_seq_len=4096), device, dtype)  # LLaMA-2-7B shape
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())

    class Ids:  # token ids are the prompts here; no stop token
        bos_id, eos_id, pad_id = 1, 2, -1

        @staticmethod
        def decode(ids):
            return ""

    bandwidth = measure_bandwidth(device)
    floor_ms = weight_bytes / bandwidth * 1e3
    print(f"7B shape, random {dtype} weights ({weight_bytes / 1e9:.1f} GB), {torch.cuda.get_device_name()}, "
          f"measured copy bandwidth {bandwidth / 1e9:.0f} GB/s -> floor {floor_ms:.1f} ms per decode step")
    print("| batch | tok/s | ms per step | floor ms per step | floor tok/s |")
    print("|---|---|---|---|---|")
    for batch in batches:
        prompts = torch.randint(3, 32000, (batch, prompt_len)).tolist()
        seconds, _ = timed(lambda p=prompts: generate(model, Ids, p, max_new_tokens=new_tokens, stop_ids=[]),
                           repeats)
        # decode steps dominate; report the per-step time including the prefill amortised
        step_ms = seconds / new_tokens * 1e3
        print(f"| {batch} | {batch * new_tokens / seconds:.0f} | {step_ms:.1f} | {floor_ms:.1f} | "
              f"{batch * 1e3 / floor_ms:.0f} |")


def measure_bandwidth(device) -> float:
    """Device memory bandwidth in bytes/s from a large copy (read + write)."""
    x = torch.empty(2 * 1024**3 // 2, dtype=torch.bfloat16, device=device)
    y = torch.empty_like(x)
    seconds, _ = timed(lambda: y.copy_(x), 10)
    return 2 * x.numel() * x.element_size() / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "ckpts" / "SmolLM2-135M-Instruct")
    parser.add_argument("--random", choices=["7b"], help="random weights of this shape instead of --model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.random:
        random_7b(args.device, getattr(torch, args.dtype), args.batch, args.new_tokens, args.repeats)
    else:
        compare_with_transformers(args.model, args.batch, args.new_tokens, args.repeats)


if __name__ == "__main__":
    main()
