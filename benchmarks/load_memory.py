"""Peak RSS and wall time to load a LLaMA checkpoint, measured in a fresh subprocess.

By default writes a random ~1 GB (bf16) Meta-format checkpoint to a temporary folder and loads it
in bf16; `--shape 7b` writes a LLaMA-2-7B-shaped one (13.5 GB) instead; `--folder` loads any
Meta- or HF-format folder. After loading, one short forward pass touches every weight, so the
second figure includes every page of the model actually being read.

    .venv/bin/python benchmarks/load_memory.py [--shape 1gb|7b] [--folder DIR] [--dtype bfloat16]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from llama import ModelArgs, Transformer, load_llama, save_meta

SHAPES = {
    "1gb": ModelArgs(dim=1536, n_layers=16, n_heads=12, vocab_size=32000),
    "7b": ModelArgs(),  # LLaMA-2-7B
}


def rss_status() -> dict:
    """Current and peak resident memory of this process, in GB (anonymous vs file-backed pages)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1e6  # kB -> GB
    return fields


def write_random(args: ModelArgs, folder: Path):
    """Random bf16 weights in Meta format (one shard, as LLaMA-2-7B ships)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Transformer(args).state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(s, generator=generator) * 0.02).to(torch.bfloat16) for k, s in shapes.items()}
    save_meta(state, args, folder)


def child(folder: Path, dtype: torch.dtype):
    before = rss_status()["VmRSS"]
    start = time.perf_counter()
    model = load_llama(folder, dtype=dtype)
    load_s = time.perf_counter() - start
    after_load = rss_status()
    peak_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    start = time.perf_counter()
    with torch.inference_mode():
        model(torch.arange(1, 5)[None], last_only=True)
    forward_s = time.perf_counter() - start
    weights = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9
    print(json.dumps({
        "weights_gb": weights, "params": sum(p.numel() for p in model.parameters()),
        "rss_before_gb": before, "load_s": load_s, "peak_after_load_gb": peak_load,
        "anon_after_load_gb": after_load["RssAnon"], "forward_s": forward_s,
        "peak_after_forward_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "anon_after_forward_gb": rss_status()["RssAnon"],
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, help="load this folder instead of writing a random one")
    parser.add_argument("--shape", choices=SHAPES, default="1gb")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        return child(opts.child, getattr(torch, opts.dtype))
    if opts.write:
        return write_random(SHAPES[opts.shape], opts.write)

    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1] / "ckpts") as tmp:
        folder = opts.folder
        if folder is None:
            folder = Path(tmp) / opts.shape
            start = time.perf_counter()
            # written by another process so that this one's memory stays out of the measurement
            subprocess.run([sys.executable, __file__, "--shape", opts.shape, "--write", str(folder)], check=True)
            print(f"wrote a random {opts.shape} checkpoint in {time.perf_counter() - start:.0f} s")
        disk = sum(f.stat().st_size for f in folder.iterdir()) / 1e9
        out = subprocess.run([sys.executable, __file__, "--child", str(folder), "--dtype", opts.dtype],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
    bf16_gb = r["params"] * 2 / 1e9
    print(f"checkpoint {folder.name}: {r['params'] / 1e9:.2f} B parameters, {disk:.2f} GB on disk, "
          f"{bf16_gb:.2f} GB in bf16; loaded as {opts.dtype}")
    print("| step | wall s | peak RSS GB | peak RSS / bf16 size | peak above interpreter+torch / bf16 size |")
    print("|---|---|---|---|---|")
    for step, seconds, peak in (("load", r["load_s"], r["peak_after_load_gb"]),
                                ("load + 4-token forward", r["load_s"] + r["forward_s"], r["peak_after_forward_gb"])):
        print(f"| {step} | {seconds:.2f} | {peak:.2f} | {peak / bf16_gb:.2f} | "
              f"{(peak - r['rss_before_gb']) / bf16_gb:.2f} |")
    print(f"interpreter + torch before loading: {r['rss_before_gb']:.2f} GB; anonymous (non-file) memory "
          f"after load {r['anon_after_load_gb']:.2f} GB, after forward {r['anon_after_forward_gb']:.2f} GB")


if __name__ == "__main__":
    main()
