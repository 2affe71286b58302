"""MU-LLaMA's LoRA, exactly as the original (rank r, no scaling, `lora_<name>_l1/_l2` keys), and the
linear map every projection of the model goes through."""

import torch
from torch import nn


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """`layer(x)`, computed as (W @ x^T)^T when x has a few float32 rows on CPU: for batched decoding, MKL's
    W @ x^T is markedly faster than x @ W^T (measured 1.5x at 8 rows, 2.3x for a 49k-row LM head). In bf16
    oneDNN's x @ W^T is the faster (decoding SmolLM2 at batch 8: 1.23x with it, AMD EPYC with AVX512-BF16)."""
    rows = x.numel() // x.shape[-1]
    # a quantised weight (a tensor subclass, e.g. torchao's int8) has its own kernels for F.linear only
    if (x.device.type != "cpu" or x.dtype != torch.float32 or not 1 < rows <= 16
            or type(layer.weight.data) is not torch.Tensor):
        return layer(x)
    y = (layer.weight @ x.reshape(rows, -1).T).T.contiguous()
    if layer.bias is not None:
        y = y + layer.bias
    return y.reshape(*x.shape[:-1], -1)


class LoRAProjections(nn.Module):
    """Linear projections that may carry MU-LLaMA's LoRA: y = W x + B A x (no scaling)."""

    projections: tuple[str, ...] = ()

    def _add_lora(self, names: tuple[str, ...], rank: int):
        for name in names:
            base = getattr(self, name)
            setattr(self, f"lora_{name}_l1", nn.Linear(base.in_features, rank, bias=False))
            up = nn.Linear(rank, base.out_features, bias=False)
            nn.init.zeros_(up.weight)
            setattr(self, f"lora_{name}_l2", up)

    def owned_groups(self) -> dict[str, list[str]]:
        """This module's biases and LoRA tensors, by local name."""
        lora = [n for n, _ in self.named_parameters() if n.startswith("lora_")]
        biases = [f"{n}.bias" for n in self.projections if getattr(self, n).bias is not None]
        return {"biases": biases, "lora": lora}

    def _project(self, name: str, x: torch.Tensor) -> torch.Tensor:
        y = linear(x, getattr(self, name))
        down = getattr(self, f"lora_{name}_l1", None)
        if down is not None:
            y = y + linear(linear(x, down), getattr(self, f"lora_{name}_l2"))
        return y
