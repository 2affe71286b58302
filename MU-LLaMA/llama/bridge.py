"""The bridge from a frozen encoder to the LLaMA width (MU-LLaMA's music bridge; MuMu-LLaMA's image
and video bridges have the same shape).

Per input, the encoder's per-layer summaries [L, H] are mixed by a 1x1 convolution over layers,
L2-normalised, projected to the LLaMA width and refined by three residual RMSNorm-SwiGLU blocks:
one vector [dim]. The original code keeps each bridge as flat attributes of the model
(`mu_mert_agg`, `mu_mert_norm_1`, `mu_mert_f1_1`, ...): checkpoints/names.py translates.
"""

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
        # The original weighs its one input by w / (w + 1e-6) after normalising: kept for exactness.
        x = self.proj(F.normalize(self.agg(x).squeeze(1), dim=-1) / (1 + 1e-6))
        for block in self.blocks:
            x = block(x)
        return x
