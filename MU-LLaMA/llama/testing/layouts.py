"""Tiny copies of the released artefacts, file for file and key for key, at a tiny size.

What each real artefact holds (names, extra keys and files, dtypes, config fields) is written here
as users have it, so that the tests load exactly what a user's download holds:

- Meta LLaMA-2 (`download.sh`, HF `meta-llama/Llama-2-7b`): `params.json` with Meta's six keys
  (`vocab_size` -1), `consolidated.NN.pth` all bf16 with the top-level `rope.freqs`, `checklist.chk`
  (md5 lines); `download.sh` puts `tokenizer.model` + `tokenizer_checklist.chk` at the top and the
  weights in `llama-2-7b/`, `llama-2-7b-chat/`, ...; 13B in two shards.
- LLaMA-1 7B (the older `LLaMA/7B` of HF mu-llama/MU-LLaMA): fp16, `norm_eps` 1e-06.
- HF `meta-llama/Llama-2-7b-hf`: config.json, generation_config.json, two safetensors shards +
  index and two `pytorch_model-*.bin` shards + index (the .bin with transformers 4.31's
  `rotary_emb.inv_freq` buffers), tokenizer.model, tokenizer.json, tokenizer_config.json,
  special_tokens_map.json.
- An HF cache (`models--org--name/{blobs, refs/main, snapshots/<commit>}`), as `huggingface-cli
  download` leaves it.
- MERT-v1-330M (`tiny.write_tiny_mert`): config.json with the remote-code fields, pytorch_model.bin
  only, preprocessor_config.json.
- MU-LLaMA `checkpoint.pth`, M2UGen's, LLaMA-Adapter's `7B.pth`: in `releases.py`.
"""

import functools
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..checkpoints.hf import meta_to_hf
from ..model import ModelArgs, Transformer, is_added_parameter

# Meta's params.json for LLaMA-2 7B is {"dim": 4096, "multiple_of": 256, "n_heads": 32, "n_layers": 32,
# "norm_eps": 1e-05, "vocab_size": -1}: the same keys, in the same order, at a tiny size.
LLAMA2_PARAMS = {"dim": 64, "multiple_of": 32, "n_heads": 4, "n_layers": 2, "norm_eps": 1e-05, "vocab_size": -1}
LLAMA1_PARAMS = {**LLAMA2_PARAMS, "norm_eps": 1e-06}


def exact(t: torch.Tensor) -> torch.Tensor:
    """t rounded to values bf16 and fp16 both hold exactly (the release stores the same base weights
    in bf16 in Meta's shards and in fp16 in HF's files and in checkpoint.pth): so every format gives
    the same model. Tiny values, fp16 subnormals, become zero."""
    t = t.bfloat16().float()
    return torch.where(t.abs() < 2 ** -14, torch.zeros_like(t), t)


def random_base(params: dict = LLAMA2_PARAMS, vocab_size: int = 32000, seed: int = 0) -> tuple[ModelArgs, dict]:
    """(args, state dict with Meta names) of a random LLaMA whose weights every format holds exactly."""
    args = ModelArgs.from_params({**params, "vocab_size": vocab_size})
    torch.manual_seed(seed)
    model = Transformer(args)
    state = {}
    for key, value in model.state_dict().items():
        if is_added_parameter(key):  # adapter gates: MU-LLaMA's, never in a base checkpoint
            continue
        if key.endswith("norm.weight"):
            value = torch.empty_like(value).uniform_(0.5, 1.5)
        state[key] = exact(value)
    return args, state


def rope_freqs(args: ModelArgs) -> torch.Tensor:
    return 1.0 / args.rope_theta ** (torch.arange(0, args.head_dim, 2).float() / args.head_dim)


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def write_checklist(folder: Path, names: list[str], file_name: str = "checklist.chk") -> None:
    (folder / file_name).write_text("".join(f"{md5(folder / n)}  {n}\n" for n in names))


# Meta's model-parallel split: these along dim 0, these along dim 1; norms and rope.freqs repeated.
SPLIT_DIM0 = ("wq", "wk", "wv", "w1", "w3", "output")
SPLIT_DIM1 = ("wo", "w2", "tok_embeddings")


def write_meta(folder: Path, args: ModelArgs, state: dict, params: dict = LLAMA2_PARAMS, shards: int = 1,
               dtype=torch.bfloat16) -> Path:
    """A Meta folder as download.sh writes it: consolidated.NN.pth (+ rope.freqs), params.json, checklist.chk."""
    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        part = {}
        for key, value in state.items():
            kind = key.split(".")[-2]
            if kind in SPLIT_DIM0:
                value = value.chunk(shards, dim=0)[shard]
            elif kind in SPLIT_DIM1:
                value = value.chunk(shards, dim=1)[shard]
            part[key] = value.to(dtype).clone()
        part["rope.freqs"] = rope_freqs(args).to(dtype)
        torch.save(part, folder / f"consolidated.{shard:02d}.pth")
    (folder / "params.json").write_text(json.dumps(params))
    write_checklist(folder, [f"consolidated.{i:02d}.pth" for i in range(shards)] + ["params.json"])
    return folder


def write_download_sh(root: Path, tokenizer_model: Path, models: dict[str, tuple]) -> Path:
    """Meta's download.sh layout: tokenizer files at the top, one folder per model (llama-2-7b, ...)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tokenizer.model").write_bytes(Path(tokenizer_model).read_bytes())
    write_checklist(root, ["tokenizer.model"], "tokenizer_checklist.chk")
    (root / "LICENSE").write_text("LLAMA 2 COMMUNITY LICENSE AGREEMENT (stand-in)\n")
    for name, (args, state, params, shards) in models.items():
        write_meta(root / name, args, state, params, shards)
    return root


def write_hf(folder: Path, args: ModelArgs, state: dict, tokenizer_model: Path, formats=("safetensors", "bin"),
             shards: int = 2) -> Path:
    """meta-llama/Llama-2-7b-hf as it is on the hub: fp16 weights in two shards per format, each with an
    index, the .bin shards holding transformers 4.31's rotary_emb.inv_freq buffers; config, tokenizer files."""
    folder.mkdir(parents=True, exist_ok=True)
    hf = {k: v.half().contiguous() for k, v in meta_to_hf(state, args).items()}
    keys = list(hf)
    parts = [keys[i::shards] for i in range(shards)]
    total = sum(v.numel() * v.element_size() for v in hf.values())
    if "safetensors" in formats:
        names = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
        for name, part in zip(names, parts, strict=True):
            save_file({k: hf[k] for k in part}, folder / name, metadata={"format": "pt"})
        index = {"metadata": {"total_size": total}, "weight_map": {k: n for n, p in zip(names, parts, strict=True)
                                                                   for k in p}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    if "bin" in formats:
        names = [f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin" for i in range(shards)]
        weight_map = {}
        for name, part in zip(names, parts, strict=True):
            tensors = {k: hf[k] for k in part}
            for layer in sorted({int(k.split(".")[2]) for k in part if k.startswith("model.layers.")}):
                key = f"model.layers.{layer}.self_attn.rotary_emb.inv_freq"
                tensors[key] = rope_freqs(args)
            torch.save(tensors, folder / name)
            weight_map.update({k: name for k in tensors})
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))
    (folder / "config.json").write_text(json.dumps({
        "_name_or_path": "meta-llama/Llama-2-7b-hf", "architectures": ["LlamaForCausalLM"], "bos_token_id": 1,
        "eos_token_id": 2, "hidden_act": "silu", "hidden_size": args.dim, "initializer_range": 0.02,
        "intermediate_size": args.ffn_hidden_dim, "max_position_embeddings": 4096, "model_type": "llama",
        "num_attention_heads": args.n_heads, "num_hidden_layers": args.n_layers,
        "num_key_value_heads": args.n_heads, "pretraining_tp": 1, "rms_norm_eps": args.norm_eps,
        "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "float16",
        "transformers_version": "4.31.0.dev0", "use_cache": True, "vocab_size": args.vocab_size}, indent=2))
    (folder / "generation_config.json").write_text(json.dumps({
        "bos_token_id": 1, "do_sample": True, "eos_token_id": 2, "pad_token_id": 0, "temperature": 0.6,
        "max_length": 4096, "top_p": 0.9, "transformers_version": "4.31.0.dev0"}, indent=2))
    (folder / "tokenizer.model").write_bytes(Path(tokenizer_model).read_bytes())
    (folder / "tokenizer.json").write_text(tokenizer_json(str(tokenizer_model)))
    special = {"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False,
                             "rstrip": False, "single_word": False},
               "eos_token": {"__type": "AddedToken", "content": "</s>", "lstrip": False, "normalized": False,
                             "rstrip": False, "single_word": False},
               "unk_token": {"__type": "AddedToken", "content": "<unk>", "lstrip": False, "normalized": False,
                             "rstrip": False, "single_word": False}}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False, "legacy": False,
        "model_max_length": 1000000000000000019884624838656, "pad_token": None, "padding_side": "right",
        "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer", **special}, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {k: {key: v[key] for key in ("content", "lstrip", "normalized", "rstrip", "single_word")}
         for k, v in special.items()}, indent=2))
    return folder


@functools.cache
def tokenizer_json(tokenizer_model: str) -> str:
    """The fast-tokenizer file HF LLaMA repositories carry beside tokenizer.model: the same BPE pieces
    and merges, LLaMA's normaliser (leading and inner spaces to U+2581) and byte fallback."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
    from transformers.convert_slow_tokenizer import SentencePieceExtractor

    pieces = SentencePieceExtractor(tokenizer_model).extract(None)
    tokenizer = Tokenizer(models.BPE(vocab=pieces["vocab"], merges=pieces["merges"], unk_token="<unk>",
                                     byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
    return tokenizer.to_str()


def write_hf_cache(cache: Path, repo_id: str, source: Path, commit: str = "0123456789abcdef" * 2 + "01234567") -> Path:
    """`source`'s files as the HF cache holds them after a download: content-addressed blobs, a snapshot
    of relative links to them, refs/main naming the commit. Returns the repo folder (models--org--name)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for file in sorted(p for p in Path(source).rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / file.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    return repo


def lfs_pointer(path: Path) -> None:
    """Replace a file by the pointer a Git clone without git-lfs leaves."""
    data = Path(path).read_bytes()
    Path(path).write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
                          f"size {len(data)}\n")
