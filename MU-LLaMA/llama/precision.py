"""Which precision a model runs in: the dtype `--dtype auto` picks for a device, and int8 weight-only
quantisation of the LLaMA backbone (torchao) for a 7B model on a 16 GB GPU or in CPU memory."""

import os
import platform
from pathlib import Path

import torch

from .model import Attention, FeedForward, Transformer


def cpu_info() -> str:
    """This machine's /proc/cpuinfo ("" where there is none: not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_name() -> str:
    """The CPU's model name, as benchmarks print beside their figures."""
    names = [line.split(":", 1)[1].strip() for line in cpu_info().splitlines() if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown CPU"


# Overrides the CPU-feature check: "1" treats this CPU as one with bf16 matrix units, "0" as one without
# (tests pin it, so that their outcome does not depend on the CPU that runs them; a user can force either).
BF16_UNITS_VARIABLE = "MU_LLAMA_CPU_BF16"


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX or AVX512-BF16): without
    them, bf16 weights decode slower than float32 (docs/performance.md, Precision). $MU_LLAMA_CPU_BF16 (0 or 1)
    overrides what the CPU reports."""
    forced = os.environ.get(BF16_UNITS_VARIABLE)
    if forced is not None:
        if forced not in ("0", "1"):
            raise ValueError(f"{BF16_UNITS_VARIABLE} must be 0 or 1, not {forced!r}")
        return forced == "1"
    flags = cpu_info()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def auto_dtype(device: str) -> torch.dtype:
    """bfloat16 on a GPU and on a CPU with bf16 matrix units, float32 on other CPUs."""
    if device.startswith("cuda") or (device == "cpu" and cpu_has_bf16_units()):
        return torch.bfloat16
    return torch.float32


def quantize_int8(model: Transformer) -> Transformer:
    """Int8 weight-only quantisation (torchao, one scale per output row) of every projection of every
    block, and of the head when it is not tied to the embedding table; LoRA, norms, gates and the
    embedding stay in the model's dtype. Weights take half the memory of bf16; activations keep it."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    names = {*Attention.projections, *FeedForward.projections}
    if not model.args.tie_embeddings:  # a tied head is the embedding table too, which must stay plain
        names.add("output")

    def chosen(module: torch.nn.Module, name: str) -> bool:
        return isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in names

    quantize_(model, Int8WeightOnlyConfig(), filter_fn=chosen)
    return model
