"""Tiny random MERT / MU-LLaMA checkpoints written in the released artefacts' on-disk formats."""

import argparse
from pathlib import Path

import torch

from llama import MULLaMA, MULLaMAConfig
from llama.testing.tiny import TINY_MERT_CONFIG, write_tiny_mert
from llama.testing.upstream import saved_as_on_gpu, write_upstream_checkpoint

from conftest import random_model, tiny_args
from layouts import exact, write_meta


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
        for p in model.llama.parameters():  # values that both bf16 (Meta's shards) and fp16 (checkpoint.pth) hold
            p.copy_(exact(p))
        for name, p in model.named_parameters():
            if name.endswith(".gate") or ".lora_" in name or name.endswith(".bias"):
                p.normal_(0, 0.5)
            if name.endswith(".gate"):  # the release stores gates in fp16: use values it can hold
                p.copy_(p.half().float())
        # Random MERT features of different clips differ by a few degrees after the L2 norm.
        model.music_bridge.proj.weight.mul_(100)
    return model.eval()


def tiny_params(model: MULLaMA) -> dict:
    """Meta's params.json keys for the tiny backbone."""
    a = model.llama.args
    return {"dim": a.dim, "multiple_of": a.multiple_of, "n_heads": a.n_heads, "n_layers": a.n_layers,
            "norm_eps": a.norm_eps, "vocab_size": -1}


def write_tiny_release(root: Path, sentencepiece_model: Path, seed: int = 0) -> dict:
    """The released layout in miniature, as ckpts/README.md lays it out: LLaMA/{7B/ (Meta shard with
    rope.freqs, params.json, checklist.chk), tokenizer.model}, the MERT folder, checkpoint.pth."""
    model = tiny_mu_llama(seed=seed)
    # As in the release, the fine-tuned norms in checkpoint.pth differ from the base model's.
    base = {k.removeprefix("llama."): v + 0.25 if "norm" in k else v
            for k, v in model.state_dict().items() if k.startswith("llama.") and not any(
                s in k for s in ("bias", "lora", "gate"))}
    write_meta(root / "LLaMA" / "7B", model.llama.args, base, tiny_params(model))
    (root / "LLaMA" / "tokenizer.model").write_bytes(sentencepiece_model.read_bytes())
    mert = write_tiny_mert(root / "MERT")
    write_upstream_checkpoint(model.state_dict(), mert.state_dict(), root / "checkpoint.pth")
    return {"model": model, "mert": mert, "llama_dir": root / "LLaMA", "mert_path": root / "MERT",
            "checkpoint": root / "checkpoint.pth"}


def write_m2ugen_checkpoint(path: Path, dim: int = 64) -> None:
    """An M2UGen / MuMu-LLaMA checkpoint.pth in miniature: music, image and video bridges, an 18-row
    prefix, the output projector, a 32008-row embedding ([AUD0..7] added), optimizer and args."""
    state = {"llama.tok_embeddings.weight": torch.randn(32008, dim).half(), "prefix_query.weight": torch.randn(18, dim)}
    for prefix, width in (("mu_mert", 32), ("iu_vit", 24), ("iu_vivit", 24)):
        state[f"{prefix}_agg.weight"] = torch.randn(1, 3, 1)
        state[f"{prefix}_proj.weight"] = torch.randn(dim, width)
        state[f"{prefix}_f1_1.weight"] = torch.randn(dim, dim)
    state["output_projector.fc.weight"] = torch.randn(16, dim)
    with saved_as_on_gpu():
        torch.save({"model": state, "optimizer": {}, "epoch": 4, "args": argparse.Namespace(stage=3)}, path)


def write_llama_adapter_checkpoint(path: Path, dim: int = 64) -> None:
    """LLaMA-Adapter's ImageBind-LLM 7B.pth (the baseline HF mu-llama/MU-LLaMA also hosts): trained
    tensors only, its bridge named image_bind_*."""
    state = {"image_bind_proj.weight": torch.randn(dim, 32), "image_bind_norm_1.weight": torch.ones(dim),
             "image_bind_f1_1.weight": torch.randn(4 * dim, dim), "prefix_query.weight": torch.randn(20, dim),
             "llama.layers.0.attention.gate": torch.zeros(1, 4, 1, 1)}
    torch.save({"model": state}, path)
