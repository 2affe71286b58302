"""Peak RSS and wall time to load a LLaMA or MU-LLaMA checkpoint, measured in a fresh subprocess.

By default writes a random ~1 GB (bf16) Meta-format checkpoint to a temporary folder and loads it
in bf16; `--shape 7b` writes a LLaMA-2-7B-shaped one (13.5 GB) instead; `--folder` loads any
Meta- or HF-format folder. After loading, one short forward pass touches every weight, so the
second figure includes every page of the model actually being read.

`--mu_llama` writes a whole MU-LLaMA release at the chosen shape instead, in the real formats: a
Meta LLaMA folder + tokenizer.model, a MERT-v1-330M-shaped folder, and an original-layout
checkpoint.pth (full state dict with fp16 base weights, MERT, fp32 bridge, AdamW state, an
argparse.Namespace: 17.7 GB at 7B shape), then loads it with `llama.load`.

`--mumu` writes a MuMu-LLaMA (M2UGen) release: the same LLaMA and MERT folders, ViT-B/16 and
ViViT-B folders, and an M2UGen-layout checkpoint.pth (`module.` keys; the LLaMA with 32008 rows in
bf16, as the MusicGen-medium release holds some; MERT, ViT, ViViT and a MusicGen-medium-sized
`generation_model` copy; fp32 bridges and projector; AdamW state; a Namespace: 24 GB at 7B shape),
then loads it with `llama.load_mumu` and runs the three encoders and a forward pass.

    .venv/bin/python benchmarks/load_memory.py [--shape 1gb|7b] [--mu_llama | --mumu] [--folder DIR] [--dtype bfloat16]
"""

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import HubertModel

from llama import (
    ModelArgs,
    MULLaMA,
    MULLaMAConfig,
    MuMuConfig,
    MuMuLLaMA,
    Request,
    Transformer,
    load,
    load_llama,
    load_mumu,
    save_meta,
)
from llama.checkpoints.names import is_trained_key, to_upstream
from llama.encoders.mert import hubert_config
from llama.files import torch_load
from llama.flags import HelpFormatter
from llama.testing.benchmarking import MERT_330M, musicgen_config
from llama.testing.upstream import write_m2ugen_checkpoint, write_upstream_checkpoint

SHAPES = {
    "1gb": ModelArgs(dim=1536, n_layers=16, n_heads=12, vocab_size=32000),
    "7b": ModelArgs(),  # LLaMA-2-7B
}
def rss_status() -> dict:
    """Current resident memory of this process, in GB (anonymous vs file-backed pages)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1e6  # kB -> GB
    return fields


def peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def random_like(shapes: dict, dtype) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {k: (torch.randn(s, generator=generator) * 0.02).to(dtype) for k, s in shapes.items()}


def write_random(args: ModelArgs, folder: Path):
    """Random bf16 weights in Meta format (one shard, as LLaMA-2-7B ships)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Transformer(args).state_dict().items()}
    save_meta(random_like(shapes, torch.bfloat16), args, folder)


def write_mu_llama_folders(args: ModelArgs, root: Path):
    """LLaMA/{7B, tokenizer.model} and MERT/, random."""
    write_random(args, root / "LLaMA" / "7B")
    spm = Path(importlib.util.find_spec("mistral_common").origin).parent / "data" / "tokenizer.model.v1"
    (root / "LLaMA" / "tokenizer.model").write_bytes(spm.read_bytes())
    (root / "MERT").mkdir()
    (root / "MERT" / "config.json").write_text(json.dumps(MERT_330M))
    (root / "MERT" / "preprocessor_config.json").write_text(json.dumps({"do_normalize": False, "sampling_rate": 24000}))
    with torch.device("meta"):
        mert_shapes = {k: v.shape for k, v in HubertModel(hubert_config(MERT_330M)).state_dict().items()}
    mert = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                                   "weight_v"): v
            for k, v in random_like(mert_shapes, torch.float32).items()}
    torch.save(mert, root / "MERT" / "pytorch_model.bin")


def write_mu_llama_release(args: ModelArgs, root: Path):
    """LLaMA/{7B, tokenizer.model}, MERT/ and an original-layout checkpoint.pth. Big tensors of the
    pickle are file-backed (torch.from_file), so writing 17.7 GB fits in this machine's memory."""
    write_mu_llama_folders(args, root)

    scratch = root / "scratch"
    scratch.mkdir()
    base = torch_load(root / "LLaMA" / "7B" / "consolidated.00.pth")
    state = {}
    for key, value in base.items():  # frozen base in fp16, as the release stores it
        state[f"llama.{key}"] = torch.from_file(str(scratch / key), shared=True, size=value.numel(),
                                                dtype=torch.float16).view(value.shape).copy_(value)
    finetune_args = ModelArgs(**{**args.__dict__, "w_bias": True, "w_lora": True})
    config = MULLaMAConfig(query_layer=min(20, args.n_layers), mert_layers=25, mert_dim=1024)
    with torch.device("meta"):
        shell = MULLaMA(Transformer(finetune_args), None, config)
    trained = {k: v.shape for k, v in shell.state_dict().items() if k not in state}
    state.update(random_like(trained, torch.float32))
    moments = {i: {"step": torch.tensor(1000.0), "exp_avg": torch.zeros_like(v), "exp_avg_sq": torch.zeros_like(v)}
               for i, v in enumerate(v for k, v in state.items() if is_trained_key(to_upstream(k)))}
    write_upstream_checkpoint(state, torch_load(root / "MERT" / "pytorch_model.bin"), root / "checkpoint.pth",
                              optimizer_state=moments)
    for f in scratch.iterdir():
        f.unlink()
    scratch.rmdir()


def write_encoder_folder(folder: Path, model, processor) -> dict:
    """A random transformers encoder folder (config, safetensors, preprocessor); returns its state."""
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return dict(model.state_dict())


def file_backed(shapes: dict, scratch: Path, dtype) -> dict:
    """Zero tensors of these shapes whose storage is a file, not memory (frozen copies never read)."""
    return {k: torch.from_file(str(scratch / f"{k}.bin"), shared=True, size=max(s.numel(), 1), dtype=dtype)[
        :s.numel()].view(s) for k, s in shapes.items()}


def write_mumu_release(args: ModelArgs, root: Path):
    """LLaMA/{7B, tokenizer.model}, MERT/, vit/, vivit/ and an M2UGen-layout checkpoint.pth."""
    from transformers import (
        MusicgenForConditionalGeneration,
        ViTConfig,
        ViTImageProcessorPil,
        ViTModel,
        VivitConfig,
        VivitImageProcessor,
        VivitModel,
    )

    write_mu_llama_folders(args, root)
    torch.manual_seed(0)
    vit = write_encoder_folder(root / "vit", ViTModel(ViTConfig()), ViTImageProcessorPil(
        size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3))
    vivit = write_encoder_folder(root / "vivit", VivitModel(VivitConfig()), VivitImageProcessor(
        size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, offset=True, rescale_factor=1 / 127.5,
        image_mean=[0.5] * 3, image_std=[0.5] * 3))
    scratch = root / "scratch"
    scratch.mkdir()
    with torch.device("meta"):
        decoder = {k: v.shape for k, v in MusicgenForConditionalGeneration(musicgen_config("medium", False))
                   .state_dict().items()}
    base = torch_load(root / "LLaMA" / "7B" / "consolidated.00.pth")
    llama_args = ModelArgs(**{**args.__dict__, "vocab_size": 32008, "w_bias": True, "w_lora": True})
    config = MuMuConfig(query_layer=min(6, args.n_layers // 3))
    with torch.device("meta"):
        shell = MuMuLLaMA(Transformer(llama_args), config)
    state = {}
    for key, value in shell.state_dict().items():
        name, shape = key.removeprefix("llama."), value.shape
        if key.startswith("llama.") and name in base and base[name].shape == shape:
            state[key] = base[name]  # bf16, memory-mapped from the Meta shard
        elif key.startswith("llama.") and name in base:  # the embedding and head with 8 more rows
            state[key] = torch.cat([base[name], torch.ones(8, shape[1], dtype=base[name].dtype)])
    state.update(random_like({k: v.shape for k, v in shell.state_dict().items() if k not in state}, torch.float32))
    mert = torch_load(root / "MERT" / "pytorch_model.bin")
    mert = {k.replace("weight_g", "parametrizations.weight.original0").replace(
        "weight_v", "parametrizations.weight.original1"): v for k, v in mert.items()}
    frozen = {"mert_model": mert, "vit_model": vit, "vivit_model": vivit,
              "generation_model": file_backed(decoder, scratch, torch.float32)}
    write_m2ugen_checkpoint(state, frozen, root / "checkpoint.pth")
    for f in scratch.iterdir():
        f.unlink()
    scratch.rmdir()


def child(folder: Path, dtype: torch.dtype, kind: str):
    before = rss_status()["VmRSS"]
    start = time.perf_counter()
    if kind == "mumu":
        model = load_mumu(folder / "checkpoint.pth", folder / "LLaMA", folder / "MERT", folder / "vit",
                          folder / "vivit", dtype=dtype)
    elif kind == "mu_llama":
        model = load(folder / "checkpoint.pth", folder / "LLaMA", folder / "MERT", dtype=dtype)
    else:
        model = load_llama(folder, dtype=dtype)
    load_s = time.perf_counter() - start
    after_load = rss_status()
    peak_load = peak_rss()
    start = time.perf_counter()
    tokens = torch.arange(1, 5)[None]
    audio = torch.randn(240000).numpy() * 0.1
    with torch.inference_mode():
        if kind == "mumu":  # the three encoders (10 s of audio, an image, 32 frames), bridges and LLaMA
            request = Request("Describe it", audio=audio, image=np.random.rand(3, 224, 224).astype(np.float32),
                              video=np.random.randint(0, 256, (32, 224, 224, 3), dtype=np.uint8))
            model.model.logits(tokens, model.encode_inputs([request]))
        elif kind == "mu_llama":  # MERT on 10 s of audio, then the bridge and all of LLaMA
            model.model.logits(tokens, {"music": model.encode("music", [audio])})
        else:
            model(tokens, last_only=True)
    forward_s = time.perf_counter() - start
    if kind == "llama":
        llm, encoders = sum(p.numel() for p in model.parameters()), []
    else:
        encoders = [model.model.mert] + ([model.model.vit, model.model.vivit] if kind == "mumu" else [])
        llm = sum(p.numel() for p in model.model.parameters()) - sum(p.numel() for e in encoders
                                                                      for p in e.parameters())
    print(json.dumps({
        "params": llm + sum(p.numel() for e in encoders for p in e.parameters()),
        "bf16_gb": llm * 2 / 1e9,
        "encoders_gb": sum(p.numel() * p.element_size() for e in encoders for p in e.parameters()) / 1e9,
        "rss_before_gb": before, "load_s": load_s, "peak_after_load_gb": peak_load,
        "anon_after_load_gb": after_load["RssAnon"], "forward_s": forward_s,
        "peak_after_forward_gb": peak_rss(), "anon_after_forward_gb": rss_status()["RssAnon"],
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--folder", type=Path, help="load this folder instead of writing a random one")
    parser.add_argument("--shape", choices=SHAPES, default="1gb",
                        help="LLaMA shape of the random checkpoint: 1gb (~1 GB in bf16) or 7b (LLaMA-2-7B); "
                             "not with --folder")
    parser.add_argument("--mu_llama", action="store_true", help="a whole MU-LLaMA release, not a bare LLaMA")
    parser.add_argument("--mumu", action="store_true", help="a whole MuMu-LLaMA (M2UGen) release")
    parser.add_argument("--dtype", default="bfloat16", help="dtype the model is loaded in (bfloat16, float16, float32)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    kind = "mumu" if opts.mumu else "mu_llama" if opts.mu_llama else "llama"
    if opts.child:
        return child(opts.child, getattr(torch, opts.dtype), kind)
    if opts.write:
        writer = {"mumu": write_mumu_release, "mu_llama": write_mu_llama_release, "llama": write_random}[kind]
        return writer(SHAPES[opts.shape], opts.write)

    flags = [f"--{kind}"] if kind != "llama" else []
    release = {"mumu": "MuMu-LLaMA release", "mu_llama": "MU-LLaMA release", "llama": "checkpoint"}[kind]
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1] / "ckpts") as tmp:
        folder = opts.folder
        if folder is None:
            folder = Path(tmp) / opts.shape
            start = time.perf_counter()
            # written by another process so that this one's memory stays out of the measurement
            subprocess.run([sys.executable, __file__, "--shape", opts.shape, "--write", str(folder), *flags],
                           check=True)
            print(f"wrote a random {opts.shape} {release} in {time.perf_counter() - start:.0f} s")
        disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e9
        out = subprocess.run([sys.executable, __file__, "--child", str(folder), "--dtype", opts.dtype, *flags],
                             check=True, stdout=subprocess.PIPE, text=True).stdout  # stderr shows
        r = json.loads(out.strip().splitlines()[-1])
    budget = r["bf16_gb"] + r["encoders_gb"]
    encoders = {"mumu": "MERT + ViT + ViViT", "mu_llama": "MERT"}.get(kind)
    what = "LLaMA + trained tensors in bf16" + (f" + {encoders} ({r['encoders_gb']:.2f} GB fp32)" if encoders else "")
    print(f"{folder.name}: {r['params'] / 1e9:.2f} B parameters, {disk:.2f} GB on disk; {what}: {budget:.2f} GB; "
          f"loaded as {opts.dtype}")
    print("| step | wall s | peak RSS GB | peak RSS / model size | anonymous RSS after, GB |")
    print("|---|---|---|---|---|")
    for step, seconds, peak, anon in (
            ("load", r["load_s"], r["peak_after_load_gb"], r["anon_after_load_gb"]),
            ("load + forward", r["load_s"] + r["forward_s"], r["peak_after_forward_gb"], r["anon_after_forward_gb"])):
        print(f"| {step} | {seconds:.2f} | {peak:.2f} | {peak / budget:.2f} | {anon:.2f} |")
    print(f"interpreter + torch before loading: {r['rss_before_gb']:.2f} GB (included in the peaks)")


if __name__ == "__main__":
    main()
