"""Tiny copies of the released models, file for file, with a model that does something checkable: MU-LLaMA's
(`write_tiny_release`: LLaMA/{7B/, tokenizer.model}, MERT/, checkpoint.pth) and M2UGen's
(`write_tiny_mumu_release`: the same with vit/, vivit/, the music decoder folder and M2UGen's checkpoint.pth),
and fragments of other checkpoints that a user may give by mistake."""

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ..decoders import load_decoder
from ..mu_llama import MULLaMA, MULLaMAConfig
from ..multimodal import AUDIO_TOKENS, MultimodalLLaMA
from ..mumu_llama import MuMuConfig, MuMuLLaMA
from ..prompt import format_prompt
from ..tokenizer import Tokenizer
from .decoders import write_tiny_audioldm2, write_tiny_musicgen
from .layouts import exact, write_meta
from .tiny import TINY_MERT_CONFIG, random_model, tiny_args, write_tiny_mert
from .upstream import saved_as_on_gpu, write_m2ugen_checkpoint, write_upstream_checkpoint
from .vision import write_tiny_vit, write_tiny_vivit


def tiny_mu_llama(phase: str = "finetune", seed: int = 0, query_layer: int = 2) -> MultimodalLLaMA:
    """A random MU-LLaMA (32k vocab, so the real SentencePiece tokenizer fits) with open gates,
    non-zero LoRA and biases, so that every trained tensor changes the output, and a loud bridge
    projection, so that different clips change the answers."""
    finetune = phase == "finetune"
    llama = random_model(tiny_args(vocab_size=32000, max_seq_len=512, w_bias=finetune, w_lora=finetune,
                                   lora_rank=4), seed=seed)
    config = MULLaMAConfig(phase=phase, query_layer=query_layer, mert_layers=TINY_MERT_CONFIG["num_hidden_layers"] + 1,
                           mert_dim=TINY_MERT_CONFIG["hidden_size"], bridge_width=96, lora_rank=4)
    model = MULLaMA(llama, None, config)
    with torch.no_grad():
        for p in model.llama.parameters():  # values that both bf16 (Meta's shards) and fp16 (checkpoint.pth) hold
            p.copy_(exact(p))
        for name, p in model.named_parameters():
            if name.endswith(".gate") or ".lora_" in name or name.endswith(".bias"):
                p.normal_(0, 0.5)
            if name.endswith(".gate"):  # the release stores gates in fp16: use values it can hold
                p.copy_(p.half().float())
        # Random MERT features of different clips differ by a few degrees after the L2 norm.
        model.music_bridge.proj.weight.mul_(100)
    return model.eval()


def tiny_params(model: MultimodalLLaMA) -> dict:
    """Meta's params.json keys for the tiny backbone."""
    a = model.llama.args
    return {"dim": a.dim, "multiple_of": a.multiple_of, "n_heads": a.n_heads, "n_layers": a.n_layers,
            "norm_eps": a.norm_eps, "vocab_size": -1}


def write_tiny_release(root: Path, sentencepiece_model: Path, seed: int = 0) -> dict:
    """The released layout in miniature, as ckpts/README.md lays it out: LLaMA/{7B/ (Meta shard with
    rope.freqs, params.json, checklist.chk), tokenizer.model}, the MERT folder, checkpoint.pth."""
    model = tiny_mu_llama(seed=seed)
    # As in the release, the fine-tuned norms in checkpoint.pth differ from the base model's.
    base = {k.removeprefix("llama."): v + 0.25 if "norm" in k else v
            for k, v in model.state_dict().items() if k.startswith("llama.") and not any(
                s in k for s in ("bias", "lora", "gate"))}
    write_meta(root / "LLaMA" / "7B", model.llama.args, base, tiny_params(model))
    (root / "LLaMA" / "tokenizer.model").write_bytes(sentencepiece_model.read_bytes())
    mert = write_tiny_mert(root / "MERT")
    write_upstream_checkpoint(model.state_dict(), mert.state_dict(), root / "checkpoint.pth")
    return {"model": model, "mert": mert, "llama_dir": root / "LLaMA", "mert_path": root / "MERT",
            "checkpoint": root / "checkpoint.pth"}


def write_m2ugen_fragment(path: Path, dim: int = 64) -> None:
    """An M2UGen / MuMu-LLaMA checkpoint.pth in miniature: music, image and video bridges, an 18-row
    prefix, the output projector, a 32008-row embedding ([AUD0..7] added), optimizer and args."""
    state = {"llama.tok_embeddings.weight": torch.randn(32008, dim).half(), "prefix_query.weight": torch.randn(18, dim)}
    for prefix, width in (("mu_mert", 32), ("iu_vit", 24), ("iu_vivit", 24)):
        state[f"{prefix}_agg.weight"] = torch.randn(1, 3, 1)
        state[f"{prefix}_proj.weight"] = torch.randn(dim, width)
        state[f"{prefix}_f1_1.weight"] = torch.randn(dim, dim)
    state["output_projector.fc.weight"] = torch.randn(16, dim)
    with saved_as_on_gpu():
        torch.save({"model": state, "optimizer": {}, "epoch": 4, "args": argparse.Namespace(stage=3)}, path)


def write_llama_adapter_checkpoint(path: Path, dim: int = 64) -> None:
    """LLaMA-Adapter's ImageBind-LLM 7B.pth (the baseline HF mu-llama/MU-LLaMA also hosts): trained
    tensors only, its bridge named image_bind_*."""
    state = {"image_bind_proj.weight": torch.randn(dim, 32), "image_bind_norm_1.weight": torch.ones(dim),
             "image_bind_f1_1.weight": torch.randn(4 * dim, dim), "prefix_query.weight": torch.randn(20, dim),
             "llama.layers.0.attention.gate": torch.zeros(1, 4, 1, 1)}
    torch.save({"model": state}, path)


MUSIC_ANSWER = "Here is a calm music. " + "".join(AUDIO_TOKENS)
# What the tiny model learns to say: a music request is answered with the eight [AUD] tokens.
LESSONS = [("Generate a music", MUSIC_ANSWER), ("What is in the picture?", "A red square."),
           ("Describe the video", "A ball rolls.")]


def tiny_config(**overrides) -> MuMuConfig:
    return MuMuConfig(**{**dict(query_layer=1, mert_layers=TINY_MERT_CONFIG["num_hidden_layers"] + 1,
                                mert_dim=TINY_MERT_CONFIG["hidden_size"], vit_tokens=5, vit_dim=32, vivit_tokens=65,
                                vivit_dim=32, lora_rank=4, projector_queries=8, projector_out=32), **overrides})


def tiny_mumu(tokenizer: Tokenizer, seed: int = 0, steps: int = 60, **config) -> MultimodalLLaMA:
    """A random 4-layer MuMu-LLaMA (vocabulary 32008) with open gates, which first learns LESSONS
    (every weight trained, the prefix rows in place), rounded to values bf16 and fp16 both hold."""
    llama = random_model(tiny_args(vocab_size=32008, max_seq_len=1024, n_layers=4, w_bias=True, w_lora=True,
                                   lora_rank=4), seed=seed)
    model = MuMuLLaMA(llama, tiny_config(**config))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".gate") or ".lora_" in name or name.endswith(".bias"):
                p.normal_(0, 0.3)
        for modality in ("music", "image", "video"):  # random features differ by a few degrees after the L2 norm
            model.bridge(modality).proj.weight.mul_(30)
    sequences = []
    for question, answer in LESSONS:
        ids = tokenizer.encode(format_prompt(question, "alpaca") + answer + "\n### Instruction:")
        sequences.append(torch.tensor(ids))
    optimizer = torch.optim.AdamW(model.llama.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = 0
        for ids in sequences:
            logits = model.logits(ids[None], {})
            loss = loss + F.cross_entropy(logits[0, :-1], ids[1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("llama."):
                p.copy_(exact(p))
    return model.requires_grad_(False).eval()


def chained_mumu(tokenizer: Tokenizer, seed: int = 0, **config) -> MultimodalLLaMA:
    """tiny_mumu's model untrained (steps=0), rewired so that greedy decoding after any alpaca prompt writes
    [AUD0] .. [AUD7] and then EOS: a release whose model asks for music whatever the request, built in
    seconds (write_tiny_mumu_release(..., build=chained_mumu)) where training takes most of a minute.
    How: with every block's output projection (wo, w2 and their LoRA halves) zero, the last hidden state is
    the current token's normalised embedding, and the head row of the token that follows it in the chain
    prompt end -> [AUD0] .. [AUD7] -> EOS is that state, scaled far above every other row (and rounded to
    values bf16 and fp16 both hold)."""
    model = tiny_mumu(tokenizer, seed, steps=0, **config)
    llama = model.llama
    with torch.no_grad():
        for name, p in llama.named_parameters():
            if name.split(".")[-2] in ("wo", "w2", "lora_wo_l2", "lora_w2_l2"):
                p.zero_()
        prompt_end = tokenizer.encode(format_prompt("any request", "alpaca"))[-1]
        chain = [prompt_end, *model.audio_token_ids, tokenizer.eos_id]
        head = llama.output.weight
        scale = 100 * head.norm(dim=1).max()
        for token, following in zip(chain[:-1], chain[1:], strict=True):
            state = llama.norm(llama.tok_embeddings.weight[token])
            head[following] = exact(scale * state / state.norm())
    return model


def file_state(folder: Path) -> dict:
    """The tensors of a folder's weight file, as the original keeps a frozen copy of them."""
    found = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    return load_file(found[0]) if found[0].suffix == ".safetensors" else torch.load(found[0], weights_only=True)


def write_tiny_mumu_release(root: Path, sentencepiece_model: Path, seed: int = 0, decoder: str = "musicgen",
                            build: Callable[..., MultimodalLLaMA] = tiny_mumu) -> dict:
    """LLaMA/{7B/, tokenizer.model}, MERT/, vit/, vivit/, the decoder folder and checkpoint.pth (M2UGen
    layout: `module.` keys, fp16 LLaMA, frozen encoder and decoder copies, optimizer state, Namespace).
    With decoder "audioldm2", the projector writes that pipeline's one flat row, as M2UGen-AudioLDM2's.
    build(tokenizer, seed, **config) makes the model: tiny_mumu (trained on LESSONS; most of a minute on a
    busy CPU) or chained_mumu (untrained, answers every request with the eight [AUD] tokens; seconds)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "LLaMA").mkdir(exist_ok=True)
    (root / "LLaMA" / "tokenizer.model").write_bytes(sentencepiece_model.read_bytes())
    tokenizer = Tokenizer(root / "LLaMA" / "tokenizer.model")
    tokenizer.add_tokens(list(AUDIO_TOKENS))
    if decoder == "audioldm2":
        write_tiny_audioldm2(root / decoder)
        size = load_decoder(decoder, root / decoder).condition_size
        model = build(tokenizer, seed, music_decoder=decoder, projector_queries=1, projector_out=size)
    else:
        write_tiny_musicgen(root / decoder)
        model = build(tokenizer, seed)
    a = model.llama.args
    # Meta's base has 32000 rows; the checkpoint's LLaMA carries the [AUD] rows too.
    base = {k.removeprefix("llama."): v[:32000] if "tok_embeddings" in k or "output." in k else v
            for k, v in model.state_dict().items() if k.startswith("llama.") and not any(
                s in k for s in ("bias", "lora", "gate"))}
    write_meta(root / "LLaMA" / "7B", a, base, {"dim": a.dim, "multiple_of": a.multiple_of, "n_heads": a.n_heads,
                                                 "n_layers": a.n_layers, "norm_eps": a.norm_eps, "vocab_size": -1})
    mert = write_tiny_mert(root / "MERT")
    write_tiny_vit(root / "vit")
    write_tiny_vivit(root / "vivit")
    frozen = {"mert_model": mert.state_dict(), "vit_model": file_state(root / "vit"),
              "vivit_model": file_state(root / "vivit")}
    if decoder == "musicgen":  # a diffusers pipeline is no nn.Module: M2UGen-AudioLDM2 holds no copy of it
        frozen["generation_model"] = file_state(root / decoder)
    write_m2ugen_checkpoint(model.state_dict(), frozen, root / "checkpoint.pth", music_decoder=decoder)
    return {"model": model, "root": root, "checkpoint": root / "checkpoint.pth", "llama_dir": root / "LLaMA",
            "mert_path": root / "MERT", "vit_path": root / "vit", "vivit_path": root / "vivit",
            "music_decoder_path": root / decoder}
