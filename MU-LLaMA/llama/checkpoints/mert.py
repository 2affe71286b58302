"""MERT checkpoint folders: config.json, model.safetensors or pytorch_model.bin, preprocessor_config.json."""

import torch

from ..encoders.mert import MERT, hubert_config
from ..files import CheckpointError, read_json, safetensors_load, torch_load
from ..paths import resolve


def load_mert(folder, device="cpu", dtype=torch.float32) -> MERT:
    """A MERT checkpoint folder: config.json, model.safetensors or pytorch_model.bin,
    preprocessor_config.json (sampling rate and `do_normalize`). Also a hub id or an HF cache folder.
    The sample rate comes from preprocessor_config.json (MERT-v1: 24 kHz, MERT-v0: 16 kHz), else
    from config.json's `sample_rate`, else 24 kHz."""
    folder = resolve(folder, "--mert_path")
    if folder.is_file():
        folder = folder.parent
    if not (folder / "config.json").exists():
        raise CheckpointError(f"{folder} is not a MERT checkpoint folder: no config.json (download e.g. "
                              "m-a-p/MERT-v1-330M into a folder and pass that folder as --mert_path)")
    try:
        raw = read_json(folder / "config.json")
        config = hubert_config(raw)
    except ValueError as e:
        raise CheckpointError(f"{folder / 'config.json'}: {e}") from e
    preprocessor = {}
    if (folder / "preprocessor_config.json").exists():
        preprocessor = read_json(folder / "preprocessor_config.json")
    present = [f for f in (folder / "model.safetensors", folder / "pytorch_model.bin") if f.exists() or f.is_symlink()]
    if not present:
        raise CheckpointError(f"{folder} has no model.safetensors or pytorch_model.bin")
    # a broken link (an HF cache whose blob is gone) gets its own message from the reader
    state = safetensors_load(present[0]) if present[0].suffix == ".safetensors" else torch_load(present[0])
    with torch.device("meta"):  # no random init; the (memory-mapped) checkpoint tensors are assigned
        mert = MERT(config, sample_rate=preprocessor.get("sampling_rate", raw.get("sample_rate", 24000)),
                    do_normalize=preprocessor.get("do_normalize", False))
    try:
        mert.model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"MERT weights in {folder} do not fit its config.json: {e}") from e
    return mert.to(device=device, dtype=dtype).requires_grad_(False).eval()
