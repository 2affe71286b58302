"""The released M2UGen (MuMu-LLaMA) `checkpoint.pth`: the complete state dict of the original model
({"model", "optimizer", "epoch", "scaler", "args": Namespace}, 23-31 GB): its fp16 LLaMA (embedding and
head with 32008 rows), MERT, ViT, ViViT, the music decoder (`generation_model.*`), the bridges and the
projector, under a `module.` prefix when saved from DDP. It is memory-mapped and only the LLaMA, bridge,
prefix and projector tensors are touched: the optimizer state and the frozen encoder and decoder copies
are never read (the encoders and the decoder load from their own folders, which hold the same frozen
weights)."""

import argparse
from pathlib import Path

import torch

from ..decoders.base import DECODER_CONDITIONING
from ..files import CheckpointError
from ..model import is_added_parameter
from ..mumu_llama import MuMuConfig
from .names import from_upstream, is_trained_key

MUMU_ONLY = ("iu_vit_", "iu_vivit_", "output_projector.")  # keys MuMu-LLaMA has and MU-LLaMA lacks


def read_release(path: Path, state: dict, args) -> tuple[dict, MuMuConfig, dict]:
    """(trained tensors under the model's names, config, the release's complete base LLaMA under Meta names:
    the original's inference takes every LLaMA weight from it) of the release's state dict (`module.`
    already stripped)."""
    required = ["prefix_query.weight", "mu_mert_agg.weight", "iu_vit_agg.weight", "iu_vivit_agg.weight",
                "mu_mert_proj.weight", "iu_vit_proj.weight", "iu_vivit_proj.weight", "mu_mert_f1_1.weight",
                "output_projector.query_embs", "output_projector.model.weight", "llama.tok_embeddings.weight"]
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not an M2UGen / MuMu-LLaMA checkpoint: it lacks {missing[:4]}")
    tensors = {from_upstream(k): v for k, v in state.items() if is_trained_key(k, music_output=True)}
    base = {k.removeprefix("llama."): v for k, v in state.items()
            if k.startswith("llama.") and not is_added_parameter(k) and torch.is_tensor(v)}
    return tensors, config_from_shapes(state, args), base


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
