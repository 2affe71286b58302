"""Every on-disk format, one module each: Meta LLaMA folders (`meta`), HF LLaMA folders (`hf`), GGUF files
(`gguf`, converted once), MERT folders (`mert`), the released MU-LLaMA and M2UGen checkpoints
(`mu_llama_release`, `m2ugen_release`) and this project's trained-tensors files (`safetensors`), with the
original's parameter names in one place (`names`). Tensors are read memory-mapped and pickles with
`weights_only=True` only; no model maths here.

`read_checkpoint` reads a model checkpoint once and says what it is: which model (MU-LLaMA or
MuMu-LLaMA), its trained tensors, its config and the base LLaMA a release carries; `loading.load` builds the
model from that one read.
"""

from dataclasses import dataclass
from pathlib import Path

from ..files import CheckpointError, safetensors_keys, torch_load
from ..model import ModelArgs
from ..mu_llama import MULLaMAConfig
from ..mumu_llama import MuMuConfig
from . import m2ugen_release, mu_llama_release
from .hf import read_hf
from .meta import read_meta
from .safetensors import config_kind, read_trained, save_trained

KINDS = {"mu_llama": "MU-LLaMA", "mumu_llama": "MuMu-LLaMA (M2UGen)"}


@dataclass
class Checkpoint:
    path: Path
    kind: str  # "mu_llama" or "mumu_llama"
    tensors: dict  # trained tensors under the model's names, memory-mapped
    config: MULLaMAConfig | MuMuConfig
    base: dict  # the base LLaMA a released checkpoint.pth carries, under Meta names ({} for this project's)


def read_llama(path, **overrides) -> tuple[ModelArgs, dict]:
    """(args, state dict with Meta names) of a Meta- or HF-format folder; tensors memory-mapped."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; expected a Meta LLaMA folder (params.json + "
                              "consolidated.*.pth) or an HF LLaMA folder (config.json + weights)")
    if (folder / "params.json").exists() or any(folder.glob("consolidated.*.pth")):
        return read_meta(folder, **overrides)
    if (folder / "config.json").exists():
        return read_hf(folder, **overrides)
    raise CheckpointError(f"{folder} holds neither params.json + consolidated.*.pth (Meta format) nor "
                          "config.json + weights (HF format)")


WRONG_KIND = {
    "mu_llama": "{path} is an M2UGen / MuMu-LLaMA checkpoint (it holds image and video bridges and an output "
                "projector), not MU-LLaMA: --model takes checkpoint.pth from the HF repository mu-llama/MU-LLaMA",
    "mumu_llama": "{path} is not an M2UGen / MuMu-LLaMA checkpoint: it is a MU-LLaMA checkpoint (pass it without "
                  "--vit_path/--vivit_path/--music_decoder)",
}


def read_checkpoint(path, kind: str | None = None) -> Checkpoint:
    """A MU-LLaMA or MuMu-LLaMA checkpoint, the kind told by its config (this project's .safetensors) or by
    its keys (a released checkpoint.pth), from one read of the file. `kind` ("mu_llama" or "mumu_llama"):
    the only kind the caller takes; another is refused, saying what the file is, before it is read whole."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        found = config_kind(path)
        if found is None:
            raise CheckpointError(other_model(path, safetensors_keys(path)) or f"{path} needs its config "
                                  f"{path.with_suffix('.json').name} beside it (MU-LLaMA or MuMu-LLaMA)")
        check_kind(path, found, kind)
        tensors, config = read_trained(path)
        return Checkpoint(path, found, tensors, config, {})
    ckpt = torch_load(path)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state dict (expected a dict with a 'model' entry)")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from the DDP-wrapped model
    if any(k.startswith(m2ugen_release.MUMU_ONLY) for k in state):
        check_kind(path, "mumu_llama", kind)
        return Checkpoint(path, "mumu_llama", *m2ugen_release.read_release(path, state, ckpt.get("args")))
    wrong = other_model(path, list(state))
    if wrong:
        raise CheckpointError(wrong)
    check_kind(path, "mu_llama", kind)
    return Checkpoint(path, "mu_llama", *mu_llama_release.read_release(path, state))


def check_kind(path: Path, found: str, wanted: str | None) -> None:
    if wanted is not None and found != wanted:
        raise CheckpointError(WRONG_KIND[wanted].format(path=path))


def read_mu_llama(path) -> tuple[dict, MULLaMAConfig]:
    """(trained tensors, config) of a MU-LLaMA checkpoint."""
    checkpoint = read_checkpoint(path, "mu_llama")
    return checkpoint.tensors, checkpoint.config


def read_mumu(path) -> tuple[dict, MuMuConfig, dict]:
    """(trained tensors, config, the base LLaMA a released checkpoint carries) of a MuMu-LLaMA checkpoint."""
    checkpoint = read_checkpoint(path, "mumu_llama")
    return checkpoint.tensors, checkpoint.config, checkpoint.base


save_mu_llama = save_mumu = save_trained  # one format for both: the config says which model


def other_model(path: Path, keys: list[str]) -> str | None:
    """What a file given as --model is, when it is another known checkpoint kind, and what to pass instead."""
    keys = set(keys)
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
