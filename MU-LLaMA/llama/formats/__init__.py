"""On-disk formats, one module each: Meta LLaMA folders (`meta`), HF LLaMA folders (`hf`), GGUF files
(`gguf`, converted once), MERT folders (`mert`) and MU-LLaMA checkpoints (`mu_llama`: the released
checkpoint.pth and this project's trained-tensors-only safetensors). Tensors are read
memory-mapped and pickles with `weights_only=True` only; no model maths here.
"""

from pathlib import Path

from ..files import CheckpointError
from ..model import ModelArgs
from .hf import read_hf
from .meta import read_meta


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
