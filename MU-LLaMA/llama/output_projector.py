"""MuMu-LLaMA's output projector: the hidden states at the eight [AUD] positions -> the music decoder's
conditioning.

Each [AUD] hidden state (the last layer's output before the final norm, at the position that
predicts the token) plus that token's input embedding is projected to `width` (512 released) wide,
read by the encoder of a small `nn.Transformer` (4 + 4 layers released) whose decoder turns `queries`
learned rows into the output: [B, Q, out].
MusicGen takes Q = 128 rows of its T5 width (768); AudioLDM2 one row of 128·1024 + 8·768 values.
`standardize` (not in the released models; the demo's) first standardises each input channel with fixed
statistics measured on training answers: a backbone whose states reach a few hundred in a few channels
(SmolLM2's) otherwise makes the post-norm projector collapse to the mean target under Adam.
Attribute names (`fc`, `tfm`, `model`, `query_embs`) are the original checkpoints'.
"""

import torch
from torch import nn


class OutputProjector(nn.Module):
    def __init__(self, dim: int, out: int, queries: int, width: int = 512, layers: int = 4,
                 standardize: bool = False):
        super().__init__()
        if standardize:  # fixed per-channel statistics of its input, set from data (`set_input_statistics`)
            self.register_buffer("input_mean", torch.zeros(dim))
            self.register_buffer("input_std", torch.ones(dim))
        self.standardize = standardize
        self.fc = nn.Linear(dim, width)
        # post-norm, no dropout, 4 heads, feed-forward 4 x width: the released configuration
        self.tfm = nn.Transformer(d_model=width, nhead=4, num_encoder_layers=layers, num_decoder_layers=layers,
                                  dim_feedforward=4 * width, dropout=0.0, batch_first=True, norm_first=False)
        self.model = nn.Linear(width, out)
        self.query_embs = nn.Parameter(torch.randn(1, queries, width))

    @property
    def queries(self) -> int:
        return self.query_embs.shape[1]

    def forward(self, hidden: torch.Tensor, token_embeddings: torch.Tensor) -> torch.Tensor:
        """[B, 8, dim] hidden states and [B or 1, 8, dim] [AUD] input embeddings -> [B, Q, out] (fp32)."""
        x = hidden.float() + token_embeddings.float()
        if self.standardize:
            x = (x - self.input_mean.float()) / self.input_std.float()
        x = self.fc(x.to(self.fc.weight.dtype))
        x = self.tfm(x, self.query_embs.expand(x.shape[0], -1, -1))
        return self.model(x).float()

    @torch.no_grad()
    def set_input_statistics(self, inputs: torch.Tensor) -> None:
        """Standardise by the per-channel mean and std of `inputs` [N, dim] (hidden + token embedding)."""
        self.input_mean.copy_(inputs.float().mean(0))
        self.input_std.copy_(inputs.float().std(0).clamp(min=1e-3))
