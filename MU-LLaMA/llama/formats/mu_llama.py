"""MU-LLaMA checkpoints: the original code's checkpoint.pth and this project's trained-tensors-only
safetensors (+ a JSON config beside it). Both spell parameters as the original code does
(`mu_mert_f1_1.weight`); readers and writers translate to and from MULLaMA's names.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..files import CheckpointError, read_json, safetensors_keys, safetensors_load, torch_load
from ..model import is_added_parameter
from ..mu_llama import BRIDGES, MULLaMAConfig, from_upstream, to_upstream


def is_trained_key(key: str) -> bool:
    """Whether a checkpoint.pth entry is a trained tensor, by its name (there is no model yet to ask):
    a bridge, the prefix, or the backbone's gates, norms, biases and LoRA. The same set as
    MULLaMA.checkpointed_names(), which a test holds it to."""
    if key.startswith(tuple(f"{prefix}_" for prefix in BRIDGES.values()) + ("prefix_query.",)):
        return True
    return key.startswith("llama.") and (is_added_parameter(key) or key.endswith("norm.weight"))


def read_mu_llama(path) -> tuple[dict, MULLaMAConfig]:
    """(trained tensors under MULLaMA's parameter names, config) of a MU-LLaMA checkpoint.

    `*.safetensors` (+ the `.json` beside it): this project's format. Anything else is read as the
    original code's `checkpoint.pth` ({"model": full state dict, "optimizer", "args", ...}),
    memory-mapped: only the trained tensors are touched, never the optimizer state or the copies of
    LLaMA and MERT inside it. Its sizes come from tensor shapes, its template is "upstream".
    """
    tensors, config, _ = read_mu_llama_with_base(path)
    return tensors, config


def read_mu_llama_with_base(path) -> tuple[dict, MULLaMAConfig, dict]:
    """As `read_mu_llama`, plus the frozen base LLaMA tensors the original's checkpoint.pth carries
    ({Meta name: memory-mapped tensor}; empty for this project's safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"MU-LLaMA checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        config_file = path.with_suffix(".json")
        if not config_file.exists():
            raise CheckpointError(_not_mu_llama(path, safetensors_keys(path))
                                  or f"{path} needs its config {config_file.name} beside it")
        try:
            config = MULLaMAConfig(**read_json(config_file)["mu_llama"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{config_file} is not a MU-LLaMA config: {e}") from e
        return {from_upstream(k): v for k, v in safetensors_load(path).items()}, config, {}
    ckpt = torch_load(path)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state dict (expected a dict with a 'model' entry)")
    wrong = _not_mu_llama(path, list(state))
    if wrong:
        raise CheckpointError(wrong)
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


def _not_mu_llama(path: Path, keys: list[str]) -> str | None:
    """What a file given as --model is, when it is another known checkpoint kind, and what to pass instead."""
    keys = set(keys)
    if any(k.startswith(("iu_vit_", "iu_vivit_", "output_projector.")) for k in keys):
        return (f"{path} is an M2UGen / MuMu-LLaMA checkpoint (it holds image and video bridges and an output "
                "projector), not MU-LLaMA: --model takes checkpoint.pth from the HF repository mu-llama/MU-LLaMA")
    if any(k.startswith("image_bind_") for k in keys):
        return (f"{path} is the ImageBind-LLM (LLaMA-Adapter) checkpoint, the 7B.pth baseline that ships beside "
                "MU-LLaMA's, not MU-LLaMA: --model takes checkpoint.pth from the HF repository mu-llama/MU-LLaMA")
    if {"tok_embeddings.weight", "layers.0.attention.wq.weight"} & keys:
        return (f"{path} holds base LLaMA weights (a Meta shard), not MU-LLaMA: pass its folder as --llama_dir, "
                "and the MU-LLaMA checkpoint.pth (HF mu-llama/MU-LLaMA) as --model")
    if {"model.embed_tokens.weight", "lm_head.weight"} & keys:
        return (f"{path} holds base LLaMA weights in HF format, not MU-LLaMA: pass its folder as --llama_dir, "
                "and the MU-LLaMA checkpoint.pth (HF mu-llama/MU-LLaMA) as --model")
    if any(k.startswith("feature_extractor.conv_layers.") for k in keys):
        return (f"{path} holds MERT weights, not MU-LLaMA: pass its folder as --mert_path, and the MU-LLaMA "
                "checkpoint.pth (HF mu-llama/MU-LLaMA) as --model")
    return None


def save_mu_llama(path, tensors: dict, config, **extra):
    """Trained tensors (MULLaMA's names) to `path` (safetensors, the original code's names) and the
    config to `path` with a .json suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({to_upstream(k): v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})
    path.with_suffix(".json").write_text(json.dumps({"mu_llama": config.to_dict(), **extra}, indent=2))
