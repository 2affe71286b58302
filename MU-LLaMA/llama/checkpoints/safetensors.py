"""This project's checkpoint format, for MU-LLaMA and MuMu-LLaMA alike: the trained tensors only, in
safetensors under the original's names (names.py), and the model config as JSON beside it
(`checkpoint.json`: {"mu_llama": MULLaMAConfig} or {"mumu_llama": MuMuConfig}, and what training adds).
The frozen base comes from --llama_dir. A MuMu-LLaMA file also holds the output head's rows for the [AUD]
tokens (random, never trained, but they decide when [AUD] tokens are written; absent for a backbone whose
head is its embedding, as SmolLM2's), and the whole embedding (trained in stages 1-2), or, when training
left its base rows as they were (train_embedding: audio_rows), its [AUD] rows alone."""

import json
from pathlib import Path

from safetensors.torch import save_file

from ..files import CheckpointError, read_json, safetensors_load
from ..mu_llama import MULLaMAConfig
from ..mumu_llama import AUDIO_TOKENS, MuMuConfig
from .names import from_upstream, to_upstream

HEAD_ROWS = "llama.output.added_rows"  # the head's [AUD] rows
EMBEDDING_ROWS = "llama.tok_embeddings.added_rows"  # the embedding's [AUD] rows, in place of the whole embedding
CONFIGS = {"mu_llama": MULLaMAConfig, "mumu_llama": MuMuConfig}  # the JSON key of each kind's config


def config_kind(path) -> str | None:
    """"mu_llama" or "mumu_llama": which config the JSON beside `path` holds (None without one)."""
    config_file = Path(path).with_suffix(".json")
    if not config_file.exists():
        return None
    return next((key for key in CONFIGS if key in read_json(config_file)), None)


def read_trained(path: Path) -> tuple[dict, MULLaMAConfig | MuMuConfig]:
    """(trained tensors under the model's names, config)."""
    config_file = path.with_suffix(".json")
    if not config_file.exists():
        raise CheckpointError(f"{path} needs its config {config_file.name} beside it")
    raw = read_json(config_file)
    key = next((key for key in CONFIGS if key in raw), None)
    try:
        config = CONFIGS[key](**raw[key])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{config_file} is not a MU-LLaMA or MuMu-LLaMA config: {e}") from e
    return {from_upstream(k): v for k, v in safetensors_load(path).items()}, config


def trained_state(tensors: dict, base: dict) -> dict:
    """What this format keeps of a released M2UGen checkpoint: its trained tensors and the head's [AUD] rows."""
    head = base["output.weight"]
    return {**tensors, HEAD_ROWS: head[head.shape[0] - len(AUDIO_TOKENS):]}


def save_trained(path, tensors: dict, config: MULLaMAConfig | MuMuConfig, **extra):
    """Trained tensors (the model's names) to `path` (safetensors, the original's names) and the config to
    `path` with a .json suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({to_upstream(k): v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})
    key = next(k for k, kind in CONFIGS.items() if isinstance(config, kind))
    path.with_suffix(".json").write_text(json.dumps({key: config.to_dict(), **extra}, indent=2))
