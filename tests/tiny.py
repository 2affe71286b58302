"""Tiny random MERT / MU-LLaMA checkpoints written in the released artefacts' on-disk formats."""

import argparse
from pathlib import Path

import torch

from llama import MULLaMA, MULLaMAConfig, save_meta
from llama.tiny import TINY_MERT_CONFIG, write_tiny_mert

from conftest import random_model, tiny_args


def tiny_mu_llama(phase: str = "finetune", seed: int = 0, query_layer: int = 2) -> MULLaMA:
    """A random MU-LLaMA (32k vocab, so the real SentencePiece tokenizer fits) with open gates,
    non-zero LoRA and biases, so that every trained tensor changes the output, and a loud bridge
    projection, so that different clips change the answers."""
    finetune = phase == "finetune"
    llama = random_model(tiny_args(vocab_size=32000, max_seq_len=512, w_bias=finetune, w_lora=finetune,
                                   lora_rank=4), seed=seed)
    config = MULLaMAConfig(phase=phase, query_layer=query_layer, mert_layers=TINY_MERT_CONFIG["num_hidden_layers"] + 1,
                           mert_dim=TINY_MERT_CONFIG["hidden_size"], bridge_width=96, lora_rank=4)
    model = MULLaMA(llama, None, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".gate") or ".lora_" in name or name.endswith(".bias"):
                p.normal_(0, 0.5)
            if name.endswith(".gate"):  # the release stores gates in fp16: use values it can hold
                p.copy_(p.half().float())
        # Random MERT features of different clips differ by a few degrees after the L2 norm.
        model.mu_mert_proj.weight.mul_(100)
    return model.eval()


def write_upstream_checkpoint(model: MULLaMA, mert_state: dict, path: Path):
    """The original code's checkpoint.pth: full state dict (base LLaMA fp16, MERT, bridge, ...),
    AdamW state, epoch, scaler and an argparse.Namespace."""
    state = {}
    for key, value in model.state_dict().items():
        frozen_base = key.startswith("llama.") and not any(s in key for s in ("norm", "bias", "lora", "gate"))
        state[key] = value.half() if frozen_base or key.endswith(".gate") else value
    state.update({f"mert_model.{k}": v for k, v in mert_state.items()})
    trained = [v for k, v in model.state_dict().items() if "lora" in k or "bias" in k]
    optimizer = {"state": {i: {"step": torch.tensor(10.0), "exp_avg": torch.randn_like(v),
                               "exp_avg_sq": torch.rand_like(v)} for i, v in enumerate(trained)},
                 "param_groups": [{"lr": 1e-4, "weight_decay": 0.05, "params": list(range(len(trained)))}]}
    args = argparse.Namespace(llama_type="7B", max_words=512, blr=1e-3, output_dir="./output")
    torch.save({"model": state, "optimizer": optimizer, "epoch": 19, "scaler": {"scale": 65536.0},
                "args": args}, path)


def write_tiny_release(root: Path, sentencepiece_model: Path, seed: int = 0) -> dict:
    """The released layout in miniature: LLaMA/{7B/, tokenizer.model}, MERT folder, checkpoint.pth."""
    model = tiny_mu_llama(seed=seed)
    # As in the release, the fine-tuned norms in checkpoint.pth differ from the base model's.
    base = {k.removeprefix("llama."): v + 0.25 if "norm" in k else v
            for k, v in model.state_dict().items() if k.startswith("llama.")}
    save_meta(base, model.llama.args, root / "LLaMA" / "7B")
    (root / "LLaMA" / "tokenizer.model").write_bytes(sentencepiece_model.read_bytes())
    mert = write_tiny_mert(root / "MERT")
    write_upstream_checkpoint(model, mert.state_dict(), root / "checkpoint.pth")
    return {"model": model, "mert": mert, "llama_dir": root / "LLaMA", "mert_path": root / "MERT",
            "checkpoint": root / "checkpoint.pth"}
