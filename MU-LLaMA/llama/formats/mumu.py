"""MuMu-LLaMA (M2UGen) checkpoints: the released `checkpoint.pth` and this project's trained-tensors
safetensors (+ a JSON config beside it).

The released file is the complete state dict of the original model ({"model", "optimizer", "epoch",
"scaler", "args": Namespace}, 23-31 GB): its fp16 LLaMA (embedding and head with 32008 rows), MERT,
ViT, ViViT, the music decoder (`generation_model.*`), the bridges and the projector, under a
`module.` prefix when saved from DDP. It is memory-mapped and only the LLaMA, bridge, prefix and
projector tensors are touched: the optimizer state and the frozen encoder and decoder copies are
never read (the encoders and the decoder load from their own folders, which hold the same frozen
weights).

The safetensors file holds what stage training changes: the bridges, `prefix_query`, the projector,
the backbone's norms, biases, LoRA and gates, the whole embedding (trained in stages 1-2) and the
output head's rows for the added [AUD] tokens (random, never trained, but they decide when [AUD]
tokens are written; absent for a backbone whose head is its embedding, as SmolLM2's). A model trained
with only the embedding's [AUD] rows keeps those rows instead of the whole embedding. The rest of the
backbone comes from --llama_dir.
"""

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..files import CheckpointError, read_json, safetensors_load, torch_load
from ..model import is_added_parameter
from ..mumu_llama import AUDIO_TOKENS, BRIDGES, DECODER_CONDITIONING, MuMuConfig, from_upstream, to_upstream

HEAD_ROWS = "llama.output.added_rows"  # the head's [AUD] rows, in the safetensors file only
# The embedding's [AUD] rows alone, in place of the whole embedding, when training left the base rows as
# they were (train_embedding: audio_rows): the base rows then come from --llama_dir.
EMBEDDING_ROWS = "llama.tok_embeddings.added_rows"


def is_mumu_key(key: str) -> bool:
    """Whether a key (without `module.`) belongs to MuMu-LLaMA alone, not MU-LLaMA."""
    return key.startswith(("iu_vit_", "iu_vivit_", "output_projector."))


def is_trained_key(key: str) -> bool:
    """Whether a MuMu-LLaMA state-dict entry is one the training stages change (see module doc)."""
    prefixes = tuple(f"{prefix}_" for _, prefix in BRIDGES.values()) + ("prefix_query.", "output_projector.")
    if key.startswith(prefixes):
        return True
    return key.startswith("llama.") and (is_added_parameter(key) or key.endswith("norm.weight")
                                         or key == "llama.tok_embeddings.weight")


def read_mumu(path) -> tuple[dict, MuMuConfig, dict]:
    """(trained tensors under MuMuLLaMA's names, config, base LLaMA tensors under Meta names) of a
    MuMu-LLaMA checkpoint, memory-mapped. From the released checkpoint.pth the base is its own
    complete LLaMA (the original's inference takes every LLaMA weight from it); from safetensors
    the base is empty (it comes from --llama_dir) and the trained tensors carry `HEAD_ROWS`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"MuMu-LLaMA checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        config_file = path.with_suffix(".json")
        if not config_file.exists():
            raise CheckpointError(f"{path} needs its config {config_file.name} beside it")
        try:
            config = MuMuConfig(**read_json(config_file)["mumu_llama"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{config_file} is not a MuMu-LLaMA config: {e}") from e
        return {from_upstream(k): v for k, v in safetensors_load(path).items()}, config, {}
    ckpt = torch_load(path)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state dict (expected a dict with a 'model' entry)")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from the DDP-wrapped model
    required = ["prefix_query.weight", "mu_mert_agg.weight", "iu_vit_agg.weight", "iu_vivit_agg.weight",
                "mu_mert_proj.weight", "iu_vit_proj.weight", "iu_vivit_proj.weight", "mu_mert_f1_1.weight",
                "output_projector.query_embs", "output_projector.model.weight", "llama.tok_embeddings.weight"]
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not an M2UGen / MuMu-LLaMA checkpoint: it lacks {missing[:4]}"
                              + (" (it looks like a MU-LLaMA checkpoint: pass it without --vit_path/--vivit_path/"
                                 "--music_decoder)" if not any(is_mumu_key(k) for k in state) else ""))
    config = config_from_shapes(state, ckpt.get("args") if isinstance(ckpt, dict) else None)
    tensors = {from_upstream(k): v for k, v in state.items() if is_trained_key(k)}
    base = {k.removeprefix("llama."): v for k, v in state.items()
            if k.startswith("llama.") and not is_added_parameter(k) and torch.is_tensor(v)}
    return tensors, config, base


def config_from_shapes(state: dict, args) -> MuMuConfig:
    """The MuMuConfig of an original state dict: every size from a tensor shape, the decoder from the
    saved arguments (`args.music_decoder`) or else from the projector's width."""
    lora = [v for k, v in state.items() if k.startswith("llama.") and k.endswith("_l1.weight")]
    out = state["output_projector.model.weight"].shape[0]
    decoder = getattr(args, "music_decoder", None) if isinstance(args, argparse.Namespace) else None
    if decoder not in DECODER_CONDITIONING:
        decoder = next((d for d, (_, width) in DECODER_CONDITIONING.items() if width == out), "musicgen")
    return MuMuConfig(
        query_layer=state["prefix_query.weight"].shape[0] // 3,
        mert_layers=state["mu_mert_agg.weight"].shape[1], mert_dim=state["mu_mert_proj.weight"].shape[1],
        vit_tokens=state["iu_vit_agg.weight"].shape[1], vit_dim=state["iu_vit_proj.weight"].shape[1],
        vivit_tokens=state["iu_vivit_agg.weight"].shape[1], vivit_dim=state["iu_vivit_proj.weight"].shape[1],
        bridge_width=state["mu_mert_f1_1.weight"].shape[0], lora_rank=lora[0].shape[0] if lora else 16,
        music_decoder=decoder, projector_queries=state["output_projector.query_embs"].shape[1],
        projector_out=out, projector_width=state["output_projector.fc.weight"].shape[0],
        projector_layers=len({k.split(".")[4] for k in state if k.startswith("output_projector.tfm.encoder.layers.")}),
        prompt_template="alpaca")


def trained_state(tensors: dict, base: dict) -> dict:
    """What the safetensors file keeps of a checkpoint.pth: its trained tensors and the head's [AUD] rows."""
    head = base["output.weight"]
    return {**tensors, HEAD_ROWS: head[head.shape[0] - len(AUDIO_TOKENS):]}


def save_mumu(path, tensors: dict, config: MuMuConfig, **extra):
    """Trained tensors (MuMuLLaMA's names) to `path` (safetensors, the original's names) and the config
    to `path` with a .json suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({to_upstream(k): v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})
    path.with_suffix(".json").write_text(json.dumps({"mumu_llama": config.to_dict(), **extra}, indent=2))


def is_mumu_checkpoint(path) -> bool:
    """Whether `path` is a MuMu-LLaMA checkpoint (by its JSON config or its keys), without reading tensors."""
    path = Path(path)
    if path.suffix == ".safetensors":
        config = path.with_suffix(".json")
        return config.exists() and "mumu_llama" in json.loads(config.read_text())
    if not path.is_file():
        return False
    ckpt = torch_load(path)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else {}
    return isinstance(state, dict) and any(is_mumu_key(k.removeprefix("module.")) for k in state)
