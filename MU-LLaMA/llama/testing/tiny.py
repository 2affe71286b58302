"""Tiny LLaMA and MERT checkpoints written in the released artefacts' on-disk formats.

They go through exactly the loading code a user's 7B / MERT-330M folders take; the tests, the tiny
training configs and the smoke runs use them. `scripts/make_tiny_models.py` writes both.

A random LLaMA knows no language, and MU-LLaMA never trains its base: the adapter only steers a
model that already writes. So for training runs the tiny LLaMA can first learn the text of a
corpus (`learn_text`, a plain causal-LM loop) with its own small SentencePiece model
(`train_tokenizer`), as LLaMA-2 learnt English before MU-LLaMA taught it to listen.
"""

import importlib.util
import io
import json
from pathlib import Path

import torch

from ..checkpoints.meta import save_meta
from ..encoders.mert import hubert_config
from ..model import ModelArgs, Transformer
from ..prompt import encode_example
from .learn import learn_audio, learn_text, standardize_output

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
    # fairseq's masking options and the rest that the released config.json carries; HubertModel ignores them
    "mask_channel_length": 10, "mask_channel_min_space": 1, "mask_channel_other": 0.0, "mask_channel_prob": 0.0,
    "mask_channel_selection": "static", "mask_time_min_space": 1, "mask_time_other": 0.0,
    "mask_time_selection": "static", "feature_extractor_cqt_bins": 336, "classifier_proj_size": 256,
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "torch_dtype": "float32",
    "use_weighted_layer_sum": False, "initializer_range": 0.02, "tokenizer_class": "Wav2Vec2CTCTokenizer",
}
TINY_LLAMA = ModelArgs(dim=64, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=32000, multiple_of=32,
                       max_seq_len=512)


def tiny_args(**overrides) -> ModelArgs:
    """The tests' tiny backbone: 3 layers of 64, a 97-token vocabulary, as `overrides` change it."""
    base = dict(dim=64, n_layers=3, n_heads=4, n_kv_heads=None, vocab_size=97, multiple_of=16,
                norm_eps=1e-5, rope_theta=10000.0, max_seq_len=128)
    return ModelArgs(**{**base, **overrides})


def random_model(args: ModelArgs, seed: int = 0) -> Transformer:
    """A model with random weights everywhere, norms included (so a swapped norm shows)."""
    torch.manual_seed(seed)
    model = Transformer(args)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model.eval()


def random_transformer(args: ModelArgs, device="cpu", dtype=torch.float32, std: float = 0.02) -> Transformer:
    """A frozen Transformer of any shape with N(0, std) weights, allocated directly on `device` in
    `dtype` (no fp32 CPU copy first): for benchmarks at 7B shape."""
    with torch.device("meta"):
        model = Transformer(args)
    model = model.to_empty(device=device).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    return model.requires_grad_(False).eval()


def mert_checkpoint_names(state: dict) -> dict:
    """A HubertModel state dict under MERT's own names: its remote code uses the old weight_norm, so the
    positional convolution is stored as weight_g / weight_v."""
    out = {}
    for key, value in state.items():
        key = key.replace("conv.parametrizations.weight.original0", "conv.weight_g")
        out[key.replace("conv.parametrizations.weight.original1", "conv.weight_v")] = value
    return out


def write_tiny_mert(folder, seed: int = 0, do_normalize: bool = False, sample_rate: int = 24000, clips=None,
                    labels=None, steps: int = 0, batch_size: int = 16, crop: int | None = None,
                    standardize: bool = False, **overrides):
    """A MERT checkpoint folder: config.json, pytorch_model.bin with MERT's own key names
    (weight_g/weight_v), preprocessor_config.json. With `clips` (equal-length waveforms), `labels`
    ({name: class indices per clip}) and `steps`, the encoder first learns to tell those classes
    apart (a stand-in for MERT's pretraining); `crop` and `standardize` as in `learn_audio` and
    `standardize_output`. Returns the HubertModel holding the weights."""
    from transformers import HubertModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**TINY_MERT_CONFIG, "sample_rate": sample_rate, **overrides}
    torch.manual_seed(seed)
    reference = HubertModel(hubert_config(config)).eval()
    if clips is not None and steps:
        learn_audio(reference, torch.as_tensor(clips), labels, steps, batch_size=batch_size, seed=seed, crop=crop)
    if clips is not None and standardize:
        standardize_output(reference, torch.as_tensor(clips))
    torch.save(mert_checkpoint_names(reference.state_dict()), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": do_normalize, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
        "padding_side": "right", "padding_value": 0, "return_attention_mask": True, "sampling_rate": sample_rate}))
    return reference


def sentencepiece_model_file() -> Path:
    """A real 32k SentencePiece model with LLaMA-2's special ids (Mistral-7B v1's, from mistral-common)."""
    return Path(importlib.util.find_spec("mistral_common").origin).parent / "data" / "tokenizer.model.v1"


def write_tiny_llama(folder, args: ModelArgs = TINY_LLAMA, seed: int = 0, tokenizer_model: Path | None = None,
                     examples: list[tuple[str, str]] | None = None, template: str = "alpaca",
                     steps: int = 0) -> Transformer:
    """The upstream --llama_dir layout: folder/7B/{params.json, consolidated.00.pth} and
    folder/tokenizer.model (default: the real 32k model). With `examples` (question, answer) and
    `steps`, the model first learns them as text, tokenised exactly as training will tokenise them.
    Returns the model holding the weights."""
    from ..tokenizer import Tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(Path(tokenizer_model or sentencepiece_model_file()).read_bytes())
    tokenizer = Tokenizer(folder / "tokenizer.model")
    args = ModelArgs(**{**args.__dict__, "vocab_size": tokenizer.n_words})
    torch.manual_seed(seed)
    model = Transformer(args)
    if examples and steps:
        sequences = [encode_example(tokenizer, q, a, template, args.max_seq_len) for q, a in examples]
        learn_text(model, [example.tokens for example in filter(None, sequences)], steps, seed=seed)
    save_meta(model.state_dict(), args, folder / "7B")
    return model


def train_tokenizer(texts: list[str], path, vocab_size: int = 256) -> Path:
    """A SentencePiece model (LLaMA's special ids: unk 0, bos 1, eos 2, no pad) fitted to `texts`."""
    import sentencepiece

    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sorted(set(texts))), model_writer=buffer, vocab_size=vocab_size,
        model_type="unigram", unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0,
        hard_vocab_limit=False, minloglevel=2)
    Path(path).write_bytes(buffer.getvalue())
    return Path(path)
