"""The memory each MuMu-LLaMA training stage needs at 7B, computed from the exact parameter counts
(the model is built on the `meta` device: nothing is allocated, nothing downloaded).

Per GPU, for one process or FSDP over N: the frozen LLaMA in bf16; for what the stage trains, fp32
weights + fp32 gradients + AdamW's two fp32 moments (16 bytes a parameter); the other tensors that
checkpoints keep, in fp32 (4 bytes); all of these sharded by FSDP. "cached": encoder features and
decoder targets read from caches; "on the fly": the frozen encoders in fp32 on every process, and
from stage 2 the music decoder for the targets (MusicGen-medium in fp32). Activations are not
included: they depend on the sequence length, the batch and gradient checkpointing (measure them
with a GPU).

    .venv/bin/python benchmarks/mumu_train_memory.py [--gpus 1 2 4] [--json FILE]
"""

import argparse
import json

import torch
from transformers import HubertModel, MusicgenForConditionalGeneration, ViTConfig, ViTModel, VivitConfig, VivitModel

from llama import ModelArgs, MuMuConfig, MuMuLLaMA, Transformer
from llama.encoders.mert import hubert_config
from llama.flags import HelpFormatter
from llama.testing.benchmarking import MERT_330M, musicgen_config
from llama.training.stages import STAGES, trained_names

GIB = 2**30


def size(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def counts() -> dict:
    """Parameter counts at the real shapes: the frozen LLaMA (bf16), what checkpoints keep (fp32), what
    each stage trains, the encoders (MERT-v1-330M, ViT-B/16, ViViT-B 16x2) and MusicGen-medium."""
    config = MuMuConfig()
    with torch.device("meta"):
        model = MuMuLLaMA(Transformer(ModelArgs(vocab_size=32008, **config.backbone_args())), config)
        encoders = size(HubertModel(hubert_config(MERT_330M))) + size(ViTModel(ViTConfig(), add_pooling_layer=False))
        encoders += size(VivitModel(VivitConfig(), add_pooling_layer=False))
        musicgen = size(MusicgenForConditionalGeneration(musicgen_config("medium", tiny=False)))
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    kept = set(model.checkpoint_state())
    trained = {(stage, gates): sum(sizes[n] for n in trained_names(model, (name, stage), gates))
               for name, stage in STAGES if name == "mumu" for gates in (False, True)}
    return {"frozen": sum(v for n, v in sizes.items() if n not in kept), "kept": sum(sizes[n] for n in kept),
            "trained": trained, "encoders": encoders, "musicgen": musicgen}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 4],
                        help="GPU counts (FSDP processes) to compute the per-GPU memory for, one column each")
    parser.add_argument("--json", help="also write the counts and rows to this JSON file")
    args = parser.parse_args()
    c = counts()
    rows = []
    print("| stage (trains) | trained params | " + " | ".join(f"{g} GPU{'s' * (g > 1)}: cached / on the fly"
                                                          for g in args.gpus) + " |")
    print("|---|---|" + "---|" * len(args.gpus))
    for (stage, gates), n in c["trained"].items():
        if gates and stage != 1:
            continue
        # what checkpoints keep stays fp32 even where a stage does not train it (4 bytes, no optimizer state)
        cells, row = [], {"stage": stage, "gates": gates, "trained": n}
        for gpus in args.gpus:
            sharded = (c["frozen"] * 2 + (c["kept"] - n) * 4 + n * 16) / gpus
            cached = sharded / GIB
            on_the_fly = (sharded + c["encoders"] * 4 + (c["musicgen"] * 4 if stage > 1 else 0)) / GIB
            cells.append(f"{cached:.1f} / {on_the_fly:.1f} GiB")
            row[f"{gpus}_gpus"] = {"cached_gib": round(cached, 2), "on_the_fly_gib": round(on_the_fly, 2)}
        rows.append(row)
        label = f"{stage}{' + gates' if gates else ''}"
        print(f"| {label} | {n / 1e6:.0f} M | " + " | ".join(cells) + " |")
    print(f"\nfrozen LLaMA (bf16): {c['frozen'] * 2 / GIB:.2f} GiB; checkpointed tensors: {c['kept'] / 1e6:.0f} M; "
          f"encoders (fp32): {c['encoders'] * 4 / GIB:.2f} GiB; "
          f"MusicGen-medium (fp32): {c['musicgen'] * 4 / GIB:.2f} GiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**{k: v for k, v in c.items() if k != "trained"}, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
