"""The HF LLaMA format: config.json + model*.safetensors | pytorch_model*.bin (sharded with an index).

HF stores q/k rows in the rotate-half order; they are permuted to Meta's interleaved order on read
and back on write, and the names are translated, so the model only ever sees Meta's layout.
"""

import json
import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..files import (
    CheckpointError,
    check_file,
    check_readable,
    read_json,
    safetensors_keys,
    safetensors_load,
    torch_load,
)
from ..model import ModelArgs, is_added_parameter
from ..records import make_readable
from .meta import pop_rotary

# (HF name, Meta name); {} stands for the layer index.
_NAMES = [
    ("model.embed_tokens.weight", "tok_embeddings.weight"),
    ("model.norm.weight", "norm.weight"),
    ("lm_head.weight", "output.weight"),
    ("model.layers.{}.self_attn.q_proj.weight", "layers.{}.attention.wq.weight"),
    ("model.layers.{}.self_attn.k_proj.weight", "layers.{}.attention.wk.weight"),
    ("model.layers.{}.self_attn.v_proj.weight", "layers.{}.attention.wv.weight"),
    ("model.layers.{}.self_attn.o_proj.weight", "layers.{}.attention.wo.weight"),
    ("model.layers.{}.mlp.gate_proj.weight", "layers.{}.feed_forward.w1.weight"),
    ("model.layers.{}.mlp.down_proj.weight", "layers.{}.feed_forward.w2.weight"),
    ("model.layers.{}.mlp.up_proj.weight", "layers.{}.feed_forward.w3.weight"),
    ("model.layers.{}.input_layernorm.weight", "layers.{}.attention_norm.weight"),
    ("model.layers.{}.post_attention_layernorm.weight", "layers.{}.ffn_norm.weight"),
]


def _pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(r"\{\}", r"(\d+)"))


_HF_TO_META = [(_pattern(hf), meta) for hf, meta in _NAMES]
_META_TO_HF = [(_pattern(meta), hf) for hf, meta in _NAMES]


def _rename(key: str, table) -> str | None:
    for pattern, target in table:
        match = pattern.fullmatch(key)
        if match:
            return target.format(*match.groups())
    return None


def _permute_rotary(w: torch.Tensor, n_heads: int, to_hf: bool) -> torch.Tensor:
    """Meta's interleaved-pair rotary layout <-> HF's rotate-half layout of the q/k output rows."""
    rows, cols = w.shape
    half = rows // n_heads // 2
    shape = (n_heads, half, 2, cols) if to_hf else (n_heads, 2, half, cols)
    return w.reshape(shape).transpose(1, 2).reshape(rows, cols)


def hf_args(config: dict, **overrides) -> ModelArgs:
    if config.get("model_type") not in ("llama", "mistral", None):
        raise CheckpointError(f"config.json has model_type {config.get('model_type')!r}, not a LLaMA model")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise CheckpointError("HF models with attention_bias/mlp_bias are not LLaMA-2 shaped; not supported")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise CheckpointError(f"rotary scaling {rope} is not supported (only plain RoPE, as LLaMA-2)")
    dim, heads = config["hidden_size"], config["num_attention_heads"]
    if config.get("head_dim", dim // heads) != dim // heads:
        raise CheckpointError(f"head_dim {config['head_dim']} != hidden_size / num_attention_heads")
    kv_heads = config.get("num_key_value_heads", heads)
    args = dict(dim=dim, n_layers=config["num_hidden_layers"], n_heads=heads,
                n_kv_heads=None if kv_heads == heads else kv_heads, vocab_size=config["vocab_size"],
                hidden_dim=config["intermediate_size"], norm_eps=config.get("rms_norm_eps", 1e-6),
                rope_theta=rope.get("rope_theta", config.get("rope_theta", 10000.0)),
                max_seq_len=config.get("max_position_embeddings", 4096),
                tie_embeddings=config.get("tie_word_embeddings", False))
    return ModelArgs(**{**args, **overrides})


def _rotary_layout(meta_key: str, tensor: torch.Tensor, args: ModelArgs, to_hf: bool) -> torch.Tensor:
    """q and k rows permuted between the two rotary layouts; every other tensor as it is."""
    if meta_key.endswith("attention.wq.weight"):
        return _permute_rotary(tensor, args.n_heads, to_hf)
    if meta_key.endswith("attention.wk.weight"):
        return _permute_rotary(tensor, args.kv_heads, to_hf)
    return tensor


def hf_to_meta(state: dict, args: ModelArgs) -> dict:
    out = {}
    for key, tensor in state.items():
        new = _rename(key, _HF_TO_META) or key  # unknown names are left for check_state to report
        out[new] = _rotary_layout(new, tensor, args, to_hf=False)
    return out


def meta_to_hf(state: dict, args: ModelArgs) -> dict:
    out = {}
    for key, tensor in state.items():
        if is_added_parameter(key) or (args.tie_embeddings and key == "output.weight"):
            continue
        new = _rename(key, _META_TO_HF)
        if new is None:
            raise CheckpointError(f"no HF name for {key}")
        out[new] = _rotary_layout(key, tensor, args, to_hf=True)
    return out


def hf_config(args: ModelArgs, **extra) -> dict:
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
            "hidden_size": args.dim, "intermediate_size": args.ffn_hidden_dim,
            "num_hidden_layers": args.n_layers, "num_attention_heads": args.n_heads,
            "num_key_value_heads": args.kv_heads, "head_dim": args.head_dim, "vocab_size": args.vocab_size,
            "rms_norm_eps": args.norm_eps, "max_position_embeddings": args.max_seq_len,
            "rope_parameters": {"rope_theta": args.rope_theta, "rope_type": "default"},
            "tie_word_embeddings": args.tie_embeddings, "attention_bias": False, "mlp_bias": False,
            **extra}


def _hf_weight_files(folder: Path) -> list[Path]:
    """The files of the first complete weight set: sharded or single safetensors, then sharded or single
    .bin. HF repositories often hold the same weights in both formats, and a download may have
    fetched only one, or only some shards of one: whichever set is whole is used."""
    sets = []
    for index_name, single in (("model.safetensors.index.json", "model.safetensors"),
                               ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        if (folder / index_name).exists():
            weight_map = read_json(folder / index_name).get("weight_map", {})
            sets.append((index_name, [folder / f for f in sorted(set(weight_map.values()))]))
        elif (folder / single).exists() or (folder / single).is_symlink():
            sets.append((single, [folder / single]))
    problems = []
    for name, files in sets:
        for file in files:
            if file.exists():
                check_readable(file)  # a permission problem is said as one, whichever set it is in
        try:
            for file in files:  # a safetensors header must also cover the file's size: read it (it is small)
                safetensors_keys(file) if file.suffix == ".safetensors" else check_file(file)
            return files
        except CheckpointError as e:
            problems.append(f"{name}: {e}")
    if problems:
        raise CheckpointError(f"{folder} has no complete set of weight files (a partial download?); download the "
                              "missing files again:\n  " + "\n  ".join(problems))
    raise CheckpointError(f"{folder} has config.json but no model.safetensors, pytorch_model.bin or "
                          "sharded index file")


def read_hf(folder: Path, **overrides) -> tuple[ModelArgs, dict]:
    folder = Path(folder)
    args = hf_args(read_json(folder / "config.json"), **overrides)
    state = {}
    for file in _hf_weight_files(folder):
        state.update(safetensors_load(file) if file.suffix == ".safetensors" else torch_load(file))
    pop_rotary(state, args, folder)
    return args, hf_to_meta(state, args)


def save_hf(state: dict, args: ModelArgs, folder: Path, **config_extra):
    """Write config.json + model.safetensors (rotate-half q/k layout, HF names)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hf = {k: v.contiguous() for k, v in meta_to_hf(state, args).items()}
    dtype = str(next(iter(hf.values())).dtype).removeprefix("torch.")
    (folder / "config.json").write_text(json.dumps(hf_config(args, dtype=dtype, **config_extra), indent=2))
    save_file(hf, folder / "model.safetensors", metadata={"format": "pt"})
    make_readable(folder / "model.safetensors")  # safetensors writes owner-only; other users load it too
