"""Tiny random LLaMA and MERT checkpoints written in the released artefacts' on-disk formats.

They go through exactly the loading code a user's 7B / MERT-330M folders take; the tests, the tiny
training configs and the smoke runs use them. `scripts/make_tiny_models.py` writes both.
"""

import importlib.util
import json
from pathlib import Path

import torch

from .checkpoint import save_meta
from .mert import hubert_config
from .model import ModelArgs, Transformer

# The fields of MERT-v1-330M's config.json, at a tiny size (16 conv channels, 2 layers of 32).
TINY_MERT_CONFIG = {
    "architectures": ["MERTModel"], "model_type": "mert_model", "auto_map": {"AutoModel": "modeling_MERT.MERTModel"},
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
    "hidden_act": "gelu", "hidden_dropout": 0.0, "activation_dropout": 0.0, "attention_dropout": 0.0,
    "feat_proj_dropout": 0.0, "final_dropout": 0.0, "layerdrop": 0.0, "feat_proj_layer_norm": True,
    "feat_extract_norm": "group", "feat_extract_activation": "gelu", "conv_dim": [16] * 7,
    "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_bias": False,
    "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4, "do_stable_layer_norm": True,
    "layer_norm_eps": 1e-5, "apply_spec_augment": True, "mask_time_prob": 0.05, "mask_time_length": 10,
    "mask_time_min_masks": 2, "mask_feature_prob": 0.0, "attention_relax": 32.0, "feature_extractor_cqt": False,
    "deepnorm": False, "sample_rate": 24000, "vocab_size": 32, "transformers_version": "4.25.1",
}
TINY_LLAMA = ModelArgs(dim=64, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=32000, multiple_of=32,
                       max_seq_len=512)


def write_tiny_mert(folder, seed: int = 0, do_normalize: bool = False, **overrides):
    """A MERT checkpoint folder: config.json, pytorch_model.bin with MERT's own key names
    (weight_g/weight_v), preprocessor_config.json. Returns the HubertModel holding the weights."""
    from transformers import HubertModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**TINY_MERT_CONFIG, **overrides}
    torch.manual_seed(seed)
    reference = HubertModel(hubert_config(config)).eval()
    state = {}
    for key, value in reference.state_dict().items():
        key = key.replace("conv.parametrizations.weight.original0", "conv.weight_g")
        state[key.replace("conv.parametrizations.weight.original1", "conv.weight_v")] = value
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": do_normalize, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
        "padding_side": "right", "padding_value": 0, "return_attention_mask": True, "sampling_rate": 24000}))
    return reference


def sentencepiece_model_file() -> Path:
    """A real 32k SentencePiece model with LLaMA-2's special ids (Mistral-7B v1's, from mistral-common)."""
    return Path(importlib.util.find_spec("mistral_common").origin).parent / "data" / "tokenizer.model.v1"


def write_tiny_llama(folder, args: ModelArgs = TINY_LLAMA, seed: int = 0) -> Transformer:
    """The upstream --llama_dir layout: folder/7B/{params.json, consolidated.00.pth} and
    folder/tokenizer.model. Returns the model holding the weights."""
    folder = Path(folder)
    torch.manual_seed(seed)
    model = Transformer(args)
    save_meta(model.state_dict(), args, folder / "7B")
    (folder / "tokenizer.model").write_bytes(sentencepiece_model_file().read_bytes())
    return model
