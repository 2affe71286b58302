"""The MERT music encoder, built on `transformers.HubertModel` (no remote code).

MERT-v1 with `feature_extractor_cqt: false` and `deepnorm: false` is the stock HuBERT encoder with
stable layer norm, so a MERT checkpoint folder loads into HubertModel after a config mapping. Its
`attention_relax` option only rewrites softmax for numerical range and leaves it unchanged.

What MU-LLaMA takes from MERT is, per clip, the time-mean of every hidden state: [L + 1, hidden].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .base import AudioInputError

if TYPE_CHECKING:  # transformers takes seconds to import: only building a MERT imports it
    from transformers import HubertConfig

# HubertConfig fields a MERT config.json carries under the same names.
_SHARED_FIELDS = [
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout", "feat_proj_layer_norm",
    "layerdrop", "layer_norm_eps", "feat_extract_norm", "feat_extract_activation", "conv_dim", "conv_stride",
    "conv_kernel", "conv_bias", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups",
    "do_stable_layer_norm", "apply_spec_augment", "mask_time_prob", "mask_time_length", "mask_time_min_masks",
    "mask_feature_prob", "mask_feature_length", "mask_feature_min_masks",
]
AUDIO_MODES = ("full", "upstream")


def hubert_config(mert: dict) -> HubertConfig:
    if mert.get("model_type") not in ("mert_model", "hubert"):
        raise ValueError(f"config.json has model_type {mert.get('model_type')!r}; expected a MERT checkpoint "
                         "('mert_model') or HuBERT")
    if mert.get("feature_extractor_cqt"):
        raise ValueError("this MERT checkpoint uses the CQT feature extractor (feature_extractor_cqt: true), "
                         "which HuBERT lacks; MU-LLaMA uses MERT-v1 checkpoints without it")
    if mert.get("deepnorm"):
        raise ValueError("this MERT checkpoint uses DeepNorm (deepnorm: true), which HuBERT lacks")
    fields = {k: mert[k] for k in _SHARED_FIELDS if k in mert}
    from transformers import HubertConfig

    return HubertConfig(**fields, conv_pos_batch_norm=False, num_feat_extract_layers=len(fields["conv_dim"]))


@dataclass
class Window:
    clip: int  # index of the clip in the batch
    start: int
    end: int


class MERT(torch.nn.Module):
    """A frozen MERT encoder. `layer_means(clips)` -> [B, L + 1, hidden] per-clip time-means."""

    def __init__(self, config: HubertConfig, sample_rate: int = 24000, do_normalize: bool = False):
        super().__init__()
        from transformers import HubertModel

        self.model = HubertModel(config)
        self.sample_rate = sample_rate
        self.do_normalize = do_normalize
        # Samples per output frame and the shortest input that yields one frame.
        self.hop = int(np.prod(config.conv_stride))
        receptive = 1
        for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
            receptive = (receptive - 1) * stride + kernel
        self.min_samples = receptive

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers + 1

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def shape(self) -> tuple[int, int]:
        """(layers, hidden size) of what `encode` gives per clip (encoders/base.py)."""
        return self.num_layers, self.hidden_size

    def encode(self, clips: list, mode: str = "full") -> torch.Tensor:
        """`layer_means` of the clips, encoded whole (mode "full") or their first 60 s ("upstream")."""
        return self.layer_means(clips, mode=mode)

    def hidden_states(self, waves: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """All L + 1 hidden states [B, T', hidden] of equal-length windows [B, T]."""
        if self.do_normalize:  # as Wav2Vec2FeatureExtractor: zero mean, unit variance per input
            variance = waves.var(-1, keepdim=True, unbiased=False)
            waves = (waves - waves.mean(-1, keepdim=True)) / torch.sqrt(variance + 1e-7)
        out = self.model(waves, output_hidden_states=True)
        # transformers 5 returns the last entry before the encoder's final LayerNorm; MERT (written
        # against transformers 4) and MU-LLaMA used it after, which is last_hidden_state.
        return (*out.hidden_states[:-1], out.last_hidden_state)

    def windows(self, lengths: list[int], window_s: float, mode: str) -> list[Window]:
        """Split clips into windows of `window_s` seconds: every window ("full"), or only the first
        one as the original code did ("upstream": the first 60 s of any clip)."""
        if mode not in AUDIO_MODES:
            raise ValueError(f"audio_mode must be one of {AUDIO_MODES}, not {mode!r}")
        size = round(window_s * self.sample_rate)
        out = []
        for clip, length in enumerate(lengths):
            starts = range(0, length, size) if mode == "full" else [0]
            clip_windows = [Window(clip, s, min(s + size, length)) for s in starts]
            # A tail shorter than one encoder frame carries no music; drop it when it is not alone.
            if len(clip_windows) > 1 and clip_windows[-1].end - clip_windows[-1].start < self.min_samples:
                clip_windows.pop()
            out += clip_windows
        return out

    @torch.no_grad()
    def layer_means(self, clips: list, window_s: float = 60.0, mode: str = "full",
                    batch_size: int = 8) -> torch.Tensor:
        """Per-clip time-mean of every hidden state, [B, L + 1, hidden] (fp32).

        clips: mono waveforms at `sample_rate` (numpy or torch, any lengths). Each clip is encoded in
        windows of `window_s` seconds whose means are averaged weighted by window length. Windows of
        equal length are batched together, so a batch gives the same result as clips one by one
        (padding would not: the first conv layer's GroupNorm spans the whole input). A clip shorter
        than the encoder's receptive field (`min_samples`, 400 samples = 17 ms for MERT-v1) is
        zero-padded to it.
        """
        param = next(self.model.parameters())
        waves = [torch.as_tensor(np.asarray(c, dtype=np.float32)) for c in clips]
        for i, w in enumerate(waves):
            if w.ndim != 1 or w.numel() == 0:
                raise AudioInputError(f"clip {i}: expected a non-empty mono waveform, got shape {tuple(w.shape)}")
            if w.numel() < self.min_samples:
                waves[i] = torch.nn.functional.pad(w, (0, self.min_samples - w.numel()))
        windows = self.windows([w.numel() for w in waves], window_s, mode)
        sums = torch.zeros(len(waves), self.num_layers, self.hidden_size)
        weights = torch.zeros(len(waves))
        by_length: dict[int, list[Window]] = {}
        for w in windows:
            by_length.setdefault(w.end - w.start, []).append(w)
        for length, group in by_length.items():
            for i in range(0, len(group), batch_size):
                part = group[i:i + batch_size]
                batch = torch.stack([waves[w.clip][w.start:w.end] for w in part]).to(param.device, param.dtype)
                means = torch.stack([h.float().mean(dim=1) for h in self.hidden_states(batch)], dim=1).cpu()
                for w, m in zip(part, means, strict=True):
                    sums[w.clip] += length * m
                    weights[w.clip] += length
        return sums / weights[:, None, None]
