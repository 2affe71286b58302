"""MU-LLaMA as a configuration of the multimodal model (multimodal.py): music alone, from MERT into the
last `query_layer` layers, no music output. `MULLaMAConfig` is what its checkpoints store; `MULLaMA`
builds the model.
"""

from dataclasses import asdict, dataclass
from typing import ClassVar

from .encoders.mert import MERT
from .model import Transformer
from .multimodal import MultimodalLLaMA

# What each phase adds to the backbone (the original's finetune adds biases and LoRA); what each phase
# trains is training's (training/stages.py).
PHASE_BACKBONE = {"pretrain": {}, "finetune": {"w_bias": True, "w_lora": True}}


@dataclass
class MULLaMAConfig:
    """Everything beyond the base LLaMA and MERT that shapes a MU-LLaMA; stored with checkpoints."""

    phase: str = "finetune"  # pretrain: no biases or LoRA in the backbone; finetune: both
    query_layer: int = 20  # adapted layers: the last `query_layer` of the backbone
    mert_layers: int = 25  # MERT hidden states per clip (num_hidden_layers + 1)
    mert_dim: int = 1024
    bridge_width: int | None = None  # SwiGLU width of the bridge; default 4 x LLaMA width
    lora_rank: int = 16
    prompt_template: str = "upstream"

    modalities: ClassVar[tuple[str, ...]] = ("music",)
    music_output: ClassVar[None] = None
    # how clips are encoded unless a caller says: whole, in 60 s windows (the original: the first 60 s)
    audio_mode: ClassVar[str] = "full"

    def __post_init__(self):
        if self.phase not in PHASE_BACKBONE:
            raise ValueError(f"phase must be one of {tuple(PHASE_BACKBONE)}, not {self.phase!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def backbone_args(self) -> dict:
        """The ModelArgs fields this model's LLaMA needs: the parts its phase adds, LoRA's rank."""
        return {**PHASE_BACKBONE[self.phase], "lora_rank": self.lora_rank}

    def encoder_shape(self, modality: str) -> tuple[int, int]:
        """(layers, width) MERT gives and the music bridge reads."""
        return {"music": (self.mert_layers, self.mert_dim)}[modality]

    def bridge_dim(self, dim: int) -> int:
        return self.bridge_width or 4 * dim


def MULLaMA(llama: Transformer, mert: MERT | None, config: MULLaMAConfig) -> MultimodalLLaMA:  # noqa: N802
    """MU-LLaMA's model: the multimodal model with MERT as its one encoder (None: features from a cache)."""
    return MultimodalLLaMA(llama, config, {"mert": mert})
