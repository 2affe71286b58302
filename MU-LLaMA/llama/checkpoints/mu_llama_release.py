"""The released MU-LLaMA `checkpoint.pth` (HF mu-llama/MU-LLaMA): {"model": the complete state dict,
"optimizer", "args": Namespace, ...}, memory-mapped: only the trained tensors are touched, never the
optimizer state or the copies of MERT inside it. Its sizes come from tensor shapes, its template is
"upstream"."""

from pathlib import Path

import torch

from ..files import CheckpointError
from ..mu_llama import MULLaMAConfig
from .names import from_upstream, is_trained_key


def read_release(path: Path, state: dict) -> tuple[dict, MULLaMAConfig, dict]:
    """(trained tensors under the model's names, config, the base LLaMA tensors it carries under Meta names)
    of the release's state dict."""
    tensors = {k: v for k, v in state.items() if is_trained_key(k)}
    required = ["prefix_query.weight", "mu_mert_agg.weight", "mu_mert_proj.weight", "mu_mert_f1_1.weight"]
    missing = [k for k in required if k not in tensors]
    if missing:
        raise CheckpointError(f"{path} is not a MU-LLaMA checkpoint: it lacks {missing}")
    lora = [v for k, v in tensors.items() if k.endswith("_l1.weight")]
    config = MULLaMAConfig(
        phase="finetune" if lora else "pretrain",
        query_layer=tensors["prefix_query.weight"].shape[0],
        mert_layers=tensors["mu_mert_agg.weight"].shape[1],
        mert_dim=tensors["mu_mert_proj.weight"].shape[1],
        bridge_width=tensors["mu_mert_f1_1.weight"].shape[0],
        lora_rank=lora[0].shape[0] if lora else 16,
        prompt_template="upstream",
    )
    base = {k.removeprefix("llama."): v for k, v in state.items()
            if k.startswith("llama.") and not is_trained_key(k) and torch.is_tensor(v)}
    return {from_upstream(k): v for k, v in tensors.items()}, config, base
