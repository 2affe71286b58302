"""The bridge from a frozen encoder to the LLaMA width (MU-LLaMA's music bridge; MuMu-LLaMA's image
and video bridges have the same shape).

Per input, the encoder's per-layer summaries [L, H] are mixed by a 1x1 convolution over layers,
L2-normalised, projected to the LLaMA width and refined by three residual RMSNorm-SwiGLU blocks:
one vector [dim]. The original code keeps each bridge as flat attributes of the model
(`mu_mert_agg`, `mu_mert_norm_1`, `mu_mert_f1_1`, ...); `to_upstream` / `from_upstream` translate
between those names and this module's, so the released checkpoints load and ours keep their format.
"""

import re

import torch
import torch.nn.functional as F
from torch import nn

from .model import RMSNorm

BLOCKS = 3


class BridgeBlock(nn.Module):
    def __init__(self, dim: int, width: int):
        super().__init__()
        self.norm = RMSNorm(dim, eps=1e-6)
        self.f1 = nn.Linear(dim, width, bias=False)  # gate
        self.f2 = nn.Linear(width, dim, bias=False)  # down
        self.f3 = nn.Linear(dim, width, bias=False)  # up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        up, gate = self.f3(h), self.f1(h)
        return x + self.f2(F.silu(gate) * up)


class Bridge(nn.Module):
    def __init__(self, layers: int, width_in: int, dim: int, width: int):
        super().__init__()
        self.agg = nn.Conv1d(layers, 1, kernel_size=1)
        self.proj = nn.Linear(width_in, dim)
        self.blocks = nn.ModuleList(BridgeBlock(dim, width) for _ in range(BLOCKS))

    def forward(self, layer_means: torch.Tensor) -> torch.Tensor:
        """[B, L, H] encoder layer summaries -> [B, dim]."""
        x = layer_means.to(self.proj.weight)
        x = self.proj(F.normalize(self.agg(x).squeeze(1), dim=-1))
        for block in self.blocks:
            x = block(x)
        return x


_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.(norm|f1|f2|f3)\.(.+)")
_UPSTREAM_BLOCK_KEY = re.compile(r"(norm|f1|f2|f3)_(\d+)\.(.+)")


def to_upstream(key: str, attribute: str, prefix: str) -> str:
    """`{attribute}.blocks.0.f1.weight` -> `{prefix}_f1_1.weight`; keys outside the bridge unchanged."""
    if not key.startswith(attribute + "."):
        return key
    rest = key.removeprefix(attribute + ".")
    block = _BLOCK_KEY.fullmatch(rest)
    if block:
        return f"{prefix}_{block[2]}_{int(block[1]) + 1}.{block[3]}"
    return f"{prefix}_{rest}"


def from_upstream(key: str, attribute: str, prefix: str) -> str:
    """The inverse of `to_upstream`."""
    if not key.startswith(prefix + "_"):
        return key
    rest = key.removeprefix(prefix + "_")
    block = _UPSTREAM_BLOCK_KEY.fullmatch(rest)
    if block:
        return f"{attribute}.blocks.{int(block[2]) - 1}.{block[1]}.{block[3]}"
    return f"{attribute}.{rest}"
