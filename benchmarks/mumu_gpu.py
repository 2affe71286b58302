"""MuMu-LLaMA 7B + MusicGen in bf16 on one GPU: the memory each part takes and the speed of one
request, at the real shapes with random weights (no download; the numbers depend on shapes only).

Builds LLaMA-2-7B with the 32008-row vocabulary, LoRA and biases, the three bridges and the
projector (bf16), MERT-v1-330M, ViT-B/16 and ViViT-B 16x2 (fp32, as `load_mumu` loads them) and
MusicGen-medium or -small (bf16), all directly on the device. Then one request with 30 s of audio,
an image and 32 video frames: encoders, 64 greedy tokens (KV cache), the projector, and `--seconds`
of music conditioned on the projector (guidance 1) and on 128 text tokens (guidance 3.5, as the
released code). Prints a table; `--json` writes the figures.

    python benchmarks/mumu_gpu.py [--decoder medium|small] [--seconds 10] [--shape 7b|tiny] [--json FILE]
"""

import argparse
import json
import time

import numpy as np
import torch
from transformers import (
    MusicgenForConditionalGeneration,
    ViTConfig,
    ViTImageProcessorPil,
    VivitConfig,
    VivitImageProcessor,
)

from llama import MERT, ModelArgs, MuMuConfig, MuMuLLaMA, Tokenizer, generate
from llama.encoders.mert import hubert_config
from llama.encoders.vit import ViT
from llama.encoders.vivit import ViViT
from llama.flags import HelpFormatter
from llama.multimodal import AUDIO_TOKENS
from llama.pipeline import MuMuPipeline, Request
from llama.testing.benchmarking import DECODERS, MERT_330M, musicgen_config
from llama.testing.tiny import TINY_MERT_CONFIG, random_transformer, sentencepiece_model_file


def frozen(module: torch.nn.Module, device, dtype) -> torch.nn.Module:
    # .to(device) too: some modules make a parameter with torch.Tensor(), which ignores the device context
    return module.to(device, dtype).requires_grad_(False).eval()


def gb(n_bytes: float) -> float:
    return n_bytes / 2**30


def size(module) -> float:
    return gb(sum(p.numel() * p.element_size() for p in module.parameters()))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: with --shape tiny)")
    parser.add_argument("--decoder", choices=DECODERS, default="medium", help="MusicGen size")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the generated music, in seconds")
    parser.add_argument("--tokens", type=int, default=64, help="greedy answer tokens decoded")
    parser.add_argument("--shape", choices=["7b", "tiny"], default="7b", help="tiny: a CPU check of this script")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    opts = parser.parse_args()
    device, bf16, tiny = torch.device(opts.device), torch.bfloat16, opts.shape == "tiny"
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rows, figures = [], {}

    def mark(name, start, note=""):
        sync()
        seconds = time.perf_counter() - start
        peak = gb(torch.cuda.max_memory_allocated()) if cuda else float("nan")
        rows.append((name, seconds, peak, note))
        figures[name] = {"s": seconds, "peak_gib": peak, "note": note}

    start = time.perf_counter()
    args = ModelArgs(dim=256, n_layers=6, n_heads=4) if tiny else ModelArgs()
    args = ModelArgs(**{**args.__dict__, "vocab_size": 32008, "w_bias": True, "w_lora": True, "max_seq_len": 1024})
    llama = random_transformer(args, device, bf16)
    mert_cfg = TINY_MERT_CONFIG if tiny else MERT_330M
    vit_cfg = ViTConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64) \
        if tiny else ViTConfig()
    vivit_cfg = VivitConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64) \
        if tiny else VivitConfig()
    with torch.device(device):  # each module's own random init, directly on the device
        mert = MERT(hubert_config(mert_cfg))
        vit = ViT(vit_cfg, ViTImageProcessorPil(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                                                image_std=[0.5] * 3))
        vivit = ViViT(vivit_cfg, VivitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224,
                      "width": 224}, offset=True, rescale_factor=1 / 127.5, image_mean=[0.5] * 3, image_std=[0.5] * 3))
        config = MuMuConfig(query_layer=2 if tiny else 6, mert_layers=mert.num_layers, mert_dim=mert.hidden_size,
                            vit_tokens=vit.tokens, vit_dim=vit.width, vivit_tokens=vivit.tokens, vivit_dim=vivit.width)
        model = MuMuLLaMA(llama, config)
        decoder = MusicgenForConditionalGeneration(musicgen_config(opts.decoder, tiny))
    for attribute in ("music_bridge", "image_bridge", "video_bridge", "prefix_query", "output_projector"):
        setattr(model, attribute, frozen(getattr(model, attribute), device, bf16))
    model.mert, model.vit, model.vivit = (frozen(m, device, torch.float32) for m in (mert, vit, vivit))
    decoder = frozen(decoder, device, bf16)
    tokenizer = Tokenizer(sentencepiece_model_file())
    tokenizer.add_tokens(list(AUDIO_TOKENS))
    parts = {"LLaMA-2-7B (32008 rows, LoRA, biases)": size(llama),
             "bridges + prefix + projector": size(model) - size(llama) - size(model.mert) - size(model.vit)
             - size(model.vivit),
             "MERT-330M + ViT-B + ViViT-B (fp32)": size(model.mert) + size(model.vit) + size(model.vivit),
             f"MusicGen-{opts.decoder}": size(decoder)}
    mark("build on the device", start, f"{sum(parts.values()):.2f} GiB of weights")
    if cuda:  # building initialised some modules in fp32 first, which loading from files does not
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    pipeline = MuMuPipeline(model, tokenizer, stop_rules="upstream")
    rng = np.random.default_rng(0)
    request = Request("Generate a music for this video", audio=0.1 * rng.standard_normal(30 * 24000, dtype=np.float32),
                      image=rng.random((3, 480, 640), dtype=np.float32),
                      video=rng.integers(0, 256, (32, 240, 320, 3), dtype=np.uint8))
    for _ in range(2):  # the second pass is timed (kernels loaded, allocator warm)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        with torch.inference_mode():
            features = pipeline.encode_inputs([request])
        mark("encoders + bridges (30 s audio, image, 32 frames)", start)
        start = time.perf_counter()
        with torch.inference_mode():
            done = generate(llama, tokenizer, [tokenizer.encode(request.prompt)], max_new_tokens=opts.tokens,
                            adapters=model.adapters(features, 1), stop_ids=[])
        mark(f"{opts.tokens} greedy tokens", start, f"{len(done[0].tokens) / (time.perf_counter() - start):.1f} tok/s")
        if _ == 0:
            rows.clear()

    frames = int(256 / 5 * opts.seconds)
    with torch.inference_mode():
        conditioning = model.project(torch.randn(1, 8, args.dim, device=device, dtype=bf16)) / 10
        start = time.perf_counter()
        decoder.generate(encoder_outputs=(conditioning.to(bf16),), guidance_scale=1, max_new_tokens=frames,
                         do_sample=True)
        mark(f"{opts.seconds:g} s of music, projector-conditioned", start, f"{frames} frames")
        text = torch.randint(3, 32000, (1, 128), device=device)
        start = time.perf_counter()
        decoder.generate(input_ids=text, attention_mask=torch.ones_like(text), guidance_scale=3.5,
                         max_new_tokens=frames, do_sample=True)
        mark(f"{opts.seconds:g} s of music, text-conditioned (guidance 3.5)", start, f"{frames} frames")

    name = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"MuMu-LLaMA {opts.shape} + MusicGen-{opts.decoder}, bf16, on {name}")
    print("| weights | GiB |\n|---|---|")
    for part, gib in parts.items():
        print(f"| {part} | {gib:.2f} |")
    print(f"| total | {sum(parts.values()):.2f} |\n")
    if cuda:  # what a smaller card must hold: the allocator's reservation, plus the CUDA context (~0.5 GiB)
        figures["max_reserved_gib"] = gb(torch.cuda.max_memory_reserved())
        print(f"largest allocation at once: {max(r[2] for r in rows):.2f} GiB; reserved by the allocator at most: "
              f"{figures['max_reserved_gib']:.2f} GiB\n")
    print("| step | s | peak GPU memory GiB | note |\n|---|---|---|---|")
    for step, seconds, peak, note in rows:
        print(f"| {step} | {seconds:.2f} | {peak:.2f} | {note} |")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"device": name, "weights_gib": parts, "steps": figures}, f, indent=2)


if __name__ == "__main__":
    main()
