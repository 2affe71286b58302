"""Training on several processes: one per GPU under torchrun (gloo on CPUs), the model replicated (DDP) or
sharded (FSDP2), and what makes every process reduce the same gradients whatever its batch holds."""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from ..multimodal import AUDIO_TOKENS


def init_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank): the process group of a torchrun launch, or one process."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # FSDP and NCCL place their buffers on the current device
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


def shutdown_distributed() -> None:
    """Close the process group before the process exits: exiting with gloo's threads still running aborts
    a rank now and then ("terminate called without an active exception", exit -6)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def distribute(model: torch.nn.Module, encoders: list, fsdp: bool, world: int, local_rank: int,
               device: str) -> torch.nn.Module:
    """What the training loop calls: the model itself on one process; with several, a DDP replica of
    it or, with `fsdp`, the model sharded in place by FSDP2 (its parameters become DTensor shards,
    so the optimizer is built after this)."""
    if world == 1:
        if fsdp:
            print("fsdp: true has nothing to shard over in a single process; training unsharded", file=sys.stderr)
        return model
    if fsdp:
        # One all-gather unit per block; the root unit holds the rest (embeddings, output, bridges).
        # No MixedPrecisionPolicy: each parameter keeps its dtype (base in base_dtype, trained tensors
        # fp32, so gradients are reduced in fp32) and autocast casts the compute, as without FSDP.
        for block in model.llama.layers:
            fully_shard(block)
        # Encoders stay whole on every process: they run outside forward, where FSDP gathers nothing.
        ignored = {p for encoder in encoders for p in encoder.parameters()}
        fully_shard(model, ignored_params=ignored or None)
        return model
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen)
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[local_rank] if device.startswith("cuda") else None, find_unused_parameters=True)


def keep_every_part(model) -> None:
    """Every bridge and the projector take part in every training forward, weighted 0 where the batch has no
    input for them (or no music answer): under FSDP each process then reduces the same gradients whatever
    its batch holds. `drop_unreached` drops such all-zero gradients, so AdamW skips them as if never computed.
    A forward hook, registered before the model is sharded, so that it runs while the parameters are whole."""

    def hook(module, args, output):
        if not torch.is_grad_enabled():
            return output
        tokens, labels, inputs, *rest = args
        targets = rest[0] if rest else None
        zeros = module.prefix_query.weight.new_zeros
        idle = sum(0 * module.features(m, zeros(1, *module.config.encoder_shape(m))).sum()
                   for m in module.modalities if m not in inputs)
        music = targets is not None and bool((labels == module.audio_token_ids[0]).any())
        if module.output_projector is not None and not music:
            idle = idle + 0 * module.project(zeros(1, len(AUDIO_TOKENS), module.llama.args.dim)).sum()
        ce, mse = output
        return ce + idle, mse

    model.register_forward_hook(hook)


def drop_unreached(params: list, world: int, device) -> None:
    """Drop the gradients of parameters no micro-batch on any process reached (all zero everywhere), so
    that AdamW skips them (no weight decay, no moment update) as it skips a parameter without gradient.
    Decided over all processes: a shard can be all zero (or empty) on one process and not on another."""
    if not params:
        return
    local = [p.grad.to_local() if isinstance(p.grad, DTensor) else p.grad for p in params]
    reached = torch.tensor([bool(g is not None and g.any()) for g in local], dtype=torch.float32, device=device)
    if world > 1:
        dist.all_reduce(reached, op=dist.ReduceOp.MAX)
    for param, flag in zip(params, reached.tolist(), strict=True):
        if not flag:
            param.grad = None
