"""The state of a run: what differs between models (`Run`), and what makes a run resumable: the trained
tensors and the optimizer, schedule and RNG state, written atomically, read back exactly."""

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.tensor import DTensor

from ..checkpoints.names import from_upstream
from ..records import atomic_path
from .config import TrainConfig, to_plain


@dataclass
class Run:
    """What differs between training MU-LLaMA and MuMu-LLaMA (a recipe builds it); the loop is the same.

    step(network, batch) -> {"loss": what is backpropagated, and its components to log};
    write(path, tensors, extra): a checkpoint of `model.checkpoint_state()`; read(path): those tensors back.
    encoders: the frozen encoders the model holds (kept whole under FSDP, always in eval mode)."""

    model: torch.nn.Module
    dataset: torch.utils.data.Dataset
    collate: Callable
    step: Callable[[torch.nn.Module, dict], dict]
    write: Callable[[Path, dict, dict], None]
    read: Callable[[Path], dict]
    encoders: list = field(default_factory=list)
    report: dict = field(default_factory=dict)  # what a dry run and the log say of the data
    optional: set = field(default_factory=set)  # names of parameters a batch may not reach (all-zero gradients dropped)


def resolve_device(config: TrainConfig, local_rank: int = 0) -> str:
    if config.device != "auto":
        return config.device
    return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"


def make_optimizer(model: torch.nn.Module, config: TrainConfig, peak_lr: float) -> torch.optim.AdamW:
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if p.ndim > 1 and not n.endswith(".bias")]
    no_decay = [p for n, p in trained if p.ndim <= 1 or n.endswith(".bias")]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=peak_lr, betas=config.betas)


def save(run: Run, optimizer, position: dict, config: TrainConfig, out: Path, rank: int):
    """Trained tensors + optimizer/schedule/RNG state, each written atomically (temp file + rename).
    Every process calls it: under FSDP the shards are gathered into full tensors, written by rank 0."""
    # Only the checkpointed tensors are gathered, never the frozen base (get_model_state_dict would),
    # one at a time, so that no process holds more than one of them in full on its device.
    model, tensors = run.model, {}
    for name, value in model.checkpoint_state().items():
        value = value.full_tensor() if isinstance(value, DTensor) else value  # a collective under FSDP
        if rank == 0:
            tensors[name] = value.detach().float().cpu()
    optimizer_state = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True,
                                                                                         cpu_offload=True))
    if rank != 0:
        return
    # the checkpoint is NAME.safetensors and NAME.json: both temporary names, then both renamed
    with atomic_path(out / "checkpoint.safetensors") as tmp, atomic_path(out / "checkpoint.json"):
        run.write(tmp, tensors, {"train_config": to_plain(config), **position})
    state = {"optimizer": optimizer_state, "position": position, "torch_rng": torch.get_rng_state(),
             "python_rng": list(random.getstate()[1])}
    with atomic_path(out / "train_state.pt") as tmp:
        torch.save(state, tmp)


def restore(run: Run, optimizer, out: Path, rank: int) -> dict:
    """Load what `save` wrote into the model and optimizer (every process reads the full tensors; under
    FSDP each keeps its shard of them) and the RNGs; returns the position to go on from."""
    model = run.model
    full = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, run.read(out / "checkpoint.safetensors"), options=full)
    state = torch.load(out / "train_state.pt", weights_only=True)
    saved = with_model_names(state["optimizer"])
    set_optimizer_state_dict(model, optimizer, saved, options=full)
    # Loading first gives every parameter a state (torch takes a zero-gradient step); a parameter
    # no batch had reached yet (a MuMu bridge whose modality had not come up) must start afresh,
    # as in the uninterrupted run, or its Adam bias correction would count a step it never took.
    for name, param in model.named_parameters():
        if param.requires_grad and name not in saved["state"]:
            optimizer.state.pop(param, None)
    position = state["position"]
    torch.set_rng_state(state["torch_rng"])
    random.setstate((3, tuple(state["python_rng"]), None))
    if rank == 0:
        print(f"resumed from step {position['step']} (epoch {position['epoch']}, iteration "
              f"{position['iteration']})", file=sys.stderr)
    return position


def with_model_names(optimizer_state: dict) -> dict:
    """An optimizer state keyed by parameter name, with the bridge's tensors under the model's names
    (a train_state.pt written before the bridge became a module keys them as checkpoints do)."""
    return {"state": {from_upstream(k): v for k, v in optimizer_state["state"].items()},
            "param_groups": [{**g, "params": [from_upstream(k) for k in g["params"]]}
                             for g in optimizer_state["param_groups"]]}
