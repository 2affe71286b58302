"""MU-LLaMA: music understanding with MERT, a music bridge and gated adapters inside LLaMA-2; and
MuMu-LLaMA (M2UGen): music, image and video understanding and music generation.

A user's script needs nothing else: `llama.load(...)` gives a ready MU-LLaMA (or MuMu-LLaMA, by the
checkpoint), `llama.load_mumu` a MuMu-LLaMA with its image, video and music-decoder folders,
`llama.load_llama` a bare backbone, `llama.generate` batched sampling, `llama.load_audio` a clip at
24 kHz, `llama.load_image` / `llama.load_video` an image or 32 video frames.
"""

from . import library_logs  # noqa: F401  (first: it quiets libraries the imports below load)
from .audio import AudioError, load_audio
from .bridge import Bridge
from .build import load, load_llama, load_mumu
from .encoders.mert import MERT
from .files import CheckpointError
from .formats import read_llama
from .formats.hf import save_hf
from .formats.mert import load_mert
from .formats.meta import save_meta
from .formats.mu_llama import read_mu_llama, save_mu_llama
from .formats.mumu import read_mumu, save_mumu
from .generation import Completion, generate
from .media import MediaError, load_image, load_video, video_seconds
from .model import KVCache, ModelArgs, Transformer
from .mu_llama import MULLaMA, MULLaMAConfig
from .mumu_llama import MuMuConfig, MuMuLLaMA
from .pipeline import MuMuPipeline, Pipeline, Reply, Request
from .prompt import format_prompt
from .tokenizer import Tokenizer

__all__ = [
    "MERT", "AudioError", "Bridge", "CheckpointError", "Completion", "KVCache", "MULLaMA", "MULLaMAConfig",
    "MediaError", "ModelArgs", "MuMuConfig", "MuMuLLaMA", "MuMuPipeline", "Pipeline", "Reply", "Request",
    "Tokenizer", "Transformer", "format_prompt", "generate", "load", "load_audio", "load_image", "load_llama",
    "load_mert", "load_mumu", "load_video", "read_llama", "read_mu_llama", "read_mumu", "save_hf", "save_meta",
    "save_mu_llama", "save_mumu", "video_seconds",
]
