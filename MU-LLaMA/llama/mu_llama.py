"""MU-LLaMA: a frozen MERT encoder, the music bridge, and the LLaMA backbone with gated adapters.

Per clip, MERT's per-layer time-means [L + 1, H] go through the music bridge (bridge.py): one music
vector. Adding a learned `prefix_query` row gives one adapter token for each of the last
`query_layer` LLaMA layers, where it enters attention through the frozen `wv` and a per-head tanh
gate (see model.Attention). Checkpoints keep the original code's parameter names (`to_upstream`).
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import bridge
from .audio import SAMPLE_RATE
from .bridge import Bridge
from .encoders.mert import MERT
from .model import Transformer
from .prompt import IGNORE_INDEX


@dataclass(frozen=True)
class Phase:
    trains: tuple[str, ...]  # parameter groups (MULLaMA.parameter_groups) trained in this phase
    backbone: dict = field(default_factory=dict)  # ModelArgs fields the phase needs (the parts it adds)


# The original code's two phases. A new stage is one more entry (and its groups, if new).
PHASES = {
    "pretrain": Phase(trains=("bridge", "prefix", "gates")),
    "finetune": Phase(trains=("norms", "biases", "lora"), backbone={"w_bias": True, "w_lora": True}),
}
# Where each bridge lives in the model and the prefix of its parameters in the original checkpoints.
BRIDGES = {"music_bridge": "mu_mert"}


@dataclass
class MULLaMAConfig:
    """Everything beyond the base LLaMA and MERT that shapes a MU-LLaMA; stored with checkpoints."""

    phase: str = "finetune"  # a key of PHASES: pretrain trains bridge + prefix + gates; finetune norms, biases, LoRA
    query_layer: int = 20  # adapted layers: the last `query_layer` of the backbone
    mert_layers: int = 25  # MERT hidden states per clip (num_hidden_layers + 1)
    mert_dim: int = 1024
    bridge_width: int | None = None  # SwiGLU width of the bridge; default 4 x LLaMA width
    lora_rank: int = 16
    prompt_template: str = "upstream"

    def __post_init__(self):
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {tuple(PHASES)}, not {self.phase!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def backbone_args(self) -> dict:
        """The ModelArgs fields this model's LLaMA needs: the parts its phase adds, LoRA's rank."""
        return {**PHASES[self.phase].backbone, "lora_rank": self.lora_rank}


_TO_UPSTREAM, _FROM_UPSTREAM = bridge.name_tables(BRIDGES.items())


def to_upstream(key: str) -> str:
    """A MU-LLaMA parameter name as the original code's checkpoints spell it."""
    return bridge.rename(key, _TO_UPSTREAM)


def from_upstream(key: str) -> str:
    return bridge.rename(key, _FROM_UPSTREAM)


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy over answer tokens (labels == IGNORE_INDEX elsewhere): the mean over
    each sample's answer tokens, then over samples. At batch size 1 this is the original loss; per
    sample it makes the loss of a batch independent of how it is split over processes and
    accumulation steps. A sample without answer tokens counts as 0 (as the original code's)."""
    logits, targets = logits[:, :-1], labels[:, 1:]
    per_token = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX,
                                reduction="none").view(targets.shape)
    counts = (targets != IGNORE_INDEX).sum(dim=1)
    return (per_token.sum(dim=1) / counts.clamp(min=1)).mean()


class MULLaMA(nn.Module):
    def __init__(self, llama: Transformer, mert: MERT | None, config: MULLaMAConfig):
        super().__init__()
        if config.query_layer > llama.args.n_layers:
            raise ValueError(f"query_layer={config.query_layer} exceeds the backbone's {llama.args.n_layers} layers")
        self.config = config
        self.llama = llama
        self.mert = mert
        dim = llama.args.dim
        self.music_bridge = Bridge(config.mert_layers, config.mert_dim, dim, config.bridge_width or 4 * dim)
        self.prefix_query = nn.Embedding(config.query_layer, dim)

    def parameter_groups(self) -> dict[str, list[str]]:
        """Parameter names by the module that owns them: the bridge, the prefix, and the backbone's
        gates, norms, biases and LoRA."""
        groups = {"bridge": [f"music_bridge.{n}" for n, _ in self.music_bridge.named_parameters()],
                  "prefix": ["prefix_query.weight"]}
        for group, names in self.llama.parameter_groups().items():
            groups[group] = [f"llama.{n}" for n in names]
        return groups

    def trained_names(self, phases: Sequence[str]) -> list[str]:
        groups = self.parameter_groups()
        return [n for phase in phases for group in PHASES[phase].trains for n in groups[group]]

    @property
    def sample_rate(self) -> int:
        """The rate clips must have: the encoder's (its preprocessor_config.json), MERT-v1's without one."""
        return self.mert.sample_rate if self.mert is not None else SAMPLE_RATE

    # --- music -> adapter tokens --------------------------------------------------------------

    def encode_audio(self, clips: Sequence, audio_mode: str = "full", window_s: float = 60.0) -> torch.Tensor:
        """MERT layer means [B, L + 1, H] of mono 24 kHz waveforms (see MERT.layer_means)."""
        if self.mert is None:
            raise RuntimeError("this MU-LLaMA was built without a MERT encoder; pass precomputed layer means")
        return self.mert.layer_means(clips, window_s=window_s, mode=audio_mode)

    def music_features(self, layer_means: torch.Tensor) -> torch.Tensor:
        """[B, L + 1, H] MERT layer means -> [B, dim] music vector."""
        return self.music_bridge(layer_means)

    def adapter(self, layer_means: torch.Tensor) -> torch.Tensor:
        """[B, query_layer, dim]: the music vector plus one learned row per adapted layer."""
        return self.music_features(layer_means)[:, None] + self.prefix_query.weight[None]

    def adapters(self, adapter: torch.Tensor) -> dict[int, torch.Tensor]:
        """`adapter` rows [B, query_layer, dim] by the backbone layer they enter: the last query_layer."""
        first = self.llama.args.n_layers - adapter.shape[1]
        return {first + j: adapter[:, j] for j in range(adapter.shape[1])}

    # --- training ------------------------------------------------------------------------------

    def forward(self, tokens: torch.Tensor, layer_means: torch.Tensor, labels: torch.Tensor | None = None):
        """Logits [B, S, vocab] of `tokens` [B, S] conditioned on the clips' MERT layer means; with
        `labels`, the training loss instead (see `loss`)."""
        logits = self.llama(tokens, adapters=self.adapters(self.adapter(layer_means)))
        return logits if labels is None else answer_loss(logits, labels)

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor, layer_means: torch.Tensor) -> torch.Tensor:
        return self(tokens, layer_means, labels)

    def set_phase(self, phase: str) -> list[str]:
        """Freeze everything but the phase's trainable set, cast that set to fp32; returns its names."""
        self.config.phase = phase
        names = set(self.trained_names([phase]))
        for name, param in self.named_parameters():
            param.requires_grad_(name in names)
            if name in names:
                param.data = param.data.float()
        return [n for n, _ in self.named_parameters() if n in names]

    def checkpointed_names(self) -> set[str]:
        """What a MU-LLaMA checkpoint holds: whatever any phase trains (never base weights or MERT)."""
        return set(self.trained_names(list(PHASES)))

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The trained tensors only, under this module's names (`to_upstream` gives the file's)."""
        names = self.checkpointed_names()
        return {k: v for k, v in self.state_dict().items() if k in names}
