"""MuMu-LLaMA (released as M2UGen) as a configuration of the multimodal model (multimodal.py): music
(MERT), images (ViT) and video (ViViT), each through its bridge (SwiGLU width = the LLaMA width) into the
last 3 x `query_layer` layers, music then image then video, and music output: the [AUD0]..[AUD7] tokens
and the output projector that conditions the music decoder. `MuMuConfig` is what its checkpoints store;
`MuMuLLaMA` builds the model.
"""

from dataclasses import asdict, dataclass
from typing import ClassVar

from .decoders.base import DECODER_CONDITIONING
from .model import Transformer
from .multimodal import AUDIO_TOKENS, MultimodalLLaMA

__all__ = ["AUDIO_TOKENS", "DECODER_CONDITIONING", "MODALITIES", "MuMuConfig", "MuMuLLaMA", "MusicOutput"]

MODALITIES = ("music", "image", "video")  # the order of the layer groups, first to last


@dataclass(frozen=True)
class MusicOutput:
    """The output projector: `queries` rows of `out` values for the decoder, through a `width`-wide
    transformer of `layers` + `layers` layers; `standardize`: fixed input statistics (output_projector.py)."""

    queries: int
    out: int
    width: int
    layers: int
    standardize: bool


@dataclass
class MuMuConfig:
    """Everything beyond the base LLaMA that shapes a MuMu-LLaMA; stored with checkpoints."""

    query_layer: int = 6  # adapted layers per modality; the last 3 x query_layer layers are adapted
    mert_layers: int = 25  # MERT hidden states per clip (num_hidden_layers + 1)
    mert_dim: int = 1024
    vit_tokens: int = 197  # ViT output tokens: (image_size / patch_size)^2 + 1
    vit_dim: int = 768
    vivit_tokens: int = 3137  # ViViT output tokens: frames / 2 x (224 / 16)^2 + 1
    vivit_dim: int = 768
    bridge_width: int | None = None  # SwiGLU width of the bridges; default the LLaMA width (original)
    lora_rank: int = 16
    music_decoder: str = "musicgen"  # a key of DECODER_CONDITIONING
    projector_queries: int | None = None  # default: the decoder's
    projector_out: int | None = None
    projector_width: int = 512  # the projector's transformer (released: 512 wide, 4 + 4 layers)
    projector_layers: int = 4
    projector_standardize: bool = False  # fixed input statistics (output_projector.py; the demo's, not released)
    prompt_template: str = "alpaca"

    modalities: ClassVar[tuple[str, ...]] = MODALITIES
    audio_mode: ClassVar[str] = "upstream"  # clips are heard as the original hears them: their first 60 s

    def __post_init__(self):
        if self.music_decoder not in DECODER_CONDITIONING:
            raise ValueError(f"music_decoder must be one of {tuple(DECODER_CONDITIONING)}, not {self.music_decoder!r}")
        queries, out = DECODER_CONDITIONING[self.music_decoder]
        self.projector_queries = self.projector_queries or queries
        self.projector_out = self.projector_out or out

    def to_dict(self) -> dict:
        return asdict(self)

    def backbone_args(self) -> dict:
        """ModelArgs fields the backbone needs: biases and LoRA always on, 1024 positions (original)."""
        return {"w_bias": True, "w_lora": True, "lora_rank": self.lora_rank, "max_seq_len": 1024}

    def encoder_shape(self, modality: str) -> tuple[int, int]:
        """(tokens or layers, width) the modality's bridge reads."""
        return {"music": (self.mert_layers, self.mert_dim), "image": (self.vit_tokens, self.vit_dim),
                "video": (self.vivit_tokens, self.vivit_dim)}[modality]

    def bridge_dim(self, dim: int) -> int:
        return self.bridge_width or dim

    @property
    def music_output(self) -> MusicOutput:
        return MusicOutput(self.projector_queries, self.projector_out, self.projector_width, self.projector_layers,
                           self.projector_standardize)


def MuMuLLaMA(llama: Transformer, config: MuMuConfig, mert=None, vit=None, vivit=None) -> MultimodalLLaMA:  # noqa: N802
    """MuMu-LLaMA's model: the multimodal model with the encoders given (any of them None)."""
    return MultimodalLLaMA(llama, config, {"mert": mert, "vit": vit, "vivit": vivit})
