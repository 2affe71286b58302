"""Meta's LLaMA format: params.json + consolidated.NN.pth (model-parallel shards, `rope.freqs` in each)."""

import json
import re
from pathlib import Path

import torch

from ..files import CheckpointError, read_checklist, read_json, torch_load
from ..model import ModelArgs, is_added_parameter, rotary_frequencies

# Meta's shard layout (model parallel): these are split along dim 0, these along the last dim;
# anything else (norms) is replicated and taken from shard 0.
_CAT_DIM0 = {"w1", "w3", "wq", "wk", "wv", "output"}
_CAT_DIM_LAST = {"w2", "wo", "tok_embeddings"}


def read_meta(folder: Path, **overrides) -> tuple[ModelArgs, dict]:
    folder = Path(folder)
    shards = sorted(folder.glob("consolidated.*.pth"))
    if not (folder / "params.json").exists():
        found = f" (it has {', '.join(s.name for s in shards)})" if shards else ""
        raise CheckpointError(f"{folder} has no params.json{found}: a Meta-format LLaMA folder needs "
                              "params.json next to consolidated.*.pth")
    if (folder / "checklist.chk").exists():  # download.sh writes it: it names every file of the download
        listed = read_checklist(folder / "checklist.chk")
        missing = sorted(name for name in listed if not (folder / name).exists())
        if missing:
            raise CheckpointError(f"{folder} lacks {', '.join(missing)}, which its checklist.chk lists: the download "
                                  "is incomplete; run download.sh again")
    if not shards:
        raise CheckpointError(f"{folder} has params.json but no consolidated.*.pth weight shards")
    params = read_json(folder / "params.json")
    loaded = [torch_load(s) for s in shards]
    state = _merge_meta_shards(loaded)
    if params.get("vocab_size", -1) < 0 and "tok_embeddings.weight" in state:
        params["vocab_size"] = state["tok_embeddings.weight"].shape[0]  # LLaMA-2 writes -1
    try:
        args = ModelArgs.from_params(params, **overrides)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / 'params.json'}: {e}") from e
    pop_rotary(state, args, folder)
    return args, state

# Rotary frequencies some checkpoints store although the model computes them: Meta's top-level
# `rope.freqs` (every LLaMA-1 and LLaMA-2 shard), LLaMA-1's early per-layer copy, and the
# `inv_freq` buffers of .bin files saved by transformers <= 4.31.
_ROTARY_KEYS = re.compile(r"rope\.freqs|layers\.\d+\.attention\.inner_attention\.rope\.freqs|"
                          r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq")


def pop_rotary(state: dict, args: ModelArgs, source) -> None:
    """Remove stored rotary frequencies from `state` after checking them against the ones the model
    computes (same base, same length): a checkpoint trained with another rotary base is refused."""
    expected = rotary_frequencies(args.head_dim, args.rope_theta, dtype=torch.float64)
    for key in [k for k in state if _ROTARY_KEYS.fullmatch(k)]:
        stored = state.pop(key).double().flatten()
        if stored.shape == expected.shape and torch.allclose(stored, expected, rtol=1e-2, atol=0):
            continue  # bf16 / fp16 rounding of the same frequencies
        if stored.numel() != expected.numel():
            raise CheckpointError(f"{source}: {key} holds {stored.numel()} rotary frequencies, but a head of "
                                  f"{args.head_dim} needs {expected.numel()}: the weights and the config disagree")
        # the lowest frequency is base ** -(d - 2) / d: the most precise estimate of the base
        base = stored[-1].item() ** (-args.head_dim / (args.head_dim - 2)) if stored.numel() > 1 else float("nan")
        raise CheckpointError(f"{source}: {key} holds rotary frequencies of base ~{base:.2g}, but the config gives "
                              f"rope_theta {args.rope_theta:g}: set rope_theta to the base the weights were "
                              "trained with (params.json / config.json)")


def _merge_meta_shards(shards: list[dict]) -> dict:
    if len(shards) == 1:
        return shards[0]
    merged = {}
    for key in shards[0]:
        kind = key.split(".")[-2] if "." in key else key
        if kind in _CAT_DIM0:
            merged[key] = torch.cat([s[key] for s in shards], dim=0)
        elif kind in _CAT_DIM_LAST:
            merged[key] = torch.cat([s[key] for s in shards], dim=-1)
        else:
            merged[key] = shards[0][key]
    return merged


def save_meta(state: dict, args: ModelArgs, folder: Path, num_shards: int = 1):
    """Write params.json + consolidated.NN.pth, split into `num_shards` as Meta's model parallel."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    params = {"dim": args.dim, "n_layers": args.n_layers, "n_heads": args.n_heads,
              "vocab_size": args.vocab_size, "multiple_of": args.multiple_of, "norm_eps": args.norm_eps,
              "rope_theta": args.rope_theta, "max_seq_len": args.max_seq_len}
    optional = {"n_kv_heads": args.n_kv_heads, "ffn_dim_multiplier": args.ffn_dim_multiplier,
                "hidden_dim": args.hidden_dim, "tie_embeddings": args.tie_embeddings or None}
    params.update({k: v for k, v in optional.items() if v is not None})
    (folder / "params.json").write_text(json.dumps(params, indent=2))
    state = {k: v for k, v in state.items() if not is_added_parameter(k)}
    if args.tie_embeddings:
        state.pop("output.weight", None)
    # Meta's shards carry the rotary frequencies too (in the weights' dtype); readers check and drop them.
    freqs = rotary_frequencies(args.head_dim, args.rope_theta).to(state["tok_embeddings.weight"].dtype)
    for shard in range(num_shards):
        part = {key: _meta_shard(key, tensor, shard, num_shards) for key, tensor in state.items()}
        part["rope.freqs"] = freqs
        torch.save(part, folder / f"consolidated.{shard:02d}.pth")


def _meta_shard(key: str, tensor: torch.Tensor, shard: int, num_shards: int) -> torch.Tensor:
    if num_shards == 1:
        return tensor
    kind = key.split(".")[-2]
    if kind in _CAT_DIM0:
        return tensor.chunk(num_shards, dim=0)[shard].clone()  # clone: save the slice, not its storage
    if kind in _CAT_DIM_LAST:
        return tensor.chunk(num_shards, dim=-1)[shard].clone()
    return tensor
