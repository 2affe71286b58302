"""MU-LLaMA: the LLaMA-2 backbone, its checkpoints, tokenizer and batched generation."""

from .checkpoint import CheckpointError, load_llama, read_llama, save_hf, save_meta
from .generation import Completion, generate
from .model import KVCache, ModelArgs, Transformer
from .tokenizer import Tokenizer

__all__ = [
    "CheckpointError", "Completion", "KVCache", "ModelArgs", "Tokenizer", "Transformer",
    "generate", "load_llama", "read_llama", "save_hf", "save_meta",
]
