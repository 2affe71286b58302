"""MuMu-LLaMA's output projector: the hidden states at the eight [AUD] positions -> the music decoder's
conditioning.

Each [AUD] hidden state (the last layer's output before the final norm, at the position that
predicts the token) plus that token's input embedding is projected to 512 wide, read by the encoder
of a small `nn.Transformer` whose decoder turns `queries` learned rows into the output: [B, Q, out].
MusicGen takes Q = 128 rows of its T5 width (768); AudioLDM2 one row of 128·1024 + 8·768 values.
Attribute names (`fc`, `tfm`, `model`, `query_embs`) are the original checkpoints'.
"""

import torch
from torch import nn

WIDTH = 512


class OutputProjector(nn.Module):
    def __init__(self, dim: int, out: int, queries: int):
        super().__init__()
        self.fc = nn.Linear(dim, WIDTH)
        # post-norm, no dropout, 4 + 4 layers of 4 heads: the released configuration
        self.tfm = nn.Transformer(d_model=WIDTH, nhead=4, num_encoder_layers=4, num_decoder_layers=4,
                                  dim_feedforward=4 * WIDTH, dropout=0.0, batch_first=True, norm_first=False)
        self.model = nn.Linear(WIDTH, out)
        self.query_embs = nn.Parameter(torch.randn(1, queries, WIDTH))

    @property
    def queries(self) -> int:
        return self.query_embs.shape[1]

    def forward(self, hidden: torch.Tensor, token_embeddings: torch.Tensor) -> torch.Tensor:
        """[B, 8, dim] hidden states and [B or 1, 8, dim] [AUD] input embeddings -> [B, Q, out] (fp32)."""
        x = self.fc((hidden.float() + token_embeddings.float()).to(self.fc.weight.dtype))
        x = self.tfm(x, self.query_embs.expand(x.shape[0], -1, -1))
        return self.model(x).float()
