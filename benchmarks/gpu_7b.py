"""The GPU figures of docs/performance.md in one command, with random weights at the released shapes:
LLaMA-2-7B decode tok/s at batch 1, 8, 32 and 64, eager and compiled (`--compile`: CUDA graphs), against the
floor (weight bytes / the read bandwidth it measures, a sum over 1 GiB); MU-LLaMA
captioning clips/hour (the whole batch_inference.py pipeline: 30 s clips, 64-token answers, batch
1, 16 and 64); MERT-v1-330M windows/s (30 s windows) in bf16 and fp32.

    python benchmarks/gpu_7b.py                               # on a CUDA GPU: about 5 minutes, ~35 GB
    python benchmarks/gpu_7b.py --shape tiny --device cpu     # the same code at a toy shape (smoke test)

Prints each part's table, then a summary table; the last line is `gpu_7b <key>=<value> ...`.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

from llama import MERT, ModelArgs
from llama.captioning import answer_pairs, read_records
from llama.encoders.mert import hubert_config
from llama.flags import HelpFormatter
from llama.testing.benchmarking import MERT_330M, describe_machine, random_7b, random_mu_llama, sync, timed

SHAPES = {
    "7b": {"llama": ModelArgs(max_seq_len=4096), "mert": MERT_330M, "clips": 128, "seconds": 30.0,
           "decode_batches": [1, 8, 32, 64], "caption_batches": [1, 16, 64], "windows": 64, "new_tokens": 64,
           "repeats": 3},
    "tiny": {"llama": ModelArgs(dim=128, n_layers=4, n_heads=4, vocab_size=32000, max_seq_len=512),
             "mert": {**MERT_330M, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "intermediate_size": 128, "conv_dim": [32] * 7, "num_conv_pos_embedding_groups": 4,
                      "num_conv_pos_embeddings": 16},
             "clips": 8, "seconds": 2.0, "decode_batches": [1, 4], "caption_batches": [1, 4], "windows": 4,
             "new_tokens": 16, "repeats": 1},
}


def caption(shape: dict, device, dtype, tmp: Path) -> dict[int, float]:
    """Clips/hour of batch_inference.py's pipeline on random-noise clips (the weights are random too)."""
    args = shape["llama"]
    model = random_mu_llama(ModelArgs(**{**args.__dict__, "w_bias": True, "w_lora": True}), shape["mert"], device,
                            dtype)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(shape["clips"]):
        paths.append(tmp / f"{i:04d}.wav")
        soundfile.write(paths[-1], 0.1 * rng.standard_normal(int(shape["seconds"] * 24000)).astype(np.float32), 24000)
    pairs = [(str(p), "Describe the audio") for p in paths]
    settings = {"max_gen_len": shape["new_tokens"], "temperature": 0.0, "top_p": 1.0, "seed": 0}
    answer_pairs(model, pairs[:1], tmp / "warmup.jsonl", 1, settings, desc="warm-up")
    print(f"captioning: {len(pairs)} clips of {shape['seconds']:g} s, {shape['new_tokens']}-token answers, greedy")
    print("| batch | seconds | clips/hour | speed-up | mean answer tokens |")
    print("|---|---|---|---|---|")
    rates = {}
    for batch in shape["caption_batches"]:
        output = tmp / f"batch{batch}.jsonl"
        clips = pairs if batch > 1 else pairs[:max(len(pairs) // 8, 1)]  # batch 1 is slow: an eighth suffices
        sync()
        start = time.perf_counter()
        answer_pairs(model, clips, output, batch, settings, desc=f"batch {batch}")
        sync()
        seconds = time.perf_counter() - start
        tokens = [len(model.tokenizer.encode(r["answer"], bos=False)) for r in read_records(output)]
        rates[batch] = len(clips) / seconds * 3600
        speedup = rates[batch] / rates[shape["caption_batches"][0]]
        print(f"| {batch} | {seconds:.1f} | {rates[batch]:.0f} | {speedup:.2f}x | {sum(tokens) / len(tokens):.0f} |")
    del model
    return rates


def mert_windows(shape: dict, device, dtypes=(torch.bfloat16, torch.float32)) -> dict[str, float]:
    """Windows/s of MERT's layer means over `windows` windows of the shape's clip length, 8 at a time."""
    rates = {}
    samples = int(shape["seconds"] * 24000)
    waves = [np.random.default_rng(i).standard_normal(samples).astype(np.float32) * 0.1
             for i in range(shape["windows"])]
    print(f"MERT: {len(waves)} windows of {shape['seconds']:g} s, 8 per forward")
    print("| dtype | windows/s | audio seconds per second |")
    print("|---|---|---|")
    for dtype in dtypes:
        with torch.device(device):
            mert = MERT(hubert_config(shape["mert"])).to(device, dtype).eval()
        with torch.inference_mode():
            seconds, _ = timed(lambda m=mert: (m.layer_means(waves, batch_size=8), sync()), shape["repeats"])
        name = str(dtype).removeprefix("torch.")
        rates[name] = len(waves) / seconds
        print(f"| {name} | {rates[name]:.1f} | {rates[name] * shape['seconds']:.0f} |")
        del mert
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="7b",
                        help="7b: LLaMA-2-7B and MERT-v1-330M shapes; tiny: toy shapes, fewer and shorter clips "
                             "(smoke test)")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: with --shape tiny)")
    parser.add_argument("--dtype", default="bfloat16", help="LLaMA and bridge dtype (MERT: both bf16 and fp32)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA GPU here: run on a GPU machine, or try the code with --shape tiny --device cpu")
    torch.manual_seed(0)
    shape, dtype = SHAPES[args.shape], getattr(torch, args.dtype)
    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else describe_machine(dtype)
    print(f"{machine}; torch {torch.__version__}; shape {args.shape}\n")
    decode = random_7b(args.device, dtype, shape["decode_batches"], shape["new_tokens"], shape["repeats"],
                       args=shape["llama"])
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    print()
    with tempfile.TemporaryDirectory() as tmp:
        captioning = caption(shape, args.device, dtype, Path(tmp))
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    print()
    windows = mert_windows(shape, args.device)
    print("\n| measure | value |\n|---|---|")
    summary = {f"decode_{k}": v for k, v in decode.items()}
    summary |= {f"clips_per_hour_batch{b}": v for b, v in captioning.items()}
    summary |= {f"mert_windows_s_{k}": v for k, v in windows.items()}
    for key, value in summary.items():
        print(f"| {key} | {value:,.1f} |")
    print("gpu_7b " + " ".join(f"{k}={v:.1f}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
