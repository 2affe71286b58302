"""The training loop, the same for every model and stage: the run a recipe builds (MU-LLaMA's in
`mu_llama`, MuMu-LLaMA's in `mumu`), the data mixed as the config says, one process or several (DDP, or
FSDP2 with `fsdp: true`), gradient accumulation, autocast, and atomic, resumable checkpoints (`run`).
"""

import contextlib
import json
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.distributed.fsdp import FSDPModule
from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler
from tqdm import tqdm

from ..data.dataset import SubEpochSampler
from ..prompt import IGNORE_INDEX
from .config import TrainConfig, lr_at, to_plain
from .distributed import distribute, drop_unreached, init_distributed, keep_every_part
from .run import Run, make_optimizer, resolve_device, restore, save


def build_run(config: TrainConfig, device) -> Run:
    """The model's recipe: MuMu-LLaMA's encoders and decoders load only when it is trained."""
    if config.model == "mumu":
        from .mumu import mumu_run

        return mumu_run(config, device)
    from .mu_llama import mu_llama_run

    return mu_llama_run(config, device)


def dry_run(config: TrainConfig) -> dict:
    """Build everything a run builds, compute the first batch's loss by component (no step, no file
    written) and return it with the trainable parameter count and the data report."""
    device = resolve_device(config)
    run = build_run(config, device)
    sampler = SubEpochSampler(len(run.dataset), config.split_epoch, 0, 1, config.seed)
    first = [run.dataset[i] for i in sampler.indices()[:config.batch_size]]
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[config.precision]
    run.model.train()
    for encoder in run.encoders:
        encoder.eval()
    with torch.no_grad(), torch.autocast(torch.device(device).type, dtype=autocast_dtype,
                                         enabled=autocast_dtype is not None):
        losses = run.step(run.model, run.collate(first))
    trainable = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
    return {"first_batch": {k: float(v) for k, v in losses.items()}, "trainable_parameters": trainable,
            "samples": len(run.dataset), **run.report}


def train(config: TrainConfig, resume: bool = False):
    rank, world, local_rank = init_distributed()
    device = resolve_device(config, local_rank)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (out / "config.yaml").write_text(yaml.safe_dump(to_plain(config), sort_keys=False))
    run = build_run(config, device)
    model, dataset = run.model, run.dataset
    log_file = out / "log.jsonl"
    if rank == 0 and run.report:
        with log_file.open("a") as f:
            f.write(json.dumps(run.report) + "\n")
    sampler = SubEpochSampler(len(dataset), config.split_epoch, rank, world, config.seed)
    loader_args = dict(batch_size=config.batch_size, collate_fn=run.collate, num_workers=config.num_workers,
                       drop_last=True)

    keep_every_part(model)
    network = distribute(model, run.encoders, config.fsdp, world, local_rank, device)
    effective_batch = config.batch_size * config.accum_iter * world
    peak_lr = config.lr if config.lr is not None else config.blr * effective_batch / 256
    optimizer = make_optimizer(model, config, peak_lr)
    optional = [p for n, p in model.named_parameters() if n in run.optional and p.requires_grad]  # after sharding
    position = {"epoch": 0, "iteration": 0, "step": 0}
    if resume and (out / "train_state.pt").exists():
        position = restore(run, optimizer, out, rank)

    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[config.precision]
    sharded = isinstance(network, FSDPModule)
    # Under FSDP each process sees only its shard of the gradients: the scaler agrees on inf/nan over all.
    scaler = (ShardedGradScaler if sharded else torch.amp.GradScaler)(enabled=config.precision == "fp16")
    device_type = torch.device(device).type

    model.train()
    for encoder in run.encoders:
        encoder.eval()  # frozen and deterministic: no SpecAugment masking or dropout (see cache_features.py)
    for epoch in range(position["epoch"], config.epochs):
        sampler.set_epoch(epoch)
        start = position["iteration"] if epoch == position["epoch"] else 0
        indices = sampler.indices()[start * config.batch_size:]
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), **loader_args)
        iterations = len(sampler) // config.batch_size
        optimizer.zero_grad(set_to_none=True)  # micro-batches left over at an epoch's end are dropped
        tick, tokens_seen, losses = time.perf_counter(), 0, []
        progress = tqdm(loader, initial=start, total=iterations, desc=f"epoch {epoch}", disable=rank != 0,
                        leave=False, mininterval=2.0)
        for it, batch in enumerate(progress, start=start):
            if it % config.accum_iter == 0:
                lr = lr_at(config, peak_lr, epoch + it / iterations)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            last_micro = (it + 1) % config.accum_iter == 0
            # gradients are reduced over processes once per optimizer step, not per micro-batch
            if sharded:
                network.set_requires_gradient_sync(last_micro)
            with network.no_sync() if world > 1 and not sharded and not last_micro else contextlib.nullcontext():
                with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    parts = run.step(network, batch)
                loss = parts["loss"]
                if not math.isfinite(loss.item()):
                    raise SystemExit(f"loss is {loss.item()} at epoch {epoch}, iteration {it}; stopping")
                scaler.scale(loss / config.accum_iter).backward()
            losses.append({k: v.item() for k, v in parts.items()})
            tokens_seen += int((batch["labels"] != IGNORE_INDEX).sum()) * world
            if not last_micro:
                continue
            drop_unreached(optional, world, device)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            position = {"epoch": epoch, "iteration": it + 1, "step": position["step"] + 1}
            step = position["step"]
            if step % config.log_every == 0:
                means = torch.tensor([[row[k] for k in losses[0]] for row in losses]).mean(0)
                if world > 1:  # log the loss of the whole batch, not of rank 0's share
                    dist.all_reduce(means)
                    means /= world
                seconds = time.perf_counter() - tick
                record = {"step": step, "epoch": round(epoch + (it + 1) / iterations, 4),
                          **dict(zip(losses[0], means.tolist(), strict=True)), "lr": lr,
                          "tokens_per_s": tokens_seen / seconds,
                          "samples_per_s": len(losses) * config.batch_size * world / seconds}
                if rank == 0:
                    with log_file.open("a") as f:
                        f.write(json.dumps(record) + "\n")
                    progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}")
                tick, tokens_seen, losses = time.perf_counter(), 0, []
            stop = config.max_steps is not None and step >= config.max_steps
            if stop or step % config.save_every == 0:
                save(run, optimizer, position, config, out, rank)
            if stop:
                return model
        position = {"epoch": epoch + 1, "iteration": 0, "step": position["step"]}
    save(run, optimizer, position, config, out, rank)
    if world > 1:
        dist.barrier()
    return model
