"""Tiny random MERT / MU-LLaMA checkpoints written in the released artefacts' on-disk formats."""

import argparse
import json
from pathlib import Path

import torch
from transformers import HubertModel

from llama import MULLaMA, MULLaMAConfig, save_meta
from llama.mert import hubert_config

from conftest import random_model, tiny_args

# The fields of MERT-v1-330M's config.json, at a tiny size.
MERT_CONFIG = {
    "architectures": ["MERTModel"], "model_type": "mert_model", "auto_map": {"AutoModel": "modeling_MERT.MERTModel"},
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
    "hidden_act": "gelu", "hidden_dropout": 0.0, "activation_dropout": 0.0, "attention_dropout": 0.0,
    "feat_proj_dropout": 0.0, "final_dropout": 0.0, "layerdrop": 0.0, "feat_proj_layer_norm": True,
    "feat_extract_norm": "group", "feat_extract_activation": "gelu", "conv_dim": [16] * 7,
    "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_bias": False,
    "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4, "do_stable_layer_norm": True,
    "layer_norm_eps": 1e-5, "apply_spec_augment": True, "mask_time_prob": 0.05, "mask_time_length": 10,
    "mask_time_min_masks": 2, "mask_feature_prob": 0.0, "attention_relax": 32.0, "feature_extractor_cqt": False,
    "deepnorm": False, "sample_rate": 24000, "vocab_size": 32, "transformers_version": "4.25.1",
}


def write_tiny_mert(folder: Path, seed: int = 0, do_normalize: bool = False, **overrides) -> HubertModel:
    """A MERT checkpoint folder (config.json, pytorch_model.bin with MERT's weight_g/weight_v names,
    preprocessor_config.json); returns the HubertModel holding the same weights."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {**MERT_CONFIG, **overrides}
    torch.manual_seed(seed)
    reference = HubertModel(hubert_config(config)).eval()
    state = {}
    for key, value in reference.state_dict().items():
        key = key.replace("conv.parametrizations.weight.original0", "conv.weight_g")
        key = key.replace("conv.parametrizations.weight.original1", "conv.weight_v")
        state[key] = value
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": do_normalize, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
        "padding_side": "right", "padding_value": 0, "return_attention_mask": True, "sampling_rate": 24000}))
    return reference


def tiny_mu_llama(phase: str = "finetune", seed: int = 0, query_layer: int = 2) -> MULLaMA:
    """A random MU-LLaMA (32k vocab, so the real SentencePiece tokenizer fits) with open gates,
    non-zero LoRA and biases, so that every trained tensor changes the output."""
    finetune = phase == "finetune"
    llama = random_model(tiny_args(vocab_size=32000, max_seq_len=512, w_bias=finetune, w_lora=finetune,
                                   lora_rank=4), seed=seed)
    config = MULLaMAConfig(phase=phase, query_layer=query_layer, mert_layers=MERT_CONFIG["num_hidden_layers"] + 1,
                           mert_dim=MERT_CONFIG["hidden_size"], bridge_width=96, lora_rank=4)
    model = MULLaMA(llama, None, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".gate") or ".lora_" in name or name.endswith(".bias"):
                p.normal_(0, 0.5)
            if name.endswith(".gate"):  # the release stores gates in fp16: use values it can hold
                p.copy_(p.half().float())
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
