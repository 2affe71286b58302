"""MU-LLaMA: music understanding with MERT, a music bridge and gated adapters inside LLaMA-2; and
MuMu-LLaMA (M2UGen): music, image and video understanding and music generation.

A user's script needs nothing else: `llama.load(...)` gives a ready MU-LLaMA or MuMu-LLaMA (the checkpoint
says which; `llama.load_mumu` is the same function), both a `MultimodalLLaMA` inside a `Pipeline`,
`llama.load_llama` a bare backbone, `llama.generate` batched sampling, `llama.load_audio` a clip at
24 kHz, `llama.load_image` / `llama.load_video` an image or 32 video frames.
"""

from . import library_logs  # noqa: F401  (first: it quiets libraries the imports below load)
from .audio import AudioError, load_audio
from .bridge import Bridge
from .checkpoints import read_checkpoint, read_llama, read_mu_llama, read_mumu, save_mu_llama, save_mumu
from .checkpoints.hf import save_hf
from .checkpoints.mert import load_mert
from .checkpoints.meta import save_meta
from .encoders.base import EncoderInputError
from .encoders.mert import MERT
from .files import CheckpointError
from .generation import Completion, generate
from .kv_cache import KVCache
from .loading import load, load_llama, load_mumu
from .media import MediaError, load_image, load_video, video_seconds
from .model import ModelArgs, Transformer
from .mu_llama import MULLaMA, MULLaMAConfig
from .multimodal import MultimodalLLaMA
from .mumu_llama import MuMuConfig, MuMuLLaMA
from .pipeline import MuMuPipeline, Pipeline, Reply, Request
from .prompt import format_prompt
from .tokenizer import Tokenizer

__all__ = [
    "MERT", "AudioError", "Bridge", "CheckpointError", "Completion", "EncoderInputError", "KVCache", "MULLaMA",
    "MULLaMAConfig", "MediaError", "ModelArgs", "MuMuConfig", "MuMuLLaMA", "MuMuPipeline", "MultimodalLLaMA",
    "Pipeline", "Reply", "Request", "Tokenizer", "Transformer", "format_prompt", "generate", "load", "load_audio",
    "load_image", "load_llama", "load_mert", "load_mumu", "load_video", "read_checkpoint", "read_llama",
    "read_mu_llama", "read_mumu", "save_hf", "save_meta",
    "save_mu_llama", "save_mumu", "video_seconds",
]
