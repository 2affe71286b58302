"""Samples/s and peak memory of a MU-LLaMA training step (forward, backward, AdamW step), both phases,
with and without gradient checkpointing, from cached MERT features (random [L + 1, H] layer means).

    .venv/bin/python benchmarks/train_step.py                                 # scaled-down shape, CPU
    .venv/bin/python benchmarks/train_step.py --shape 7b --device cuda --dtype bfloat16

On CPU "peak memory" is the process's peak RSS; on a GPU, torch.cuda.max_memory_allocated.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from llama import ModelArgs, MULLaMA, MULLaMAConfig
from llama.flags import HelpFormatter
from llama.testing.tiny import random_transformer
from llama.training.stages import set_trainable, trained_names

SHAPES = {"small": ModelArgs(dim=1024, n_layers=8, n_heads=8, vocab_size=32000), "7b": ModelArgs()}


def build(shape: ModelArgs, phase: str, device, dtype, checkpointing: bool) -> MULLaMA:
    finetune = phase == "finetune"
    args = ModelArgs(**{**shape.__dict__, "w_bias": finetune, "w_lora": finetune})
    llama = random_transformer(args, device, dtype)
    llama.checkpointing = checkpointing
    config = MULLaMAConfig(phase=phase, query_layer=min(20, args.n_layers), mert_layers=25, mert_dim=1024)
    model = MULLaMA(llama, None, config).to(device)
    set_trainable(model, trained_names(model, ("mu-llama", phase)))
    return model.train()


def measure(model: MULLaMA, batch: int, length: int, steps: int, device, dtype) -> tuple[float, float]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    tokens = torch.randint(3, model.llama.args.vocab_size, (batch, length), device=device)
    labels = tokens.clone()
    labels[:, : length // 2] = -100
    means = torch.randn(batch, 25, 1024, device=device)
    rows = torch.arange(batch, device=device)
    autocast = torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for step in range(steps + 1):
        if step == 1:  # the first step allocates optimizer state; time the rest
            start = time.perf_counter()
        with autocast:
            loss, _ = model(tokens, labels, {"music": (rows, means)})
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 1e9
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return batch * steps / (time.perf_counter() - start), peak


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--shape", choices=SHAPES, default="small",
                        help="small: dim 1024, 8 layers; 7b: LLaMA-2-7B (random weights either way)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="float32", help="frozen base weights and autocast dtype")
    parser.add_argument("--batch", type=int, default=2, help="samples per training step")
    parser.add_argument("--length", type=int, default=128, help="tokens per sample")
    parser.add_argument("--steps", type=int, default=3, help="timed steps, after one warm-up step")
    parser.add_argument("--one", nargs=2, metavar=("PHASE", "CHECKPOINTING"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    dtype = getattr(torch, opts.dtype)
    shape = SHAPES[opts.shape]
    if opts.one:  # one configuration, in its own process so that peak memory is its own
        model = build(shape, opts.one[0], opts.device, dtype, opts.one[1] == "yes")
        print(json.dumps(measure(model, opts.batch, opts.length, opts.steps, opts.device, dtype)))
        return
    print(f"shape {opts.shape} (dim {shape.dim}, {shape.n_layers} layers), {opts.device}, {opts.dtype}, "
          f"batch {opts.batch} x {opts.length} tokens, cached MERT features, mean of {opts.steps} steps after warm-up")
    print("| phase | gradient checkpointing | samples/s | peak memory GB |")
    print("|---|---|---|---|")
    for phase in ("pretrain", "finetune"):
        for checkpointing in (False, True):
            flag = "yes" if checkpointing else "no"
            out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--one", phase, flag], check=True,
                                 capture_output=True, text=True).stdout
            rate, peak = json.loads(out.strip().splitlines()[-1])
            print(f"| {phase} | {flag} | {rate:.2f} | {peak:.2f} |")


if __name__ == "__main__":
    main()
