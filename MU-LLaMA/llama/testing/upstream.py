"""The original code's checkpoint.pth, written from a MU-LLaMA state dict: the one writer of that
layout for tests and benchmarks."""

import argparse
import contextlib

import torch

from ..formats.mu_llama import is_trained_key
from ..mu_llama import to_upstream
from .tiny import mert_checkpoint_names


@contextlib.contextmanager
def saved_as_on_gpu():
    """torch.save tags every storage `cuda:0`, as the original training script's checkpoint.pth, written
    from a GPU, has them (loading it without map_location fails on a machine without one)."""
    registry = torch.serialization._package_registry
    entry = (0, lambda storage: "cuda:0", lambda obj, location: None)
    registry.insert(0, entry)
    try:
        yield
    finally:
        registry.remove(entry)


def write_upstream_checkpoint(state: dict, mert_state: dict, path, optimizer_state=None):
    """{"model": full state dict, "optimizer", "epoch", "scaler", "args"} as the original code saved it.

    state: a MULLaMA state dict (base weights included), under this project's names; written under the
      original's, the frozen base and the gates in fp16 (a tensor already in fp16 is not copied).
    mert_state: a HubertModel state dict, stored under MERT's own names (`mert_model.` prefix).
    optimizer_state: AdamW moments per finetuned tensor; default random ones of the right shapes.
    """
    model = {}
    for key, value in state.items():
        key = to_upstream(key)
        frozen_base = key.startswith("llama.") and not is_trained_key(key)
        model[key] = value.half() if frozen_base or key.endswith(".gate") else value
    model.update({f"mert_model.{k}": v for k, v in mert_checkpoint_names(mert_state).items()})
    if optimizer_state is None:
        finetuned = [v for k, v in model.items() if k.startswith("llama.") and is_trained_key(k)
                     and not k.endswith(".gate")]
        optimizer_state = {i: {"step": torch.tensor(10.0), "exp_avg": torch.randn_like(v.float()),
                               "exp_avg_sq": torch.rand_like(v.float())} for i, v in enumerate(finetuned)}
    optimizer = {"state": optimizer_state,
                 "param_groups": [{"lr": 1e-4, "weight_decay": 0.05, "params": list(optimizer_state)}]}
    args = argparse.Namespace(llama_type="7B", max_words=512, blr=1e-3, output_dir="./output")
    with saved_as_on_gpu():
        torch.save({"model": model, "optimizer": optimizer, "epoch": 19, "scaler": {"scale": 65536.0},
                    "args": args}, path)
