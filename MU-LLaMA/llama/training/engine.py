"""One training engine for every phase: the model built from a TrainConfig, the data mixed as it
says, one process or several (DDP, or FSDP2 with `fsdp: true`), gradient accumulation, autocast,
atomic checkpoints of the trained tensors and a resumable optimizer/schedule/RNG state.
"""

import contextlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler
from torch.distributed.tensor import DTensor
from tqdm import tqdm

from ..build import mu_llama
from ..data.cache_features import FeatureCache
from ..data.dataset import MusicQADataset, SubEpochSampler, collate, load_records, mix, report_source
from ..formats.mert import load_mert
from ..formats.mu_llama import read_mu_llama, save_mu_llama
from ..mu_llama import MULLaMA, MULLaMAConfig, from_upstream
from ..prompt import IGNORE_INDEX
from ..records import atomic_path
from ..tokenizer import Tokenizer
from .config import TrainConfig, lr_at, to_plain
from .start import keep_pretrained


def init_distributed() -> tuple[int, int, int]:
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # FSDP and NCCL place their buffers on the current device
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


@dataclass
class Run:
    """What differs between training MU-LLaMA and MuMu-LLaMA; the loop (`train`) is the same.

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


def mu_llama_run(config: TrainConfig, device) -> Run:
    cache = FeatureCache(config.feature_cache) if config.feature_cache else None
    model, tokenizer, started = build_model(config, device, cache)
    dataset, report = build_data(config, tokenizer, cache, model.sample_rate)
    if started:
        report["pretrained"] = started
    collate_fn = partial(collate, pad_id=max(tokenizer.pad_id, 0),
                         feature_shape=(model.config.mert_layers, model.config.mert_dim))

    def step(network, batch):
        means = (batch["layer_means"].to(device) if "layer_means" in batch
                 else model.encode_audio(batch["audio"]).to(device))
        return {"loss": network(batch["tokens"].to(device), means, batch["labels"].to(device))}

    def write(path, tensors, extra):
        save_mu_llama(path, tensors, model.config, **extra)

    return Run(model, dataset, collate_fn, step, write, lambda path: read_mu_llama(path)[0],
               [model.mert] if model.mert is not None else [], report)


def build_model(config: TrainConfig, device, feature_cache: FeatureCache | None) -> tuple[MULLaMA, Tokenizer, dict]:
    # With a feature cache MERT is not needed: cached clips bring their features, text-only ones zeros.
    mert = load_mert(config.mert_path, device=device) if feature_cache is None else None
    layers, hidden = ((mert.num_layers, mert.hidden_size) if mert is not None
                      else (feature_cache.meta["layers"], feature_cache.meta["hidden"]))
    model_config = MULLaMAConfig(phase=config.phase, query_layer=config.query_layer, mert_layers=layers,
                                 mert_dim=hidden, bridge_width=config.bridge_width, lora_rank=config.lora_rank,
                                 prompt_template=config.prompt_template)
    model, tokenizer = mu_llama(model_config, config.llama_path, mert, llama_type=config.llama_type, device=device,
                                dtype=getattr(torch, config.base_dtype), seed=config.seed)
    model.llama.checkpointing = config.grad_checkpointing
    started = {}
    if config.pretrained_path:
        kept, started = keep_pretrained(read_mu_llama(config.pretrained_path)[0], config.pretrained_keep,
                                        config.pretrained_path)
        model.load_state_dict({k: v.to(device) for k, v in kept.items()}, strict=False)
    model.set_phase(config.phase)
    return model, tokenizer, started


def build_data(config: TrainConfig, tokenizer: Tokenizer, cache: FeatureCache | None, sample_rate: int):
    """(the mixed dataset of every source, the data report)."""
    datasets, report = [], []
    for source in config.data:
        records, problems = load_records(source.path, source.audio_root, source.kind)
        report.append(report_source(source.path, source.kind, len(records) + sum(problems.values()), len(records),
                                    problems))
        datasets.append(MusicQADataset(records, tokenizer, config.max_words, config.prompt_template, cache,
                                       config.text_only_audio, sample_rate, config.tokenization, config.answer_eos))
    ratios = [d.ratio for d in config.data]
    if any(r is not None for r in ratios) and not all(r is not None for r in ratios):
        raise SystemExit("give a ratio for every data source, or for none (plain concatenation)")
    return mix(datasets, ratios if ratios[0] is not None else None, config.seed), {"data": report}


def distribute(run: Run, config: TrainConfig, world: int, local_rank: int, device: str) -> torch.nn.Module:
    """What the training loop calls: the model itself on one process; with several, a DDP replica of
    it or, with `fsdp`, the model sharded in place by FSDP2 (its parameters become DTensor shards,
    so the optimizer is built after this)."""
    model = run.model
    if world == 1:
        if config.fsdp:
            print("fsdp: true has nothing to shard over in a single process; training unsharded", file=sys.stderr)
        return model
    if config.fsdp:
        # One all-gather unit per block; the root unit holds the rest (embeddings, output, bridges).
        # No MixedPrecisionPolicy: each parameter keeps its dtype (base in base_dtype, trained tensors
        # fp32, so gradients are reduced in fp32) and autocast casts the compute, as without FSDP.
        for block in model.llama.layers:
            fully_shard(block)
        # Encoders stay whole on every process: they run outside forward, where FSDP gathers nothing.
        ignored = {p for encoder in run.encoders for p in encoder.parameters()}
        fully_shard(model, ignored_params=ignored or None)
        return model
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen)
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[local_rank] if device.startswith("cuda") else None, find_unused_parameters=True)


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


def with_model_names(optimizer_state: dict) -> dict:
    """An optimizer state keyed by parameter name, with the bridge's tensors under MULLaMA's names
    (a train_state.pt written before the bridge became a module keys them as checkpoints do)."""
    return {"state": {from_upstream(k): v for k, v in optimizer_state["state"].items()},
            "param_groups": [{**g, "params": [from_upstream(k) for k in g["params"]]}
                             for g in optimizer_state["param_groups"]]}


def build_run(config: TrainConfig, device) -> Run:
    if config.model == "mumu":
        from .mumu import mumu_run  # MuMu-LLaMA's encoders and decoders load only when trained

        return mumu_run(config, device)
    return mu_llama_run(config, device)


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

    network = distribute(run, config, world, local_rank, device)
    effective_batch = config.batch_size * config.accum_iter * world
    peak_lr = config.lr if config.lr is not None else config.blr * effective_batch / 256
    optimizer = make_optimizer(model, config, peak_lr)
    optional = [p for n, p in model.named_parameters() if n in run.optional and p.requires_grad]  # after sharding
    position = {"epoch": 0, "iteration": 0, "step": 0}
    if resume and (out / "train_state.pt").exists():
        # Every process reads the full tensors; under FSDP each keeps its shard of them.
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
