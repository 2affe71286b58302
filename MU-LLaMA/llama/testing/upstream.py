"""The original code's checkpoint.pth, written from a MU-LLaMA state dict: the one writer of that
layout for tests and benchmarks."""

import argparse
import contextlib

import torch

from ..checkpoints.names import is_trained_key, to_upstream
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

    state: a MU-LLaMA state dict (base weights included), under this project's names; written under the
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


def write_m2ugen_checkpoint(state: dict, frozen: dict, path, music_decoder: str = "musicgen", ddp: bool = True):
    """An M2UGen checkpoint.pth as the original's training wrote it: {"model": the complete state dict,
    "optimizer", "epoch", "scaler", "args": Namespace}.

    state: a MuMu-LLaMA state dict (LLaMA with 32008 rows, bridges, prefix, projector) under this
      project's names; written under the original's, with the frozen LLaMA (embedding included, as
      stage 3 leaves it) and the gates in fp16 and the rest in fp32, as a GPU run saves them.
    frozen: {prefix: state dict} of the frozen copies the original keeps inside (`mert_model` under
      the parametrised weight-norm names, `vit_model`, `vivit_model`, `generation_model`).
    ddp: keys under `module.`, as saved from the DistributedDataParallel-wrapped model.
    """
    model = {}
    for key, value in state.items():
        key = to_upstream(key)
        stage3_frozen = key.startswith("llama.") and (not is_trained_key(key, music_output=True)
                                                      or key.endswith("tok_embeddings.weight"))
        model[key] = value.half() if stage3_frozen or key.endswith(".gate") else value.float()
    for prefix, tensors in frozen.items():
        model.update({f"{prefix}.{k}": v for k, v in tensors.items()})
    if ddp:
        model = {f"module.{k}": v for k, v in model.items()}
    trained = [v for k, v in model.items() if ".lora_" in k or k.endswith("prefix_query.weight")]
    optimizer = {"state": {i: {"step": torch.tensor(3.0), "exp_avg": torch.randn_like(v.float()),
                               "exp_avg_sq": torch.rand_like(v.float())} for i, v in enumerate(trained)},
                 "param_groups": [{"lr": 1e-4, "weight_decay": 0.05, "params": list(range(len(trained)))}]}
    args = argparse.Namespace(llama_type="7B", max_words=1024, lr=1e-4, stage=3, music_decoder=music_decoder,
                              output_dir="./output_dir")
    with saved_as_on_gpu():
        torch.save({"model": model, "optimizer": optimizer, "epoch": 1, "scaler": {"scale": 65536.0},
                    "args": args}, path)
