"""MU-LLaMA: music understanding with MERT, a music bridge and gated adapters inside LLaMA-2.

A user's script needs nothing else: `llama.load(...)` gives a ready MU-LLaMA, `llama.load_llama`
a bare backbone, `llama.generate` batched sampling, `llama.load_audio` a clip at 24 kHz.
"""

from .audio import AudioError, load_audio
from .bridge import Bridge
from .build import load, load_llama
from .encoders.mert import MERT
from .files import CheckpointError
from .formats import read_llama
from .formats.hf import save_hf
from .formats.mert import load_mert
from .formats.meta import save_meta
from .formats.mu_llama import read_mu_llama, save_mu_llama
from .generation import Completion, generate
from .model import KVCache, ModelArgs, Transformer
from .mu_llama import MULLaMA, MULLaMAConfig
from .pipeline import Pipeline
from .prompt import format_prompt
from .tokenizer import Tokenizer

__all__ = [
    "MERT", "AudioError", "Bridge", "CheckpointError", "Completion", "KVCache", "MULLaMA", "MULLaMAConfig",
    "ModelArgs", "Pipeline", "Tokenizer", "Transformer", "format_prompt", "generate", "load", "load_audio",
    "load_llama", "load_mert", "read_llama", "read_mu_llama", "save_hf", "save_meta", "save_mu_llama",
]
